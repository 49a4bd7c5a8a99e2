"""KeyCRM's per-key request budget: a sliding window over the injected clock."""

from __future__ import annotations

import math
import threading
from collections import deque

from keycrm_bridge.clock import Clock


class SlidingWindowLimiter:
    """At most ``limit`` admitted requests in any ``window`` seconds. Rejected requests do not count."""

    def __init__(self, clock: Clock, limit: int = 60, window: float = 60.0) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self._admitted: deque[float] = deque()
        self._lock = threading.Lock()

    def configure(self, limit: int | None = None, window: float | None = None) -> None:
        with self._lock:
            if limit is not None:
                self.limit = int(limit)
            if window is not None:
                self.window = float(window)

    def reset(self) -> None:
        with self._lock:
            self._admitted.clear()

    def _expire(self, now: float) -> None:
        while self._admitted and self._admitted[0] <= now - self.window:
            self._admitted.popleft()

    def try_acquire(self) -> int | None:
        """Admit one request (None) or return the whole seconds until a slot frees (``Retry-After``)."""
        with self._lock:
            now = self.clock.now()
            self._expire(now)
            if self.limit <= 0 or len(self._admitted) < self.limit:
                self._admitted.append(now)
                return None
            oldest = self._admitted[-self.limit] if len(self._admitted) >= self.limit else self._admitted[0]
            return max(1, math.ceil(oldest + self.window - now))

    def snapshot(self) -> dict[str, float | int]:
        with self._lock:
            self._expire(self.clock.now())
            return {"limit": self.limit, "window": self.window, "used": len(self._admitted)}
