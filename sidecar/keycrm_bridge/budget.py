"""The one rate budget for every KeyCRM call, shared by every process that uses the same SQLite file.

KeyCRM allows 60 requests a minute per API key. The worker, a CLI resync and ``doctor`` may run at
the same time with the same key, so the budget cannot live in one process's memory: each call that
starts is a row in ``keycrm_calls``, and the check "is there a free slot?" plus the insert run in one
``BEGIN IMMEDIATE`` transaction, so two processes can never both take the last slot.

Semantics — a sliding 60-second window, not a token bucket: a call may start at ``now`` only if
fewer than the limit started in ``(now - 60, now]``. Then no 60-second window ever holds more calls
than the budget (a bucket with burst allows up to twice the rate across a window edge).

Priorities: stock writes may use the whole budget, reads and product-field writes only
``per_minute - write_reserve``, so neither a full-catalogue read nor a hundred product renames
ever lock out a stock push.

Waiting is fair and shared too: a caller that has to wait takes a ticket in ``keycrm_waiters``.
A write may start only when no older write waits; a read only when no write and no older read
waits. Without the queue, whichever process happens to wake first after a slot frees would win
every time, and a CLI resync could wait out the worker's whole sweep. A ticket is dropped when
its process is gone (killed) or has not come back within ``STALE_S`` of its wake-up time. (SQLite
in WAL mode needs all its processes on one host, so process ids are comparable.)

A 429 from KeyCRM sets ``blocked_until`` (``penalize``); every process honours it.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from keycrm_bridge.clock import Clock
from keycrm_bridge.store import enable_wal

WINDOW_S = 60.0
# A call leaves the window this long after it is exactly WINDOW_S old. KeyCRM counts a call when
# it arrives, we count it when it starts: a call started the moment the oldest one leaves our
# window may reach KeyCRM while KeyCRM still counts that one (the network is not equally fast every
# time) and earn a 429 that costs two slots. A quarter second costs a fraction of a slot a minute.
LEAVE_MARGIN_S = 0.25
# Smallest wait handed to clock.sleep, so a rounding-level wait can never spin without time moving.
MIN_WAIT_S = 0.001
# Rows older than this are deleted; they are kept a little longer than the window for status views.
KEEP_S = 300.0
# A caller queued behind another checks again this long after the other's wake-up time, which
# gives the other the moment to take its slot.
HANDOVER_S = 0.05
# A ticket whose owner has not come back this long after its wake-up time is dropped (a dead
# owner's ticket is dropped at once; this covers a stuck one).
STALE_S = 30.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keycrm_calls ( ts REAL NOT NULL, priority TEXT NOT NULL, endpoint TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS keycrm_calls_ts ON keycrm_calls (ts)",
    "CREATE TABLE IF NOT EXISTS keycrm_budget_state (name TEXT PRIMARY KEY, value REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keycrm_waiters ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, priority TEXT NOT NULL, wake_at REAL NOT NULL, pid INTEGER NOT NULL)",
)
_BLOCKED_UNTIL = "blocked_until"


class Priority(enum.StrEnum):
    WRITE = "write"    # stock writes: the whole budget, queued only behind older stock writes
    FIELDS = "fields"  # product fields (PUT /offers, PUT /products/{id}): a read's share and place in the
    #                    queue, so that stock is never queued behind product fields
    READ = "read"


@dataclass(frozen=True)
class BudgetSnapshot:
    """What status pages and metrics show about the budget."""

    per_minute: int
    write_reserve: int
    used_last_minute: int
    left_write: int
    left_read: int
    blocked_until: float | None
    waiting: int
    calls_by_endpoint: dict[str, int]


def default_write_reserve(per_minute: int) -> int:
    # Reads must keep at least one slot, so a budget of 1 has no reserve.
    return min(max(1, per_minute // 6), per_minute - 1)


class RateBudget:
    """Sliding-window budget of ``per_minute`` KeyCRM calls, stored in the SQLite file ``db_path``."""

    def __init__(
        self,
        db_path: str | Path,
        clock: Clock,
        *,
        per_minute: int = 60,
        write_reserve: int | None = None,
        busy_timeout_s: float = 30.0,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        reserve = default_write_reserve(per_minute) if write_reserve is None else write_reserve
        if not 0 <= reserve < per_minute:
            raise ValueError("write_reserve must be >= 0 and leave reads at least one call a minute")
        self.per_minute = per_minute
        self.write_reserve = reserve
        self.db_path = str(db_path)
        self._clock = clock
        # One connection per budget object; threads of this process take turns on it.
        self._db_lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.db_path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        enable_wal(self._conn)
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._transaction():
            waiter_columns = {row[1] for row in self._conn.execute("PRAGMA table_info(keycrm_waiters)")}
            if waiter_columns and "pid" not in waiter_columns:
                # Tickets are transient: a queue table from an older layout is simply rebuilt.
                self._conn.execute("DROP TABLE keycrm_waiters")
            for statement in _SCHEMA:
                self._conn.execute(statement)

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        with self._db_lock:
            self._conn.close()

    def __enter__(self) -> RateBudget:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- taking slots ----------------------------------------------------------------------------
    def limit_for(self, priority: Priority) -> int:
        return self.per_minute if priority is Priority.WRITE else self.per_minute - self.write_reserve

    def acquire(self, priority: Priority = Priority.READ, endpoint: str = "") -> float:
        """Wait (on the injected clock) until a call may start, record it and return its start time."""
        ticket: int | None = None
        try:
            while True:
                started, wait, ticket = self._take(priority, endpoint, ticket, queue=True)
                if started is not None:
                    return started
                self._clock.sleep(wait)
        finally:
            if ticket is not None:  # interrupted while waiting: leave the queue
                self._drop_ticket(ticket)

    def try_acquire(self, priority: Priority = Priority.READ, endpoint: str = "") -> bool:
        """Take a slot if one is free now and nobody is queued ahead; never waits (but for SQLite's lock)."""
        started, _, _ = self._take(priority, endpoint, None, queue=False)
        return started is not None

    def next_slot_in(self, priority: Priority = Priority.READ) -> float:
        """Seconds until the window (and any 429 block) lets a call of ``priority`` start; 0.0 if now.

        Callers queued ahead are not counted."""
        with self._transaction(immediate=False):
            now = self._clock.now()
            return self._wait_locked(priority, now)

    def penalize(self, retry_after_s: float) -> float:
        """KeyCRM said 429: no process may start a call for ``retry_after_s``. Returns blocked_until."""
        with self._transaction():
            until = self._clock.now() + max(0.0, retry_after_s)
            self._conn.execute(
                "INSERT INTO keycrm_budget_state (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                (_BLOCKED_UNTIL, until),
            )
            row = self._conn.execute(
                "SELECT value FROM keycrm_budget_state WHERE name = ?", (_BLOCKED_UNTIL,)
            ).fetchone()
            return float(row[0])

    # -- status ----------------------------------------------------------------------------------
    def used_last_minute(self) -> int:
        with self._transaction(immediate=False):
            now = self._clock.now()
            return len(self._window_ts(now))

    def started_last_minute(self, priority: Priority, *, reads_too: bool = True) -> int:
        """Calls of ``priority`` started in the last 60 s, by every process (for pacing, ``pacing.py``).

        ``reads_too=False`` leaves out GET requests of that priority (the order poll's)."""
        with self._transaction(immediate=False):
            since = self._clock.now() - WINDOW_S
            sql = "SELECT count(*) FROM keycrm_calls WHERE ts > ? AND priority = ?"
            if not reads_too:
                sql += " AND endpoint NOT LIKE 'GET %'"
            row = self._conn.execute(sql, (since, priority.value)).fetchone()
            return int(row[0])

    def left(self, priority: Priority = Priority.WRITE) -> int:
        """Calls of ``priority`` that could start right now (0 while blocked by a 429)."""
        with self._transaction(immediate=False):
            now = self._clock.now()
            if self._blocked_until_locked() > now:
                return 0
            return max(0, self.limit_for(priority) - len(self._window_ts(now)))

    def blocked_until(self) -> float | None:
        with self._transaction(immediate=False):
            until = self._blocked_until_locked()
            return until if until > self._clock.now() else None

    def waiting(self) -> int:
        """Callers (of every process) queued for a slot."""
        with self._transaction(immediate=False):
            return int(self._conn.execute("SELECT count(*) FROM keycrm_waiters").fetchone()[0])

    def calls_by_endpoint(self, window_s: float = WINDOW_S) -> dict[str, int]:
        with self._transaction(immediate=False):
            since = self._clock.now() - window_s
            rows = self._conn.execute(
                "SELECT endpoint, count(*) FROM keycrm_calls WHERE ts > ? GROUP BY endpoint ORDER BY endpoint",
                (since,),
            ).fetchall()
            return {str(endpoint): int(n) for endpoint, n in rows}

    def snapshot(self) -> BudgetSnapshot:
        return BudgetSnapshot(
            per_minute=self.per_minute,
            write_reserve=self.write_reserve,
            used_last_minute=self.used_last_minute(),
            left_write=self.left(Priority.WRITE),
            left_read=self.left(Priority.READ),
            blocked_until=self.blocked_until(),
            waiting=self.waiting(),
            calls_by_endpoint=self.calls_by_endpoint(),
        )

    # -- internals -------------------------------------------------------------------------------
    def _take(
        self, priority: Priority, endpoint: str, ticket: int | None, *, queue: bool
    ) -> tuple[float | None, float, int | None]:
        """One check-and-record: ``(start, 0, None)`` when the call may start, else ``(None, wait, ticket)``.

        With ``queue`` a caller that must wait keeps (or takes) a place in ``keycrm_waiters``.
        """
        with self._transaction():
            # The clock is read while holding SQLite's write lock, so start times recorded by all
            # processes are in commit order and the window check sees every earlier call.
            now = self._clock.now()
            conn = self._conn
            self._drop_stale_locked(now)
            if (
                ticket is not None
                and not conn.execute("SELECT 1 FROM keycrm_waiters WHERE id = ?", (ticket,)).fetchone()
            ):
                ticket = None  # overslept and dropped as stale: queue again at the back
            ahead_wake = self._ahead_wake_locked(priority, ticket)
            wait = self._wait_locked(priority, now)
            if ahead_wake is None and wait <= 0:
                conn.execute(
                    "INSERT INTO keycrm_calls (ts, priority, endpoint) VALUES (?, ?, ?)",
                    (now, priority.value, endpoint),
                )
                conn.execute("DELETE FROM keycrm_calls WHERE ts < ?", (now - KEEP_S,))
                if ticket is not None:
                    conn.execute("DELETE FROM keycrm_waiters WHERE id = ?", (ticket,))
                return now, 0.0, None
            if ahead_wake is not None:
                wait = max(wait, max(ahead_wake - now, 0.0) + HANDOVER_S)
            if queue:
                if ticket is None:
                    cur = conn.execute(
                        "INSERT INTO keycrm_waiters (priority, wake_at, pid) VALUES (?, ?, ?)",
                        (priority.value, now + wait, os.getpid()),
                    )
                    ticket = cur.lastrowid
                else:
                    conn.execute("UPDATE keycrm_waiters SET wake_at = ? WHERE id = ?", (now + wait, ticket))
            return None, wait, ticket

    def _drop_stale_locked(self, now: float) -> None:
        me = os.getpid()
        pids = [int(p) for (p,) in self._conn.execute("SELECT DISTINCT pid FROM keycrm_waiters WHERE pid != ?", (me,))]
        dead = [p for p in pids if not _process_alive(p)]
        self._conn.execute("DELETE FROM keycrm_waiters WHERE wake_at < ?", (now - STALE_S,))
        self._conn.executemany("DELETE FROM keycrm_waiters WHERE pid = ?", [(p,) for p in dead])

    def _ahead_wake_locked(self, priority: Priority, ticket: int | None) -> float | None:
        """Earliest wake-up time of the callers queued ahead of ``ticket`` (None: nobody is ahead).

        Writes queue behind older writes only; reads behind every write and older reads."""
        if priority is Priority.WRITE:
            sql = "SELECT min(wake_at) FROM keycrm_waiters WHERE priority = 'write' AND (? IS NULL OR id < ?)"
        else:
            sql = "SELECT min(wake_at) FROM keycrm_waiters WHERE priority = 'write' OR ? IS NULL OR id < ?"
        row = self._conn.execute(sql, (ticket, ticket)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _drop_ticket(self, ticket: int) -> None:
        with self._transaction():
            self._conn.execute("DELETE FROM keycrm_waiters WHERE id = ?", (ticket,))

    def _window_ts(self, now: float) -> list[float]:
        # No upper bound: a row "in the future" (the system clock stepped back) still counts.
        rows = self._conn.execute(
            "SELECT ts FROM keycrm_calls WHERE ts > ? ORDER BY ts", (now - WINDOW_S - LEAVE_MARGIN_S,)
        ).fetchall()
        return [float(r[0]) for r in rows]

    def _blocked_until_locked(self) -> float:
        row = self._conn.execute("SELECT value FROM keycrm_budget_state WHERE name = ?", (_BLOCKED_UNTIL,)).fetchone()
        return float(row[0]) if row else 0.0

    def _wait_locked(self, priority: Priority, now: float) -> float:
        wait = 0.0
        blocked = self._blocked_until_locked()
        if blocked > now:
            wait = blocked - now
        in_window = self._window_ts(now)
        limit = self.limit_for(priority)
        if len(in_window) >= limit:
            # Enough of the oldest calls must leave that fewer than `limit` remain.
            leaving = in_window[len(in_window) - limit]
            wait = max(wait, leaving + WINDOW_S + LEAVE_MARGIN_S - now, MIN_WAIT_S)
        elif wait > 0:
            wait = max(wait, MIN_WAIT_S)
        return wait

    def _transaction(self, immediate: bool = True) -> _Transaction:
        return _Transaction(self._conn, self._db_lock, immediate)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class _Transaction:
    """Holds this process's connection lock and one SQLite transaction."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock, immediate: bool) -> None:
        self._conn = conn
        self._lock = lock
        self._begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute(self._begin)
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self._lock.release()
