"""The per-SKU ledger: what each side last showed, the agreed value, site orders in flight, history.

Every source of change feeds it — plugin events (WooCommerce), KeyCRM webhooks, order-driven reads,
the sweep, our own writes — and marks the SKU dirty; the sync engine decides dirty SKUs in rounds.
``history`` keeps each observation and decision, which is what ``explain`` shows.

A mark is cleared only by whoever read it: every mark takes the next number of one counter
(``ledger_mark_seq``, bumped in the mark's own transaction) into the row's ``dirty_seq``, and every
clearing names the numbers it read (``clean``). A mark committed after the read has a higher number
and stays, whatever clocks the lanes stamp their marks with (the intake stamps a batch's start time).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .store import Store, chunks, marks

# Release 0.1.0's tables (migration 0001 in migrations.py creates them): never edit, add a migration.
SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    sku TEXT PRIMARY KEY,
    woo_stock REAL,
    woo_at REAL,
    kc_sellable REAL,
    kc_at REAL,
    agreed REAL,
    base_woo REAL,
    base_kc REAL,
    dirty_since REAL,
    dirty_touch REAL,
    hold TEXT
);
CREATE INDEX IF NOT EXISTS ledger_dirty ON ledger (dirty_since) WHERE dirty_since IS NOT NULL;
CREATE TABLE IF NOT EXISTS inflight (
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    kind TEXT NOT NULL,
    qty REAL NOT NULL,
    event_at REAL NOT NULL,
    registered_at REAL NOT NULL,
    resolved_at REAL,
    resolution TEXT,
    PRIMARY KEY (order_id, sku, kind, event_at)
);
CREATE INDEX IF NOT EXISTS inflight_open ON inflight (sku) WHERE resolved_at IS NULL;
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_sku ON history (sku, id);
CREATE TABLE IF NOT EXISTS guard_holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    status TEXT NOT NULL,
    skus TEXT NOT NULL,
    summary TEXT NOT NULL
);
"""


@dataclass
class Row:
    sku: str
    woo_stock: float | None
    woo_at: float | None
    kc_sellable: float | None
    kc_at: float | None
    agreed: float | None
    hold: str | None
    base_woo: float | None = None
    base_kc: float | None = None
    dirty_seq: int = 0  # the dirty mark as read: ``clean`` clears only that one


def seqs_read(rows: Mapping[str, Row], skus: Iterable[str]) -> dict[str, int]:
    """The marks these rows showed, for ``Ledger.clean``."""
    return {s: rows[s].dirty_seq for s in skus if s in rows}


# One counter for every mark; the mark and its bump share a transaction (a rollback undoes both).
_BUMP = "UPDATE ledger_mark_seq SET seq = seq + 1"
_MARK = ("UPDATE ledger SET dirty_since = coalesce(dirty_since, ?), dirty_touch = ?,"
         " dirty_seq = (SELECT seq FROM ledger_mark_seq) WHERE sku = ?")


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn

    # -- observations ------------------------------------------------------------------------

    def observe_woo(self, events: Iterable[dict[str, Any]], now: float, two_way: bool) -> set[str]:
        """Plugin stock events, oldest first. Returns the SKUs marked dirty.

        One statement per kind of row for the whole batch, not per event: the ledger keeps only each
        SKU's newest WooCommerce value anyway, and the history keeps one line per SKU and batch for
        plain edits (``events`` counts them) and one per site-order event, which ``explain`` needs."""
        evs = sorted(events, key=lambda e: (e["occurred_at"], e["id"]))
        dirty: set[str] = set()
        if not evs:
            return dirty
        newest: dict[str, tuple[float, Any]] = {}
        history: list[tuple[str, float, str, dict[str, Any]]] = []
        plain: dict[str, int] = {}
        with self.store.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO ledger (sku) VALUES (?)", [(s,) for s in {e["sku"] for e in evs}])
            for ev in evs:
                sku, at, cause = ev["sku"], ev["occurred_at"], ev["cause"]
                value = ev.get("stock_quantity")
                if value is not None:
                    newest[sku] = (at, value)  # oldest first: the last one is the newest
                delta = ev.get("quantity_delta")
                detail = {"cause": cause, "stock": value, "order_id": ev.get("order_id"), "delta": delta,
                          "event_id": ev["id"], "at": at}
                if cause in ("order", "order_restore") and ev.get("order_id") and delta:
                    kind = "order" if cause == "order" else "restore"
                    cur = c.execute(
                        "INSERT OR IGNORE INTO inflight (order_id, sku, kind, qty, event_at, registered_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)", (str(ev["order_id"]), sku, kind, -float(delta), at, now))
                    if cur.rowcount and two_way:
                        # The sale (or restore) happened on both sides as far as the merge is
                        # concerned: KeyCRM's part of it is counted by the inflight until it shows.
                        c.execute("UPDATE ledger SET agreed = agreed + ?, base_woo = base_woo + ?,"
                                  " base_kc = base_kc + ? WHERE sku = ? AND agreed IS NOT NULL",
                                  (float(delta), float(delta), float(delta), sku))
                    history.append((sku, now, "woo", detail))
                elif sku in plain:
                    i = plain[sku]
                    detail["events"] = history[i][3].get("events", 1) + 1  # (a new dict per event: ours)
                    history[i] = (sku, now, "woo", detail)
                else:
                    plain[sku] = len(history)
                    history.append((sku, now, "woo", detail))
                if cause != "sidecar":
                    dirty.add(sku)
            c.executemany("UPDATE ledger SET woo_stock = ?, woo_at = ? WHERE sku = ?"
                          " AND (woo_at IS NULL OR woo_at <= ?)",
                          [(value, at, sku, at) for sku, (at, value) in newest.items()])
            c.executemany("INSERT INTO history (sku, at, kind, detail) VALUES (?, ?, ?, ?)",
                          [(sku, at, kind, json.dumps(d, separators=(",", ":"))) for sku, at, kind, d in history])
            if dirty:
                c.execute(_BUMP)
                c.executemany(_MARK, [(now, now, sku) for sku in sorted(dirty)])
        return dirty

    def observe_keycrm(self, values: dict[str, float], now: float, source: str) -> set[str]:
        """KeyCRM sellable per SKU (webhook, read, sweep). Returns SKUs whose value changed."""
        changed: set[str] = set()
        with self.store.transaction() as c:
            for sku, sellable in values.items():
                c.execute("INSERT OR IGNORE INTO ledger (sku) VALUES (?)", (sku,))
                prev = c.execute("SELECT kc_sellable FROM ledger WHERE sku = ?", (sku,)).fetchone()[0]
                if prev != sellable:
                    # kc_at is when KeyCRM's value last *moved*: a reading that finds it unchanged (the sweep,
                    # a read before a write) must not look like a move to the order hold or to a resync.
                    c.execute("UPDATE ledger SET kc_sellable = ?, kc_at = ? WHERE sku = ?", (sellable, now, sku))
                    changed.add(sku)
                    self._history(c, sku, now, "keycrm", {"source": source, "sellable": sellable, "was": prev})
                    self._dirty(c, sku, now)
        return changed

    def mark_dirty(self, skus: Iterable[str], now: float) -> None:
        with self.store.transaction() as c:
            self.dirty_in(c, skus, now)

    @classmethod
    def dirty_in(cls, c: Any, skus: Iterable[str], now: float) -> None:
        """Mark SKUs for a decision inside a transaction the caller holds."""
        for sku in skus:
            c.execute("INSERT OR IGNORE INTO ledger (sku) VALUES (?)", (sku,))
            cls._dirty(c, sku, now)

    @classmethod
    def note_in(cls, c: Any, sku: str, now: float, kind: str, detail: dict[str, Any]) -> None:
        """A timeline entry inside a transaction the caller holds."""
        cls._history(c, sku, now, kind, detail)

    @staticmethod
    def _dirty(c: Any, sku: str, now: float) -> None:
        c.execute(_BUMP)
        c.execute(_MARK, (now, now, sku))

    @staticmethod
    def _history(c: Any, sku: str, now: float, kind: str, detail: dict[str, Any]) -> None:
        c.execute("INSERT INTO history (sku, at, kind, detail) VALUES (?, ?, ?, ?)",
                  (sku, now, kind, json.dumps(detail, separators=(",", ":"))))

    def note(self, sku: str, now: float, kind: str, detail: dict[str, Any]) -> None:
        self._history(self.conn, sku, now, kind, detail)

    def notes(self, rows: Iterable[tuple[str, str, dict[str, Any]]], now: float) -> None:
        with self.store.transaction() as c:
            c.executemany("INSERT INTO history (sku, at, kind, detail) VALUES (?, ?, ?, ?)",
                          [(sku, now, kind, json.dumps(detail, separators=(",", ":"))) for sku, kind, detail in rows])

    # -- reading -------------------------------------------------------------------------------

    def rows(self, skus: Iterable[str]) -> dict[str, Row]:
        out: dict[str, Row] = {}
        for part in chunks(skus):
            for r in self.conn.execute(
                "SELECT sku, woo_stock, woo_at, kc_sellable, kc_at, agreed, hold, base_woo, base_kc, dirty_seq"
                " FROM ledger"
                f" WHERE sku IN ({marks(part)})", part):
                out[r[0]] = Row(*r)
        return out

    def dirty_window(self) -> tuple[int, float | None, float | None]:
        r = self.conn.execute("SELECT count(*), min(dirty_since), max(dirty_touch) FROM ledger"
                              " WHERE dirty_since IS NOT NULL AND hold IS NULL").fetchone()
        return int(r[0]), r[1], r[2]

    def agreed_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM ledger WHERE agreed IS NOT NULL").fetchone()[0])

    def newest_mark(self) -> int:
        """The number of the newest mark still waiting (0: none): a larger one later means a new change."""
        r = self.conn.execute("SELECT max(dirty_seq) FROM ledger WHERE dirty_since IS NOT NULL AND hold IS NULL")
        return int(r.fetchone()[0] or 0)

    def dirty(self, limit: int = 10000) -> dict[str, int]:
        """The SKUs to decide, oldest mark first, each with the mark as read (for ``clean``)."""
        return {r[0]: int(r[1]) for r in self.conn.execute(
            "SELECT sku, dirty_seq FROM ledger WHERE dirty_since IS NOT NULL AND hold IS NULL"
            " ORDER BY dirty_since LIMIT ?", (limit,))}

    def clean(self, skus: Iterable[str], read: Mapping[str, int]) -> int:
        """Clear the dirty marks of these SKUs that are still the ones ``read`` saw; returns how many.

        A mark made after that read has a higher number and stays for the next round; a SKU
        ``read`` does not name stays too. Comparing times instead would clear a change the intake
        committed after the read under an earlier stamp (its batch's start), which then waited for
        the sweep."""
        params = [(sku, read[sku]) for sku in skus if sku in read]
        with self.store.transaction() as c:
            before = c.total_changes
            c.executemany("UPDATE ledger SET dirty_since = NULL, dirty_touch = NULL"
                          " WHERE sku = ? AND dirty_seq = ? AND dirty_since IS NOT NULL", params)
            return c.total_changes - before

    def set_values(self, rows: Iterable[tuple[Any, ...]], now: float, also: Callable[[Any], Any] | None = None,
                   decided_on: dict[str, Row] | None = None) -> None:
        """After our writes: (sku, woo_stock, kc_sellable, agreed[, base_woo, base_kc]); None keeps a value.

        Without bases, a side written to the agreed value has taken it: its base becomes the agreed value.
        ``also(conn)`` runs in the same transaction. ``decided_on`` (the rows the decision read) keeps
        what other lanes wrote meanwhile: a site order registered since moved the agreed value and both
        bases by its quantity, which the new values keep; a plugin event since then is newer than our
        write (the write was conditional on the value before it), so its WooCommerce value stays. One
        statement for all the rows."""
        params = []
        for row in rows:
            sku, woo, kc, agreed = row[:4]
            base_woo, base_kc = row[4:6] if len(row) >= 6 else (
                agreed if woo is not None else None, agreed if kc is not None else None)
            read = decided_on.get(sku) if decided_on is not None else None
            params.append({"sku": sku, "woo": woo, "kc": kc, "agreed": agreed, "base_woo": base_woo,
                           "base_kc": base_kc, "now": now, "tracked": int(read is not None),
                           "read_agreed": read.agreed if read else None, "read_woo_at": read.woo_at if read else None})
        drift = "(CASE WHEN :tracked THEN coalesce(agreed - :read_agreed, 0) ELSE 0 END)"
        woo_kept = ":tracked AND woo_at IS NOT NULL AND woo_at IS NOT :read_woo_at"
        with self.store.transaction() as c:
            if also is not None:
                also(c)
            c.executemany(
                "UPDATE ledger SET"
                f" base_woo = CASE WHEN :base_woo IS NULL THEN base_woo ELSE :base_woo + {drift} END,"
                f" base_kc = CASE WHEN :base_kc IS NULL THEN base_kc ELSE :base_kc + {drift} END,"
                f" woo_stock = CASE WHEN :woo IS NULL OR ({woo_kept}) THEN woo_stock ELSE :woo END,"
                f" woo_at = CASE WHEN :woo IS NULL OR ({woo_kept}) THEN woo_at ELSE max(coalesce(woo_at, 0), :now) END,"
                " kc_sellable = coalesce(:kc, kc_sellable), kc_at = CASE WHEN :kc IS NULL THEN kc_at ELSE :now END,"
                f" agreed = CASE WHEN :agreed IS NULL THEN agreed ELSE :agreed + {drift} END"
                " WHERE sku = :sku", params)

    def history(self, sku: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT at, kind, detail FROM history WHERE sku = ? ORDER BY id DESC LIMIT ?",
                                 (sku, limit)).fetchall()
        return [{"at": r[0], "kind": r[1], **json.loads(r[2])} for r in reversed(rows)]

    def prune_history(self, before: float) -> None:
        self.conn.execute("DELETE FROM history WHERE at < ?", (before,))

    # -- site orders in flight ------------------------------------------------------------------

    def inflight(self, skus: Iterable[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in chunks(skus):
            for sku, qty in self.conn.execute(
                f"SELECT sku, sum(qty) FROM inflight WHERE resolved_at IS NULL AND sku IN ({marks(part)})"
                " GROUP BY sku", part):
                out[sku] = float(qty)
        return out

    def open_inflight(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT order_id, sku, kind, qty, event_at, registered_at FROM inflight WHERE resolved_at IS NULL"
            " ORDER BY registered_at")]

    def resolve(self, keys: Iterable[tuple[str, str, str, float]], now: float, resolution: str) -> set[str]:
        """keys: (order_id, sku, kind, event_at). Returns the SKUs affected (now dirty)."""
        skus: set[str] = set()
        with self.store.transaction() as c:
            for order_id, sku, kind, event_at in keys:
                cur = c.execute("UPDATE inflight SET resolved_at = ?, resolution = ? WHERE order_id = ? AND sku = ?"
                                " AND kind = ? AND event_at = ? AND resolved_at IS NULL",
                                (now, resolution, order_id, sku, kind, event_at))
                if cur.rowcount:
                    skus.add(sku)
                    self._history(c, sku, now, "order", {"order_id": order_id, "kind": kind,
                                                         "resolution": resolution})
                    self._dirty(c, sku, now)
        return skus

    # -- guard holds ------------------------------------------------------------------------------

    def hold(self, skus: list[str], summary: dict[str, Any], now: float) -> int:
        with self.store.transaction() as c:
            # mark_seq: the marks made before the hold, which a dismissal clears (release_hold).
            cur = c.execute("INSERT INTO guard_holds (at, status, skus, summary, mark_seq)"
                            " VALUES (?, 'held', ?, ?, (SELECT seq FROM ledger_mark_seq))",
                            (now, json.dumps(skus), json.dumps(summary)))
            hold_id = int(cur.lastrowid or 0)
            for part in chunks(skus):
                c.execute(f"UPDATE ledger SET hold = ? WHERE sku IN ({marks(part)})",
                          (f"guard:{hold_id}", *part))
        return hold_id

    def holds(self, status: str | None = "held") -> list[dict[str, Any]]:
        q = "SELECT id, at, status, skus, summary FROM guard_holds"
        rows = self.conn.execute(q + (" WHERE status = ?" if status else "") + " ORDER BY id",
                                 (status,) if status else ()).fetchall()
        return [{"id": r[0], "at": r[1], "status": r[2], "skus": json.loads(r[3]), **json.loads(r[4])} for r in rows]

    def set_hold_status(self, hold_id: int, status: str, now: float) -> bool:
        """Operator's answer: ``confirmed`` (apply) or ``dismissed``; the worker acts on it."""
        cur = self.conn.execute("UPDATE guard_holds SET status = ? WHERE id = ? AND status = 'held'",
                                (status, hold_id))
        return bool(cur.rowcount)

    def release_hold(self, hold_id: int, now: float, final: str) -> list[str]:
        with self.store.transaction() as c:
            row = c.execute("SELECT skus, mark_seq FROM guard_holds WHERE id = ?", (hold_id,)).fetchone()
            skus: list[str] = json.loads(row[0]) if row else []
            before = row[1] if row and row[1] is not None else (1 << 62)  # a hold from before 0008: all
            c.execute("UPDATE guard_holds SET status = ? WHERE id = ?", (final, hold_id))
            c.execute("UPDATE ledger SET hold = NULL WHERE hold = ?", (f"guard:{hold_id}",))
            if final == "applied":
                for sku in skus:
                    self._dirty(c, sku, now)
            else:
                # What was held is dropped; a change that came during the hold is decided.
                for part in chunks(skus):
                    c.execute("UPDATE ledger SET dirty_since = NULL, dirty_touch = NULL"
                              f" WHERE sku IN ({marks(part)}) AND dirty_seq <= ?", (*part, before))
        return skus

    def size(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM ledger").fetchone()[0])
