"""The ``keycrm-bridge`` command: run, web, worker, status, simulator."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import __version__, logs, runtime
from .config import ConfigError, Settings, load_settings


def _settings_or_exit(env: dict[str, str] | None = None) -> Settings:
    """The environment's settings, over those of the bridge `keycrm-bridge run` started here (runtime.json)."""
    try:
        return load_settings(runtime.merged_env(os.environ) if env is None else env)
    except ConfigError as exc:
        print(f"keycrm-bridge: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_web(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", *gunicorn_args(settings)])  # noqa: S606
    return 0  # pragma: no cover - exec does not return


def gunicorn_args(settings: Settings) -> list[str]:
    # gevent: a connection costs a greenlet, not a worker, so slow or idle clients (a slowloris through
    # the webhook's public route) cannot hold the API; a sync worker is held for as long as its
    # client takes to send one request. Each worker holds up to WORKER_CONNECTIONS at once.
    return ["--bind", settings.bind, "--workers", str(settings.web_workers), "--worker-class", "gevent",
            "--worker-connections", str(WORKER_CONNECTIONS), "--timeout", "30", "--graceful-timeout", "10",
            *GUNICORN_LOGGING, "keycrm_bridge.wsgi:app"]


WORKER_CONNECTIONS = 1000

# Error and access logs as JSON lines (logconfig_dict and the logger class live in access_log.py).
GUNICORN_LOGGING = ("--config", "python:keycrm_bridge.access_log", "--log-level", "info")


def cmd_worker(args: argparse.Namespace) -> int:
    from .wiring import make_clock, make_engines
    from .worker import Worker

    settings = _settings_or_exit()
    logs.setup(settings.log_level)
    clock = make_clock(settings)
    worker = Worker(settings, lambda: make_engines(settings, clock), clock)
    worker.install_signal_handlers()
    worker.run()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .erp.report import format_erp_status
    from .status import build_status
    from .store import Store
    from .wiring import make_clock

    settings = _settings_or_exit()
    status = build_status(Store(settings.database_path), settings, make_clock(settings).now())
    if args.json:
        emit(json.dumps(status, indent=2, ensure_ascii=False))
        return 0
    first = status["first_sync"]
    print(f"mode: {status['mode']}")
    if not first["approved"]:
        print(f"not writing stock yet: {first['waiting_reason']}")
        print("  review with `keycrm-bridge resync` (it shows the comparison, then asks to apply)")
    print(f"queue: {status['queue_depth']} pending, oldest {status['oldest_pending_age_s'] or 0:.1f} s")
    print(f"KeyCRM budget: {status['budget']['used_last_minute']}/{status['budget']['per_minute']} in the last minute")
    print(f"last successful call to KeyCRM: {_ago(status['last_keycrm_success_at'])}")
    if status["last_error"]:
        print(f"last error: {status['last_error']['error']}")
    if status.get("erp"):
        print("\n".join(format_erp_status(status["erp"])))
    for step, st in sorted(status["stages"].items()):
        if st.get("last_error") and st.get("failures"):
            print(f"  {step}: failing ({st['failures']}x): {st['last_error']['error']}")
    _print_quarantine(status["quarantine"])
    excluded = status["excluded_skus"]
    print(f"excluded from sync in WooCommerce: {status['excluded_count']}")
    for row in excluded[:50]:
        print(f"  {row['sku']!s:30} product #{row['product_id']}, since {_ago(row['since'])}")
    if not status["compared"] and not status["unmatched_count"]:
        print("unmatched SKUs: not known yet (no comparison of the two catalogues has finished)")
        return 0
    print(f"unmatched SKUs: {status['unmatched_count']}")
    for row in status["unmatched_skus"][:50]:
        print(f"  {row['sku']!s:30} {row['side']:12} {row['reason']}")
    return 0


def _print_quarantine(q: dict[str, Any]) -> None:
    print(f"set aside (quarantine): {q['count']}" + (" — `keycrm-bridge quarantine retry ID` or `drop ID`"
                                                     if q["count"] else ""))
    for it in q["items"]:
        print(f"  #{it['id']:<5} {it['stage']:8} {it['sku'] or '-'!s:24} {it['reason']}"
              + (f" ({it['attempts']} tries)" if it["attempts"] > 1 else "")
              + (" [retry requested]" if it["status"] == "retry" else ""))


def cmd_quarantine(args: argparse.Namespace) -> int:
    from .quarantine import Quarantine
    from .status import quarantine_summary
    from .store import Store
    from .wiring import make_clock

    settings = _settings_or_exit()
    store = Store(settings.database_path)
    clock = make_clock(settings)
    if args.action == "list":
        summary = quarantine_summary(store, clock.now(), limit=1000)
        if args.json:
            print(json.dumps(summary, indent=2, ensure_ascii=False))
        else:
            _print_quarantine(summary)
        return 0
    if args.id is None:
        print(f"keycrm-bridge: quarantine {args.action} needs the id shown by `keycrm-bridge quarantine list`",
              file=sys.stderr)
        return 2
    q = Quarantine(store, clock)
    done = q.request_retry(args.id) if args.action == "retry" else q.drop(args.id) is not None
    if not done:
        print(f"keycrm-bridge: nothing is set aside under id {args.id}", file=sys.stderr)
        return 1
    print(f"#{args.id} " + ("handed back to its stage; the worker tries it again now" if args.action == "retry"
                            else "dropped"))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain, format_explain
    from .store import Store

    settings = _settings_or_exit()
    info = explain(Store(settings.database_path), args.sku)
    emit(json.dumps(info, indent=2, ensure_ascii=False) if args.json else format_explain(info))
    return 0 if info["known"] else 1


def emit(text: str) -> None:
    """Print; a reader that stops early (`| head`) ends the output, not with a traceback."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def cmd_guard(args: argparse.Namespace) -> int:
    from .ledger import Ledger
    from .store import Store
    from .wiring import make_clock

    settings = _settings_or_exit()
    ledger = Ledger(Store(settings.database_path))
    if args.action == "list":
        held = ledger.holds("held")
        if not held:
            print("no cycle is held")
        for h in held:
            print(f"#{h['id']}: {h['reason']}")
            for ex in h["examples"][:10]:
                side = f" (in {ex['side']})" if ex.get("side") else ""
                print(f"    {ex['sku']}: {ex['from']} → {ex['to']}{side}")
        return 0
    if args.id is None:
        print("keycrm-bridge: guard confirm/dismiss needs the id shown by `keycrm-bridge guard list`", file=sys.stderr)
        return 2
    status = "confirmed" if args.action == "confirm" else "dismissed"
    if not ledger.set_hold_status(args.id, status, make_clock(settings).now()):
        print(f"keycrm-bridge: nothing is held under id {args.id}", file=sys.stderr)
        return 1
    print(f"cycle #{args.id} {status}; the worker " + ("applies it now" if status == "confirmed" else "drops it"))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor

    return int(doctor.main(_settings_or_exit()))


def _ago(ts: float | None) -> str:
    return "never" if not ts else f"{time.time() - ts:.0f} s ago"


def cmd_simulator(args: argparse.Namespace) -> int:
    from .simulator.server import main as sim_main

    return int(sim_main(args.rest) or 0)


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import cmd_run as run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keycrm-bridge", description="Keeps WooCommerce and KeyCRM stock the same.")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="web + worker (+ the KeyCRM simulator when KEYCRM_API_KEY is not set)")
    run.add_argument("--data-dir", default=None,
                     help="database, generated secret and runtime.json (default: $KEYCRM_BRIDGE_DATA or ./data)")
    run.add_argument("--demo-skus", type=int, default=100, help="SKUs the demo's simulator and shop start with")
    run.set_defaults(func=cmd_run)
    sub.add_parser("web", help="the events API under gunicorn").set_defaults(func=cmd_web)
    sub.add_parser("worker", help="the sync worker").set_defaults(func=cmd_worker)
    st = sub.add_parser("status", help="queue, budget, unmatched SKUs")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    sub.add_parser("doctor", help="check KeyCRM, WooCommerce, the plugin and the data folder; say what to fix"
                   ).set_defaults(func=cmd_doctor)
    ex = sub.add_parser("explain", help="why a SKU has the stock it has: both sides' changes and decisions")
    ex.add_argument("sku")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_explain)
    gd = sub.add_parser("guard", help="cycles held because they would empty much of the shop")
    gd.add_argument("action", choices=["list", "confirm", "dismiss"])
    gd.add_argument("id", nargs="?", type=int)
    gd.set_defaults(func=cmd_guard)
    qu = sub.add_parser("quarantine", help="items set aside because a stage could not process them")
    qu.add_argument("action", choices=["list", "retry", "drop"])
    qu.add_argument("id", nargs="?", type=int)
    qu.add_argument("--json", action="store_true")
    qu.set_defaults(func=cmd_quarantine)
    from .resync_cli import add_parser as add_resync_parser

    add_resync_parser(sub)
    sim = sub.add_parser("simulator", help="the KeyCRM simulator (for trying the bridge without an account)",
                         add_help=False)
    sim.add_argument("rest", nargs=argparse.REMAINDER)
    sim.set_defaults(func=cmd_simulator)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulator"]:
        # Everything after `simulator` belongs to the simulator's own parser (flags included).
        from .simulator.server import main as sim_main

        return int(sim_main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
