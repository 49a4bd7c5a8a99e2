"""gunicorn's own logs as JSON lines, without secrets (the KeyCRM webhook URL carries its token in the path).

gunicorn reads ``logconfig_dict`` from ``--config python:keycrm_bridge.access_log``: its error log goes
through the project's formatter and each access line is built as an object from gunicorn's atoms, never
by pasting request text into a JSON template (a backslash or quote in a path broke that).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from gunicorn.glogging import Logger

from .logs import redact


def _text(value: Any) -> str:
    # gunicorn's SafeAtoms put a backslash before every quote (for its string template); taking one
    # off before each quote gives the request's text back exactly.
    return str(value if value is not None else "-").replace('\\"', '"')


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class AccessJsonFormatter(logging.Formatter):
    """One access line: the request's method, path and outcome, from gunicorn's atoms."""

    def format(self, record: logging.LogRecord) -> str:
        atoms: Mapping[str, Any] = record.args if isinstance(record.args, Mapping) else {}
        out = {
            "ts": round(record.created, 3),
            "level": "info",
            "logger": "access",
            "method": _text(atoms.get("m")),
            "path": redact(_text(atoms.get("U"))),
            "status": _number(atoms.get("s")),
            "ms": _number(atoms.get("M")),
            "bytes": _number(atoms.get("B")),
        }
        return json.dumps(out, ensure_ascii=False)


class RedactingLogger(Logger):
    """Redacts the atoms too, so that any other format or handler never sees the token."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in ("U", "r", "q", "{raw_uri}e"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms


# gunicorn settings (this module is its config file).
logger_class = RedactingLogger
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "keycrm_bridge.logs.JsonFormatter"},
        "access": {"()": "keycrm_bridge.access_log.AccessJsonFormatter"},
    },
    "handlers": {
        "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        "access_console": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"},
    },
    "root": {"level": "INFO", "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access_console"], "propagate": False},
    },
}
