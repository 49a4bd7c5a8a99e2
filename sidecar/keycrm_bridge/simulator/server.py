"""Running the simulator: in a thread (in-process tests) or as a command (``python -m
keycrm_bridge.simulator``, wired by the lead as ``keycrm-bridge simulator``)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from keycrm_bridge.clock import Clock, clock_from_spec
from keycrm_bridge.simulator.app import API_PREFIX, EXTENSION_KEY, Simulator, SimulatorOptions, create_app
from keycrm_bridge.simulator.state import SimState

log = logging.getLogger("keycrm_bridge.simulator")


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request: benches send tens of thousands; the request log has them."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


@dataclass
class ServerHandle:
    url: str
    server: BaseWSGIServer
    thread: threading.Thread
    simulator: Simulator

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def state(self) -> SimState:
        return self.simulator.state

    def stop(self) -> None:
        self.simulator.close()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_server(
    state: SimState, clock: Clock, options: SimulatorOptions | None, host: str, port: int
) -> tuple[BaseWSGIServer, Simulator]:
    app = create_app(state, clock, options)
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    server.daemon_threads = True  # type: ignore[attr-defined]  # hung requests must not block exit
    return server, app.extensions[EXTENSION_KEY]


def serve_in_thread(
    state: SimState,
    clock: Clock,
    options: SimulatorOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> ServerHandle:
    """Start the simulator on ``host:port`` (0 = a free port) in a daemon thread; ``stop()`` ends it."""
    server, sim = _make_server(state, clock, options, host, port)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="keycrm-simulator", daemon=True
    )
    thread.start()
    return ServerHandle(f"http://{host}:{server.server_port}", server, thread, sim)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="keycrm-bridge simulator",
        description="A KeyCRM API simulator (spec-validated) for tests and benches.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    p.add_argument("--api-key", default="sim-key")
    p.add_argument("--rate", type=int, default=60, help="requests per --rate-window seconds (0: no limit)")
    p.add_argument("--rate-window", type=float, default=60.0)
    p.add_argument("--seed-skus", type=int, default=0, help="generate N simple products SKU-000001…")
    p.add_argument("--seed-quantity", type=float, default=10, help="on-hand quantity of generated SKUs")
    p.add_argument("--warehouses", default="1", help="comma-separated warehouse ids, e.g. 1,2")
    p.add_argument("--webhook-url", default=None)
    p.add_argument("--webhook-warehouses", default=None, help="comma-separated ids summed in webhooks")
    p.add_argument("--webhook-delay", type=float, default=0.0, help="clock seconds before each delivery")
    p.add_argument("--latency", type=float, default=0.0, help="clock seconds each API request takes")
    p.add_argument("--clock", default=None, help="system (default) or accelerated:FACTOR[:ORIGIN]")
    return p


def _ids(raw: str | None) -> list[int] | None:
    return [int(x) for x in raw.split(",") if x.strip()] if raw else None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    clock = clock_from_spec(args.clock)
    state = SimState(clock)
    warehouses = _ids(args.warehouses) or [1]
    seed_quantity = int(args.seed_quantity) if float(args.seed_quantity).is_integer() else args.seed_quantity
    state.seed({"warehouses": warehouses, "count": args.seed_skus, "quantity": seed_quantity})
    options = SimulatorOptions(
        api_key=args.api_key,
        rate_limit=args.rate,
        rate_window=args.rate_window,
        webhook_url=args.webhook_url,
        webhook_warehouses=_ids(args.webhook_warehouses),
        webhook_delay=args.webhook_delay,
        latency=args.latency,
    )
    server, sim = _make_server(state, clock, options, args.host, args.port)
    url = f"http://{args.host}:{server.server_port}"

    def _stop(signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, which runs in this very thread: hand it off
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        json.dumps(
            {
                "event": "simulator_ready",
                "url": url,
                "api_url": url + API_PREFIX,
                "offers": len(state.offers),
                "warehouses": warehouses,
            }
        ),
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        sim.close()
        server.server_close()
    return 0
