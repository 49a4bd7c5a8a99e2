"""The ERP stage of the worker: reads queued packages, applies them, and does the follow-ups.

A job is one file 1C asked to import (or one MoySklad report). It moves ``queued`` → ``running``
→ ``done`` | ``failed``; the HTTP layer only queues jobs and reads their state, which is what 1C's
``mode=import`` calls poll. A worker killed mid-job leaves it ``running``; the next worker runs it
again from the start (staging is per job and the write step compares with what KeyCRM has, so a
second run writes nothing twice).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..config import Settings
from ..errors import PermanentError, RetryableError
from ..wiring import Engines
from .apply import Applier
from .intake import Intake, report_json
from .safety import HostilePackage, Limits, remove_tree, safe_relative, unpack_zip

log = logging.getLogger("keycrm_bridge.erp")

FINALIZE = "*finalize*"      # the job that closes a 1C exchange (full package: what did it lack?)
MAX_JOB_ATTEMPTS = 3
DRIFT_CHECK_S = 30.0         # how often KeyCRM's on-hand (as the sweep saw it) is compared with the ERP's


def exchange_dir(settings: Settings, exchange_id: int) -> Path:
    return Path(settings.database_path).resolve().parent / "erp-1c" / str(exchange_id)


def limits_of(settings: Settings) -> Limits:
    assert settings.erp is not None
    return Limits(max_upload_bytes=settings.erp.max_upload_mb * 2**20)


def queue_job(conn: Any, source: str, exchange_id: int | None, filename: str, now: float) -> int:
    cur = conn.execute("INSERT INTO erp_jobs (source, exchange_id, filename, created_at) VALUES (?, ?, ?, ?)",
                       (source, exchange_id, filename, now))
    return int(cur.lastrowid or 0)


class ErpStage:
    def __init__(self, settings: Settings, engines: Engines, clock: Clock) -> None:
        assert settings.erp is not None
        self.settings, self.erp, self.clock = settings, settings.erp, clock
        self.store = engines.store
        self.conn = engines.store.conn
        self.source = self.erp.erp
        self.intake = Intake(self.store, self.source, limits_of(settings), self.erp.price_type, clock)
        self.applier = Applier(self.store, engines.ledger, engines.keycrm, engines.sync, settings, clock, self.source)
        self._drift_at = -1e18
        self.extra: list[Any] = []  # other ERP work of the round (MoySklad's polls), each with .tick()
        # Jobs whose filename starts with a prefix here are run by that handler (MoySklad's reads).
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}

    def run_next_job(self) -> bool:
        job = self.conn.execute("SELECT * FROM erp_jobs WHERE status IN ('queued', 'running') ORDER BY id LIMIT 1"
                                ).fetchone()
        if job is None:
            return False
        self.run_job(dict(job))
        return True

    def follow_ups(self) -> bool:
        """What applied packages leave to do: confirmed zeroing, reads after the review, the owner's
        retries of set-aside items, drift, product fields."""
        worked = self._zero_confirmed()
        worked = self.intake.aside.retry_due() > 0 or worked
        worked = self.applier.after_review() > 0 or worked
        worked = self.applier.read_unknown() > 0 or worked
        if self.clock.now() - self._drift_at >= DRIFT_CHECK_S:
            self._drift_at = self.clock.now()
            worked = self.applier.restore_drift(self.source) > 0 or worked
        return self.applier.send_fields() > 0 or worked

    def tick(self) -> bool:
        """One round of everything (tests and the benchmark drive the stage without a worker)."""
        worked = self.run_next_job()
        worked = self.follow_ups() or worked
        for extra in self.extra:
            worked = bool(extra.tick()) or worked
        return worked

    # -- one job ---------------------------------------------------------------------------------

    def run_job(self, job: dict[str, Any]) -> None:
        now = self.clock.now()
        self.conn.execute("UPDATE erp_jobs SET status = 'running', started_at = ? WHERE id = ?", (now, job["id"]))
        self.intake.discard(job["id"])  # a run cut short by a restart starts clean
        try:
            handler = next((h for p, h in self.handlers.items() if job["filename"].startswith(p)), None)
            if job["filename"] == FINALIZE:
                report = self.finalize(int(job["exchange_id"]))
            elif handler is not None:
                report = handler(job)
            else:
                report = self.import_file(job)
        except HostilePackage as exc:
            self._fail(job, str(exc))
            return
        except PermanentError as exc:
            self._fail(job, f"KeyCRM refused the write: {exc}")
            return
        except RetryableError:
            # KeyCRM is down or rate-limited: the job stays 'running' and 1C keeps hearing "progress".
            self.intake.discard(job["id"])
            raise
        except Exception as exc:
            # A fault of ours must not hold every later package: after a few tries the job is refused.
            key = f"erp_job_attempts:{job['id']}"
            tries = int(self.store.get_meta(key, 0) or 0) + 1
            self.store.set_meta(key, tries)
            if tries < MAX_JOB_ATTEMPTS:
                raise
            self._fail(job, f"internal error after {tries} tries ({type(exc).__name__}: {exc}); see the sidecar log")
            return
        self.conn.execute("UPDATE erp_jobs SET status = 'done', kind = ?, changes_only = ?, report = ?, message = ?,"
                          " finished_at = ? WHERE id = ?",
                          (report.get("kind"), report.get("changes_only"), report_json(report), summary(report),
                           self.clock.now(), job["id"]))
        self.store.set_meta("erp_last_package", {"at": self.clock.now(), "job_id": job["id"],
                                                 "file": job["filename"], **report})
        log.info("ERP package applied", extra={"job_id": job["id"], "file": job["filename"],
                                               **{k: v for k, v in report.items() if isinstance(v, int | str)}})

    def _fail(self, job: dict[str, Any], message: str) -> None:
        self.intake.discard(job["id"])
        self.conn.execute("UPDATE erp_jobs SET status = 'failed', message = ?, finished_at = ? WHERE id = ?",
                          (message[:500], self.clock.now(), job["id"]))
        self.store.set_meta("erp_last_failure", {"at": self.clock.now(), "file": job["filename"],
                                                 "error": message[:500]})
        log.warning("ERP package refused; nothing applied", extra={"job_id": job["id"], "file": job["filename"],
                                                                   "error": message[:300]})

    def import_file(self, job: dict[str, Any]) -> dict[str, Any]:
        exchange_id = int(job["exchange_id"] or 0)
        path = self.locate(exchange_id, job["filename"])
        file_report = self.intake.read_file(job["id"], path, self.clock.now(), job["filename"])
        report: dict[str, Any] = file_report.as_dict()
        return {**report, **self.commit(job["id"], exchange_id, report)}

    def commit(self, job_id: int, exchange_id: int, report: dict[str, Any], merge: bool = False) -> dict[str, Any]:
        """A package read whole: learn its ids, take its stock as the ERP's, write KeyCRM."""
        now = self.clock.now()
        renames = self.intake.commit(job_id, now)
        skus = self.applier.stock_from_stage(job_id, exchange_id, merge)
        self.applier.fields_from_stage(job_id)
        self.conn.execute("DELETE FROM erp_stage WHERE job_id = ?", (job_id,))
        out: dict[str, Any] = self.applier.apply(skus) if skus else {"rows_written": 0, "rows_unchanged": 0, "puts": 0}
        out["renamed"] = len(renames)
        out["renames"] = [{"guid": g, "from": a, "to": b} for g, a, b in renames[:20]]
        out["skus_with_stock"] = len(skus)
        return out

    def locate(self, exchange_id: int, filename: str) -> Path:
        base = exchange_dir(self.settings, exchange_id)
        rel = safe_relative(filename)
        self.verify_uploads(exchange_id)
        for candidate in (base / "files" / rel, base / "unpacked" / rel, base / "unpacked" / rel.name):
            if candidate.is_file():
                return candidate
        self.unpack(exchange_id)
        for candidate in (base / "unpacked" / rel, base / "unpacked" / rel.name):
            if candidate.is_file():
                return candidate
        raise HostilePackage(f"{filename} was not uploaded in this exchange (mode=file first)")

    def verify_uploads(self, exchange_id: int) -> None:
        """Every uploaded file is exactly its recorded chunks: same length, same SHA-256 per chunk."""
        base = exchange_dir(self.settings, exchange_id) / "files"
        rows = self.conn.execute("SELECT filename, offset, length, sha256 FROM erp_chunks WHERE exchange_id = ?"
                                 " ORDER BY filename, seq", (exchange_id,)).fetchall()
        files: dict[str, int] = {}
        for name, offset, length, digest in rows:
            path = base / name
            with open(path, "rb") as fh:
                fh.seek(offset)
                h = hashlib.sha256()
                left = length
                while left:
                    block = fh.read(min(left, 1 << 16))
                    if not block:
                        break
                    h.update(block)
                    left -= len(block)
            if left or h.hexdigest() != digest:
                raise HostilePackage(f"{name}: a chunk at byte {offset} does not match its checksum; "
                                     "run the exchange again")
            files[name] = offset + length
        for name, size in files.items():
            if (base / name).stat().st_size != size:
                raise HostilePackage(f"{name} is {(base / name).stat().st_size} bytes, {size} were received")

    def unpack(self, exchange_id: int) -> None:
        base = exchange_dir(self.settings, exchange_id)
        marker = base / "unpacked" / ".done"
        if marker.exists():
            return
        (base / "unpacked").mkdir(parents=True, exist_ok=True)
        for archive in sorted((base / "files").rglob("*.zip")):
            unpack_zip(archive, base / "unpacked", self.intake.limits)
        marker.touch()

    # -- the end of an exchange -------------------------------------------------------------------

    def finalize(self, exchange_id: int) -> dict[str, Any]:
        """A full package (every file of the exchange) is now complete: report what it lacked.

        The exchange's files are read; they are removed so that an exchange every few minutes does
        not fill the disk (the jobs keep what each file did)."""
        remove_tree(exchange_dir(self.settings, exchange_id))
        self.conn.execute("DELETE FROM erp_chunks WHERE exchange_id = ?", (exchange_id,))
        full = self.conn.execute(
            "SELECT count(*) FROM erp_jobs WHERE exchange_id = ? AND source = ? AND status = 'done' AND kind = 'offers'"
            " AND coalesce(changes_only, 0) = 0 AND json_extract(report, '$.skus_with_stock') > 0",
            (exchange_id, self.source)).fetchone()[0]
        if not full:
            return {"kind": "finalize", "full": False, "missing": 0}
        return {"kind": "finalize", "full": True, **self.handle_missing(exchange_id)}

    def handle_missing(self, exchange_id: int) -> dict[str, Any]:
        missing = self.applier.missing_of_full(exchange_id)
        now = self.clock.now()
        out: dict[str, Any] = {"missing": len(missing), "missing_examples": missing[:20]}
        if not missing:
            return out
        reason = "not in the ERP's last full package" + ("" if self.erp.zero_missing else
                                                           " (kept; ERP_ZERO_MISSING=true sets it to 0)")
        self.intake.aside.add([(f"missing:{s}", s, reason, None) for s in missing], None)
        if not self.erp.zero_missing:
            out["zeroed"] = 0
            return out
        catalogue = int(self.conn.execute("SELECT count(DISTINCT sku) FROM erp_stock WHERE source = ?",
                                          (self.source,)).fetchone()[0])
        if len(missing) >= self.settings.guard_min_skus and len(missing) > self.settings.guard_share * catalogue:
            summary_ = {"reason": f"the ERP's full package lacks {len(missing)} of {catalogue} SKUs; confirm to set "
                                  "them to 0 in KeyCRM", "examples": [{"sku": s, "to": 0} for s in missing[:20]],
                        "erp_exchange": exchange_id}
            hold_id = self.applier.ledger.hold(missing, summary_, now)
            holds = self.store.get_meta("erp_zero_holds", {})
            holds[str(hold_id)] = exchange_id
            self.store.set_meta("erp_zero_holds", holds)
            out.update(zeroed=0, held=len(missing), hold_id=hold_id)
            log.warning("ERP full package lacks many SKUs; zeroing held", extra={"hold_id": hold_id,
                                                                                "skus": len(missing)})
            return out
        return {**out, **self._zero(missing, exchange_id)}

    def _zero(self, skus: list[str], exchange_id: int) -> dict[str, Any]:
        self.applier.zero(skus, exchange_id)
        result = self.applier.apply(skus)
        return {"zeroed": len(skus), "zero_rows_written": result["rows_written"]}

    def _zero_confirmed(self) -> bool:
        holds: dict[str, int] = self.store.get_meta("erp_zero_holds", {})
        if not holds:
            return False
        worked = False
        for hold_id, exchange_id in list(holds.items()):
            row = self.conn.execute("SELECT status, skus FROM guard_holds WHERE id = ?", (int(hold_id),)).fetchone()
            status = row[0] if row else "dismissed"
            if status in ("confirmed", "applied"):
                if status == "confirmed":
                    self.applier.ledger.release_hold(int(hold_id), self.clock.now(), "applied")
                self._zero(json.loads(row[1]), exchange_id)
                worked = True
            if status != "held":
                del holds[hold_id]
        self.store.set_meta("erp_zero_holds", holds)
        return worked


def summary(report: dict[str, Any]) -> str:
    """One line for 1C's log and the status page."""
    if report.get("kind") == "finalize":
        if not report.get("full"):
            return "exchange complete"
        return (f"full package: {report.get('missing', 0)} SKUs missing, {report.get('zeroed', 0)} set to 0"
                + (f", {report['held']} held for confirmation (hold {report['hold_id']})"
                   if report.get("held") else ""))
    aside = sum((report.get("set_aside") or {}).values())
    kind = "changes only" if report.get("changes_only") else "full"
    return (f"{report.get('items', 0)} items ({kind}), {report.get('rows_written', 0)} stock rows written, "
            f"{report.get('rows_unchanged', 0)} unchanged, {aside} set aside")
