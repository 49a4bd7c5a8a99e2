"""The request log: every API request the simulator answered, for assertions and benches."""

from __future__ import annotations

import json
import threading
from bisect import bisect_right
from typing import Any

# Bodies are kept as the raw bytes and parsed when read: a parsed 10,000-row stock write costs
# ~10x its JSON size in Python objects, and benches send hundreds of them.
_RAW = "_raw_body"


class RequestLog:
    """Append-only entries with a rising ``seq``; ``clear`` empties it but ``seq`` keeps rising, so a
    reader's ``since`` stays meaningful."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._seq = 0

    def append(self, entry: dict[str, Any], raw_body: bytes = b"") -> int:
        """Record one request; returns its ``seq``."""
        with self._lock:
            self._seq += 1
            self._entries.append({"seq": self._seq, **entry, _RAW: raw_body})
            return self._seq

    def since(
        self,
        seq: int = 0,
        *,
        method: str | None = None,
        path: str | None = None,
        bodies: bool = True,
    ) -> list[dict[str, Any]]:
        """Entries after ``seq`` (copies), each with its JSON ``body`` (raw text if not JSON, None if
        empty) unless ``bodies`` is False."""
        with self._lock:
            start = bisect_right(self._entries, seq, key=lambda e: e["seq"]) if seq else 0
            rows = self._entries[start:]
        if method:
            rows = [e for e in rows if e["method"] == method.upper()]
        if path:
            rows = [e for e in rows if e["path"] == path]
        out = []
        for entry in rows:
            view = {k: v for k, v in entry.items() if k != _RAW}
            if bodies:
                view["body"] = parse_body(entry[_RAW])
            out.append(view)
        return out

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
