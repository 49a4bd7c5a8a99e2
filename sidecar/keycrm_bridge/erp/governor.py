"""One rate governor for MoySklad, shared by every process using the same SQLite file.

MoySklad counts *units*, not requests: 45 per 3 seconds per user (and per solution); a request
costs ``MOYSKLAD_UNITS_PER_REQUEST`` (4 for a user token from December 2026), a stock report at
least 5. At most 5 requests may run at once, and sustained 429s end in a ban, so a 429 blocks every
process for the time MoySklad names (``X-Lognex-Retry-After``). Like the KeyCRM budget: a sliding
window, each start a row, check and insert in one ``BEGIN IMMEDIATE``; waiting on the injected clock.
Its tables are made by migration ``0009_moysklad_governor``.
"""

from __future__ import annotations

import os
import threading

from ..clock import Clock
from ..migrations import migrate
from ..store import connect

WINDOW_S = 3.0
UNITS = 45
PARALLEL = 5
MARGIN_S = 0.05   # MoySklad counts on arrival, we on start: a little slack at the window's edge


class Governor:
    def __init__(self, db_path: str, clock: Clock, units: int = UNITS, parallel: int = PARALLEL) -> None:
        self.clock, self.units, self.parallel = clock, units, parallel
        self.conn = connect(db_path)
        # Its tables come from migration 0009; the governor may be the first to open the file (doctor).
        migrate(self.conn, db_path)
        self.lock = threading.Lock()

    def acquire(self, cost: int) -> int:
        """Wait until ``cost`` units and a parallel slot are free; returns the slot's row id."""
        cost = min(cost, self.units)
        while True:
            with self.lock:
                wait, slot = self._try(cost)
            if slot:
                return slot
            self.clock.sleep(max(wait, 0.005))

    def _try(self, cost: int) -> tuple[float, int]:
        now = self.clock.now()
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("DELETE FROM moysklad_units WHERE ts < ?", (now - 60,))
            blocked = c.execute("SELECT value FROM moysklad_state WHERE name = 'blocked_until'").fetchone()
            if blocked and blocked[0] > now:
                return blocked[0] - now, 0
            rows = c.execute("SELECT ts, units FROM moysklad_units WHERE ts > ? ORDER BY ts",
                             (now - WINDOW_S - MARGIN_S,)).fetchall()
            running = c.execute("SELECT count(*) FROM moysklad_units WHERE done = 0 AND ts > ?",
                                (now - 60,)).fetchone()[0]
            used = sum(r[1] for r in rows)
            if used + cost > self.units:
                # Wait until enough of the window's oldest starts have left it.
                freed, need = 0, used + cost - self.units
                for ts, units in rows:
                    freed += units
                    if freed >= need:
                        return ts + WINDOW_S + MARGIN_S - now, 0
            if running >= self.parallel:
                return 0.05, 0
            cur = c.execute("INSERT INTO moysklad_units (ts, units, pid) VALUES (?, ?, ?)", (now, cost, os.getpid()))
            return 0.0, int(cur.lastrowid or 0)
        finally:
            c.execute("COMMIT")

    def release(self, slot: int) -> None:
        with self.lock:
            self.conn.execute("UPDATE moysklad_units SET done = 1 WHERE rowid = ?", (slot,))

    def penalize(self, seconds: float) -> None:
        with self.lock:
            until = self.clock.now() + max(0.0, min(seconds, 600.0))
            self.conn.execute("INSERT INTO moysklad_state (name, value) VALUES ('blocked_until', ?) ON CONFLICT"
                              " (name) DO UPDATE SET value = max(value, excluded.value)", (until,))

    def used(self) -> int:
        now = self.clock.now()
        return int(self.conn.execute("SELECT coalesce(sum(units), 0) FROM moysklad_units WHERE ts > ?",
                                     (now - WINDOW_S,)).fetchone()[0])
