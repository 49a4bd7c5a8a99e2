"""Structured JSON logs: one object a line, with whatever ``extra`` the caller names (sku, event_id…)."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SECRET_WORDS = ("secret", "api_key", "token", "authorization", "password")
_WEBHOOK = re.compile(r"(/v1/keycrm/webhook/)[^/?\s\"']+")


def redact(text: str) -> str:
    """The KeyCRM webhook URL carries its token in the path: never let it reach a log line."""
    return _WEBHOOK.sub(r"\1[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key in _RESERVED or key.startswith("_"):
                continue
            out[key] = "[redacted]" if any(w in key.lower() for w in _SECRET_WORDS) else value
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime


def log_call(logger: logging.Logger, peer: str, method: str, endpoint: str, status: int | None, attempt: int,
             started: float, error: str | None = None) -> None:
    """One line per HTTP attempt to a peer (KeyCRM, WooCommerce): endpoint, status, attempt, duration.

    ``started`` is ``time.perf_counter()`` at the attempt's start; a measured duration, not the
    sync clock. Failed attempts log at WARNING, writes at INFO, successful reads at DEBUG: the sweep
    reads a page every few seconds, and an idle bridge must not fill its log with them.
    """
    fields: dict[str, object] = {
        "event": f"{peer}_call",
        "method": method,
        "endpoint": endpoint,
        "status": status,
        "attempt": attempt,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if error:
        fields["error"] = error
    if status is None or status >= 400:
        level = logging.WARNING
    else:
        level = logging.DEBUG if method == "GET" else logging.INFO
    logger.log(level, "%s %s -> %s", peer, endpoint, status if status is not None else error, extra=fields)
