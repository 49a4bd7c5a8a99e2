"""A KeyCRM API simulator: a real HTTP server that tests, benches and the README's run command use
instead of KeyCRM. Requests are validated against KeyCRM's own OpenAPI document; stock, reserves,
orders, the 60-per-minute budget, stock webhooks and faults behave as KeyCRM's do (as far as they
are documented). Tests use ``testing.py`` (the simulator as a process) and ``control_client.py``.
"""

from keycrm_bridge.simulator.app import Simulator, SimulatorOptions, create_app
from keycrm_bridge.simulator.server import ServerHandle, main, serve_in_thread
from keycrm_bridge.simulator.state import SimState, generated_sku

__all__ = [
    "ServerHandle",
    "SimState",
    "Simulator",
    "SimulatorOptions",
    "create_app",
    "generated_sku",
    "main",
    "serve_in_thread",
]
