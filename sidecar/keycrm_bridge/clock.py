"""Time as an input.

Every component that waits or reads the time takes a ``Clock`` so that tests drive time
themselves (``FakeClock``) and benchmarks can run minutes of traffic in seconds
(``AcceleratedClock``, shared between processes through a common origin).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix time in seconds."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


def wait(clock: Clock, event: threading.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` of ``clock``'s time or until ``event`` is set; True when it was set.

    A worker lane waits on this so another lane can hand it work at once. Real clocks wait on the
    event (scaled for an accelerated one); a fake clock advances instantly, as its ``sleep`` does."""
    if event.is_set():
        return True
    if isinstance(clock, SystemClock):
        return event.wait(seconds) if seconds > 0 else event.is_set()
    if isinstance(clock, AcceleratedClock):
        return event.wait(seconds / clock.factor) if seconds > 0 else event.is_set()
    clock.sleep(seconds)
    return event.is_set()


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to; ``sleep`` advances it instantly.

    Thread-safe, so a simulator thread and the code under test can share one.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds


class AcceleratedClock:
    """Real time sped up by ``factor`` from ``origin``.

    Two processes built with the same ``origin`` and ``factor`` agree on the time, which is
    what an accelerated end-to-end test of the rate budget needs.
    """

    def __init__(self, factor: float, origin: float | None = None) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.factor = factor
        self.origin = time.time() if origin is None else origin

    def now(self) -> float:
        return self.origin + (time.time() - self.origin) * self.factor

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.factor)


def clock_from_spec(spec: str | None) -> Clock:
    """Build a clock from ``KEYCRM_BRIDGE_CLOCK``: empty/``system`` or ``accelerated:FACTOR[:ORIGIN]``."""
    if not spec or spec == "system":
        return SystemClock()
    kind, _, rest = spec.partition(":")
    if kind == "accelerated" and rest:
        factor_s, _, origin_s = rest.partition(":")
        return AcceleratedClock(float(factor_s), float(origin_s) if origin_s else None)
    raise ValueError(f"unknown clock spec {spec!r}; use 'system' or 'accelerated:FACTOR[:ORIGIN]'")
