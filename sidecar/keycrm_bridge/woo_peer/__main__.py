"""``python -m keycrm_bridge.woo_peer``: serve a WooCommerce peer until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

from ..clock import clock_from_spec
from .control import seed
from .server import Latency, PeerServer, WooPeer


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m keycrm_bridge.woo_peer", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--sidecar-url", default=None, help="plugin option: where events go ({url}/v1/events)")
    ap.add_argument("--secret", default=None, help="plugin option: shared secret (events and kcb_origin)")
    ap.add_argument("--key", default="ck_test", help="REST consumer key")
    ap.add_argument("--secret-key", default="cs_test", help="REST consumer secret")
    ap.add_argument("--seed", type=int, default=0, help="simple products to create at start")
    ap.add_argument("--seed-variable", type=int, default=0, help="variable products to create at start")
    ap.add_argument("--variations", type=int, default=3, help="variations per seeded variable product")
    ap.add_argument("--stock", type=int, default=10, help="stock of each seeded product")
    ap.add_argument("--sku-prefix", default="SKU-")
    ap.add_argument(
        "--clock",
        default=os.environ.get("KEYCRM_BRIDGE_CLOCK"),
        help="system | accelerated:FACTOR[:ORIGIN] (dates, events, marker window)",
    )
    ap.add_argument(
        "--accept-basic-auth",
        action="store_true",
        help="accept consumer key/secret as Basic auth (as WooCommerce does behind HTTPS)",
    )
    ap.add_argument("--batch-limit", type=int, default=100, help="woocommerce_rest_batch_items_limit")
    ap.add_argument("--latency-write", type=float, default=0.0, help="clock seconds a write request takes")
    ap.add_argument("--latency-item", type=float, default=0.0, help="clock seconds added per batch item")
    ap.add_argument("--latency-read", type=float, default=0.0, help="clock seconds a read request takes")
    ap.add_argument("--log-cap", type=int, default=200_000, help="REST requests kept in the request log")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    peer = WooPeer(
        consumer_key=args.key,
        consumer_secret=args.secret_key,
        shared_secret=args.secret,
        sidecar_url=args.sidecar_url,
        clock=clock_from_spec(args.clock),
        accept_basic_auth=args.accept_basic_auth,
        log_cap=args.log_cap,
        batch_limit=args.batch_limit,
        latency=Latency(args.latency_write, args.latency_item, args.latency_read),
    )
    server = PeerServer(peer, args.host, args.port)
    if args.seed or args.seed_variable:
        seed(
            peer,
            {
                "simple": args.seed,
                "variable": args.seed_variable,
                "variations": args.variations,
                "stock": args.stock,
                "sku_prefix": args.sku_prefix,
            },
        )

    def stop(*_: Any) -> None:
        # shutdown() blocks until serve_forever returns, so it must run off the serving thread.
        threading.Thread(target=server.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        json.dumps({"event": "woo_peer_ready", "url": server.url, "pid": os.getpid(), "products": len(peer.catalog)}),
        flush=True,
    )
    server.serve_forever()
    peer.close()
    server.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
