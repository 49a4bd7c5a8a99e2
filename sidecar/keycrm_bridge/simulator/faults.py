"""Fault injection: what the next API request suffers, decided with a seeded RNG."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FaultConfig:
    error_rate: float = 0.0  # share of API requests answered with error_status
    error_status: int = 500
    fail_next: int = 0  # the next N matching requests fail with error_status, whatever error_rate says
    seed: int = 0
    latency: float = 0.0  # clock seconds added before answering (clock.sleep)
    hang_seconds: float = 0.0  # real seconds to hold the request, then 504: clients' socket timeouts are real
    down: bool = False  # every API request answers 503
    paths: list[str] = field(default_factory=list)  # only requests whose path starts with one of these
    methods: list[str] = field(default_factory=list)  # only these methods (upper case)


@dataclass
class FaultDecision:
    status: int | None = None  # answer with this error status instead of serving
    latency: float = 0.0
    hang_seconds: float = 0.0


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self._rng = random.Random(0)
        self.injected = 0

    def configure(self, changes: dict[str, Any]) -> FaultConfig:
        """Merge ``changes`` into the config; a ``seed`` restarts the RNG."""
        with self._lock:
            known = asdict(self.config)
            unknown = set(changes) - set(known)
            if unknown:
                raise ValueError(f"unknown fault settings: {sorted(unknown)}")
            merged = {**known, **changes}
            merged["methods"] = [str(m).upper() for m in merged["methods"] or []]
            self.config = FaultConfig(**merged)
            if "seed" in changes:
                self._rng = random.Random(self.config.seed)
            return self.config

    def clear(self) -> None:
        with self._lock:
            self.config = FaultConfig()
            self._rng = random.Random(0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**asdict(self.config), "injected": self.injected}

    def is_down(self) -> bool:
        with self._lock:
            if self.config.down:
                self.injected += 1
            return self.config.down

    def decide(self, method: str, path: str) -> FaultDecision:
        """Faults for one admitted request (after auth and the rate limit)."""
        with self._lock:
            cfg = self.config
            if cfg.paths and not any(path.startswith(p) for p in cfg.paths):
                return FaultDecision()
            if cfg.methods and method.upper() not in cfg.methods:
                return FaultDecision()
            decision = FaultDecision(latency=cfg.latency, hang_seconds=cfg.hang_seconds)
            if cfg.fail_next > 0:
                cfg.fail_next -= 1
                decision.status = cfg.error_status
            elif cfg.error_rate > 0 and self._rng.random() < cfg.error_rate:
                decision.status = cfg.error_status
            if decision.status is not None or decision.hang_seconds > 0:
                self.injected += 1
            return decision
