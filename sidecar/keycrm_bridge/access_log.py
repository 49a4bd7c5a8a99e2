"""gunicorn's access log without secrets: the KeyCRM webhook URL carries its token in the path."""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

_WEBHOOK = re.compile(r"(/v1/keycrm/webhook/)[^/?\s\"]+")


def redact(text: str) -> str:
    return _WEBHOOK.sub(r"\1[redacted]", text)


class RedactingLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in ("U", "r", "{raw_uri}e"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
