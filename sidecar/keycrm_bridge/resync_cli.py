"""``keycrm-bridge resync [--dry-run | --apply] [--yes] [--json]``: compare, show, then apply.

The command first runs the comparison (a dry run) and prints what would change — counts per action
and per problem, and where the full report is — then asks before it writes anything (``--yes``
skips the question, ``--dry-run`` stops after the comparison). Applying it is also the owner's
first-sync approval (approval.py). When a worker runs (it holds the worker lock) the worker does the
job and the command follows it; otherwise the command runs the job itself. Ctrl-C asks whether to
cancel the job. ``--json`` prints only JSON on stdout; the bar and the words go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from . import runtime
from .config import ConfigError, Settings, load_settings
from .resync import status_of
from .resync_plan import FINISHED, AlreadyRunning, ResyncJobs
from .store import Store

PHASE_WORDS = {"planning_keycrm": "reading KeyCRM", "planning_woo": "reading WooCommerce",
               "planned": "comparing", "applying": "writing", "done": "done", "failed": "failed",
               "cancelled": "cancelled"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("resync", help="full resync: compare both catalogues, show what would change, then apply")
    p.add_argument("--dry-run", action="store_true", help="compare and report only: change nothing")
    p.add_argument("--apply", action="store_true",
                   help="compare, show, then apply (the default; it also approves the first sync)")
    p.add_argument("--create-missing", action="store_true",
                   help="create products that exist only in WooCommerce in KeyCRM")
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.add_argument("--report-dir", default=None,
                   help="where to write the plan as CSV and JSON (default: beside the database)")
    p.add_argument("--json", action="store_true", help="print only JSON (the final status) on stdout")
    p.set_defaults(func=cmd_resync)


class ProgressBar:
    """One line on a terminal (tqdm, as wide as the terminal); plain lines at most every 2 s elsewhere.

    The percentage never runs backwards: the job's total grows as pages are found, so the share
    shown is the largest seen. The ETA counts down between the job's own estimates.
    """

    def __init__(self, out: IO[str], label: str) -> None:
        self.out = out
        self.tty = out.isatty()
        self.label = label
        self.shown = 0.0
        self._bar: Any = None
        self._last_line_at = 0.0
        self._eta: tuple[float, float] | None = None  # (estimate, when it was received)

    def update(self, st: dict[str, Any]) -> None:
        total, done = int(st.get("total") or 0), int(st.get("done") or 0)
        share = 100.0 if st["phase"] == "done" else min(99.0, 100.0 * done / total) if total else 0.0
        self.shown = max(self.shown, share)
        text = f"{PHASE_WORDS.get(st['phase'], st['phase'])} {done}/{total} · {st.get('errors', 0)} errors"
        eta = self._eta_text(st)
        if eta:
            text += f" · ETA {eta}"
        if self.tty:
            if self._bar is None:
                self._bar = tqdm(total=100, file=self.out, dynamic_ncols=True, leave=True, desc=self.label,
                                 bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}")
            self._bar.n = self.shown
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.refresh()
        elif time.monotonic() - self._last_line_at >= 2.0 or st["phase"] in FINISHED:
            self.out.write(f"{self.label} {self.shown:3.0f}% {text}\n")
            self.out.flush()
            self._last_line_at = time.monotonic()

    def _eta_text(self, st: dict[str, Any]) -> str:
        if st["phase"] in FINISHED:
            return ""
        now = time.monotonic()
        est = st.get("eta_s")
        if est is not None and (self._eta is None or abs(float(est) - self._eta[0]) > 0.5):
            self._eta = (float(est), now)
        if self._eta is None:
            return ""
        return duration(max(0.0, self._eta[0] - (now - self._eta[1])))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def duration(seconds: float) -> str:
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
    kind = "comparison (dry run)" if st["dry_run"] else "applied"
    lines = [f"resync {st['id']} ({kind}, mode {st['mode']}): {PHASE_WORDS.get(st['phase'], st['phase'])}"]
    if st.get("last_error") and st["phase"] == "failed":
        lines.append(f"  error: {st['last_error']}")
    if counts:
        acts = {k: v for k, v in (counts.get("actions") or {}).items() if v and k != "none"}
        same = counts.get("same", counts.get("clean", 0) - sum(acts.values()))
        lines.append(f"  SKUs compared: {counts.get('skus', 0)}; the same on both sides: {same}")
        lines.append("  actions: " + (", ".join(f"{k} {v}" for k, v in acts.items()) or "none needed"))
        probs = {k: v for k, v in (counts.get("problems") or {}).items() if v}
        lines.append("  problems: " + (", ".join(f"{k} {v}" for k, v in probs.items()) or "none"))
        writes = counts.get("writes") or {}
        if writes and not st["dry_run"]:
            lines.append("  writes: " + ", ".join(f"{k} {v}" for k, v in writes.items()))
    if st.get("erp"):
        from .erp.review import format_erp_review

        lines += ["  " + line for line in format_erp_review(st["erp"])]
    lines.append(f"  errors: {st.get('errors', 0)}")
    return lines


def _ask(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


class Follower:
    """Starts a job and sees it to its end, in this process or by watching the worker's."""

    def __init__(self, settings: Settings, human: IO[str]) -> None:
        from .wiring import make_clock

        self.settings = settings
        self.human = human
        self.clock = make_clock(settings)
        self.store = Store(settings.database_path)
        self.jobs = ResyncJobs(self.store)

    def run(self, *, dry_run: bool, create_missing: bool) -> dict[str, Any]:
        try:
            job = self.jobs.create(dry_run=dry_run, create_missing=create_missing, mode=self.settings.sync_mode,
                                   now=self.clock.now(), source="cli")
            print(f"resync {job['id']} started ({'comparison, nothing is written' if dry_run else 'applying'})",
                  file=sys.stderr)
        except AlreadyRunning as exc:
            job = self.jobs.get(exc.job_id) or {}
            print(f"a resync is already running ({exc.job_id}); following it", file=sys.stderr)
        bar = ProgressBar(sys.stderr, "comparing" if dry_run else "applying")
        try:
            while True:
                try:
                    self._follow(job["id"], bar)
                    break
                except KeyboardInterrupt:
                    bar.close()
                    if _ask(f"\nCancel resync {job['id']}? What was written stays written. [y/N] "):
                        self.jobs.cancel(job["id"], self.clock.now())
                        break
        finally:
            bar.close()
        final = self.jobs.get(job["id"]) or job
        return status_of(final, self.settings, self.store, self.clock.now())

    def _follow(self, job_id: str, bar: ProgressBar) -> None:
        from .wiring import make_engines
        from .worker import WorkerLock

        lock = WorkerLock(self.settings.database_path)
        if lock.acquire(self.clock, wait=False):
            print("no worker is running: running the resync in this process", file=sys.stderr)
            try:
                engines = make_engines(self.settings, self.clock, self.store)
                assert engines.resync is not None
                engines.resync.run_until_done(on_progress=bar.update, job_id=job_id)
            finally:
                lock.release()
        while True:
            current = self.jobs.get(job_id)
            if current is None:
                return
            bar.update(status_of(current, self.settings, self.store, self.clock.now()))
            if current["phase"] in FINISHED:
                return
            self.clock.sleep(0.5)  # another process does the work; nothing to wait on but time


def cmd_resync(args: argparse.Namespace) -> int:
    from . import logs

    try:
        settings: Settings = load_settings(runtime.merged_env(os.environ))
    except ConfigError as exc:
        print(f"keycrm-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run and (args.apply or args.yes):
        print("keycrm-bridge: --dry-run changes nothing; leave out --apply/--yes, or --dry-run", file=sys.stderr)
        return 2
    if not args.dry_run and not args.yes and not sys.stdin.isatty():
        print("keycrm-bridge: resync asks before it writes; run with --dry-run to only compare, "
              "or with --yes to apply without asking", file=sys.stderr)
        return 2
    human = sys.stderr if args.json else sys.stdout
    # The bar owns the terminal; the job's own log lines would tear it.
    logs.setup("WARNING" if settings.log_level in ("DEBUG", "INFO") else settings.log_level)
    follower = Follower(settings, human)
    st = follower.run(dry_run=True, create_missing=args.create_missing)
    _report(follower, st, args, human)
    if args.dry_run or st["phase"] != "done":
        return _finish(st, args)
    acts = {k: v for k, v in ((st.get("counts") or {}).get("actions") or {}).items() if v and k != "none"}
    question = (f"Apply these changes ({', '.join(f'{k} {v}' for k, v in acts.items()) or 'none needed'}; "
                f"mode {settings.sync_mode}) and start syncing? [y/N] ")
    if not args.yes and not _ask(question):
        print("nothing changed", file=human)
        return 1
    st = follower.run(dry_run=False, create_missing=args.create_missing)
    _report(follower, st, args, human)
    return _finish(st, args)


def _report(follower: Follower, st: dict[str, Any], args: argparse.Namespace, human: IO[str]) -> None:
    for line in summary(st):
        print(line, file=human)
    final = follower.jobs.get(st["id"])
    if final and final.get("counts"):
        default = Path(follower.settings.database_path).parent / "resync"
        directory = Path(args.report_dir) if args.report_dir else default
        for path in write_reports(follower.jobs, final, st, directory):
            print(f"  report: {path}", file=human)
        print(f"  also: GET /v1/resync/{final['id']}/plan.csv (or plan.json) from the sidecar", file=human)


def _finish(st: dict[str, Any], args: argparse.Namespace) -> int:
    if args.json:
        try:
            print(json.dumps(st, ensure_ascii=False))
            sys.stdout.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if st.get("phase") == "done" else 1
