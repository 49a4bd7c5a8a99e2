"""gunicorn entry point: ``gunicorn keycrm_bridge.wsgi:app``."""

from __future__ import annotations

import sys

from . import logs
from .api import create_app
from .config import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as exc:
    print(f"keycrm-bridge: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)

logs.setup(_settings.log_level)
app = create_app(_settings)
