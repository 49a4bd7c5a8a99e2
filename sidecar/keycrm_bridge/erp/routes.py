"""The ERP's HTTP routes, registered by ``api.create_app`` in ``SYNC_MODE=erp``."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from ..clock import Clock
from ..config import Settings
from ..store import Store


def register_erp_routes(app: Flask, settings: Settings, clock: Clock, store: Callable[[], Store]) -> None:
    assert settings.erp is not None
    if settings.erp.erp == "1c":
        from .onec import make_onec_blueprint

        app.register_blueprint(make_onec_blueprint(settings, clock, store))
    else:
        from .moysklad_hook import make_moysklad_blueprint

        app.register_blueprint(make_moysklad_blueprint(settings, clock, store))
