"""A WooCommerce (wc/v3) REST peer over real HTTP, acting as the bridge's WordPress plugin too: its
events to the sidecar, and its conditional stock route (``stock_route``) the sidecar writes through.

Tests and benchmarks run it in a thread (``testing.serve_in_thread``) or as a process
(``python -m keycrm_bridge.woo_peer`` / ``testing.WooPeerProcess``).
"""

from .server import Faults, PeerServer, WooPeer

__all__ = ["Faults", "PeerServer", "WooPeer"]
