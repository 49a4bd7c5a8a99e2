"""The ERP's own lane in the worker process: a thread with its own connections and clients.

Reading a 100,000-offer package takes seconds; in its own thread that never delays the plugin's
pushes or the KeyCRM sync. A failing round is logged and retried; it stops nothing else.
"""

from __future__ import annotations

import logging
import threading

from ..clock import Clock
from ..config import Settings
from ..errors import PermanentError, RetryableError

log = logging.getLogger("keycrm_bridge.erp")


def start_erp_lane(settings: Settings, clock: Clock, stop: threading.Event,
                   poll_s: float = 0.2) -> threading.Thread | None:
    if settings.sync_mode != "erp" or settings.erp is None:
        return None

    def run() -> None:
        from ..wiring import make_engines
        from .jobs import ErpStage
        from .moysklad_poll import attach_moysklad

        stage = ErpStage(settings, make_engines(settings, clock), clock)
        attach_moysklad(stage, settings, clock)
        backoff = 1.0
        while not stop.is_set():
            try:
                worked = stage.tick()
                backoff = 1.0
            except RetryableError as exc:
                log.warning("ERP round will be retried", extra={"error": str(exc)[:300]})
                worked, backoff = False, min(backoff * 2, 60.0)
                clock.sleep(backoff)
            except PermanentError as exc:
                log.error("ERP round failed", extra={"error": str(exc)[:300]})
                worked = False
                clock.sleep(backoff)
            except Exception:  # noqa: BLE001 - the lane must outlive any bug or outage
                log.exception("ERP round failed; going on")
                worked = False
                clock.sleep(1.0)
            if not worked:
                clock.sleep(poll_s)

    t = threading.Thread(target=run, name="erp-lane", daemon=True)
    t.start()
    return t
