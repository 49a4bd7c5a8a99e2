"""``keycrm-bridge resync [--dry-run] [--create-missing] [--yes]``: start a full resync and watch it.

The command creates the job row, like ``POST /v1/resync``. When a worker is running (it holds the
worker lock) the worker does the job and the command follows it; when none is, the command takes the
worker lock and runs the job itself, so the resync works on a bridge that is only set up, not
started. Either way a terminal progress bar shows the phase, items done, errors and the ETA, then a
summary and where the report was written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from .config import ConfigError, Settings, load_settings
from .resync import status_of
from .resync_plan import FINISHED, AlreadyRunning, ResyncJobs
from .store import Store

BAR_WIDTH = 30


def add_parser(sub: Any) -> None:
    p = sub.add_parser("resync", help="full resync: compare both catalogues, report, fix the drift")
    p.add_argument("--dry-run", action="store_true", help="report only: change nothing")
    p.add_argument("--create-missing", action="store_true",
                   help="create products that exist only in WooCommerce in KeyCRM")
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.add_argument("--report-dir", default=None,
                   help="where to write the plan as CSV and JSON (default: beside the database)")
    p.add_argument("--json", action="store_true", help="print the final status as JSON")
    p.set_defaults(func=cmd_resync)


class ProgressBar:
    """One line redrawn in place on a terminal; plain lines (at most one a second) elsewhere."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last = ""
        self._last_at = 0.0

    def update(self, st: dict[str, Any]) -> None:
        line = render(st)
        if self.tty:
            self.out.write("\r" + line.ljust(len(self._last)))
            self.out.flush()
        elif line != self._last and (time.monotonic() - self._last_at >= 1.0 or st["phase"] in FINISHED):
            self.out.write(line + "\n")
            self.out.flush()
            self._last_at = time.monotonic()
        self._last = line

    def close(self) -> None:
        if self.tty and self._last:
            self.out.write("\n")
            self.out.flush()


def render(st: dict[str, Any]) -> str:
    total, done = int(st.get("total") or 0), int(st.get("done") or 0)
    share = min(1.0, done / total) if total else (1.0 if st["phase"] == "done" else 0.0)
    filled = int(round(share * BAR_WIDTH))
    eta = st.get("eta_s")
    eta_text = "" if eta is None else f" · ETA {_duration(float(eta))}"
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share * 100:3.0f}% {st['phase']:<15} "
            f"{done}/{total} · {st.get('errors', 0)} errors{eta_text}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def write_reports(jobs: ResyncJobs, job: dict[str, Any], st: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, chunks in (("csv", jobs.report_csv(job)), ("json", jobs.report_json(job, st))):
        path = directory / f"keycrm-resync-{job['id']}.{fmt}"
        with path.open("w", encoding="utf-8", newline="") as fh:
            for chunk in chunks:
                fh.write(chunk)
        paths.append(path)
    return paths


def summary(st: dict[str, Any]) -> list[str]:
    counts = st.get("counts") or {}
    lines = [f"resync {st['id']} ({'dry run' if st['dry_run'] else 'applied'}, mode {st['mode']}): {st['phase']}"]
    if st.get("last_error") and st["phase"] == "failed":
        lines.append(f"  error: {st['last_error']}")
    if counts:
        lines.append(f"  SKUs: {counts.get('skus', 0)}, in agreement and clean: {counts.get('clean', 0)}")
        acts = {k: v for k, v in (counts.get("actions") or {}).items() if v and k != "none"}
        lines.append("  actions: " + (", ".join(f"{k} {v}" for k, v in acts.items()) or "none needed"))
        probs = {k: v for k, v in (counts.get("problems") or {}).items() if v}
        lines.append("  problems: " + (", ".join(f"{k} {v}" for k, v in probs.items()) or "none"))
        writes = counts.get("writes") or {}
        if writes and not st["dry_run"]:
            lines.append("  writes: " + ", ".join(f"{k} {v}" for k, v in writes.items()))
    lines.append(f"  errors: {st.get('errors', 0)}")
    return lines


def cmd_resync(args: argparse.Namespace) -> int:
    from . import logs
    from .wiring import make_clock, make_engines
    from .worker import WorkerLock

    try:
        settings: Settings = load_settings()
    except ConfigError as exc:
        print(f"keycrm-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    # The bar owns the terminal; the job's own log lines would tear it.
    logs.setup("WARNING" if settings.log_level in ("DEBUG", "INFO") else settings.log_level)
    if not args.dry_run and not args.yes:
        if not sys.stdin.isatty():
            print("keycrm-bridge: resync would change stock on both sides; run with --dry-run first, "
                  "then with --yes to apply", file=sys.stderr)
            return 2
        answer = input(f"Apply the resync to WooCommerce and KeyCRM now (mode {settings.sync_mode})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return 1
    clock = make_clock(settings)
    store = Store(settings.database_path)
    jobs = ResyncJobs(store)
    try:
        job = jobs.create(dry_run=args.dry_run, create_missing=args.create_missing, mode=settings.sync_mode,
                          now=clock.now(), source="cli")
        print(f"resync {job['id']} started{' (dry run)' if args.dry_run else ''}", file=sys.stderr)
    except AlreadyRunning as exc:
        job = jobs.get(exc.job_id) or {}
        print(f"a resync is already running ({exc.job_id}); following it", file=sys.stderr)
    bar = ProgressBar(sys.stderr)
    lock = WorkerLock(settings.database_path)
    try:
        if lock.acquire(clock, wait=False):
            print("no worker is running: running the resync in this process", file=sys.stderr)
            try:
                engines = make_engines(settings, clock, store)
                assert engines.resync is not None
                engines.resync.run_until_done(on_progress=bar.update, job_id=job["id"])
            finally:
                lock.release()
        else:
            while True:
                current = jobs.get(job["id"])
                if current is None:
                    break
                bar.update(status_of(current, settings, store, clock.now()))
                if current["phase"] in FINISHED:
                    break
                clock.sleep(0.5)  # another process does the work; nothing to wait on but time
    except KeyboardInterrupt:
        bar.close()
        print(f"stopped watching; the job goes on in the worker (or with the next `keycrm-bridge resync`):"
              f" {job['id']}", file=sys.stderr)
        return 130
    final = jobs.get(job["id"]) or job
    st = status_of(final, settings, store, clock.now())
    bar.update(st)
    bar.close()
    for line in summary(st):
        print(line)
    if final.get("counts"):
        directory = Path(args.report_dir) if args.report_dir else Path(settings.database_path).parent / "resync"
        for path in write_reports(jobs, final, st, directory):
            print(f"  report: {path}")
        print(f"  also: GET /v1/resync/{final['id']}/plan.csv (or plan.json) from the sidecar")
    if args.json:
        print(json.dumps(st, ensure_ascii=False))
    return 0 if final.get("phase") == "done" else 1
