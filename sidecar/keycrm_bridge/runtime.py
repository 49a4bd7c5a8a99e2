"""The running bridge's configuration, for the commands started beside it.

``keycrm-bridge run`` generates what the user did not set (the shared secret, the simulator's and
the demo shop's URLs, the webhook token) and writes it to ``<data dir>/runtime.json`` (mode 0600,
beside the generated ``shared-secret``). ``status``, ``explain``, ``doctor``, ``resync``, ``guard``
and ``quarantine`` read it, so a second terminal needs no exports. An environment that
configures the bridge itself (it sets ``BRIDGE_SHARED_SECRET`` and ``KEYCRM_API_KEY``) is used as it
is; otherwise the file is the base and any variable set in the environment still wins over it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import KEYS

FILE_NAME = "runtime.json"
DATA_ENV = "KEYCRM_BRIDGE_DATA"


def data_dir(env: Mapping[str, str], given: str | None = None) -> Path:
    return Path(given or env.get(DATA_ENV) or "data")


def write(directory: Path, env: Mapping[str, str], extra: dict[str, Any]) -> Path:
    """Save the configuration keys of ``env`` (secrets included: the file is the owner's alone)."""
    path = directory / FILE_NAME
    payload = {"env": {k: env[k] for k in KEYS if env.get(k)}, **extra}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False)
    os.replace(tmp, path)
    return path


def read(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("env"), dict) else None


def merged_env(env: Mapping[str, str], given_dir: str | None = None) -> dict[str, str]:
    """``env`` over what the running (or last) ``keycrm-bridge run`` of this data directory used."""
    directory = data_dir(env, given_dir)
    if env.get("BRIDGE_SHARED_SECRET") and env.get("KEYCRM_API_KEY") and not given_dir:
        return dict(env)
    saved = read(directory)
    out: dict[str, str] = {}
    if saved:
        out.update({str(k): str(v) for k, v in saved["env"].items()})
    elif given_dir or env.get(DATA_ENV):
        out["DATABASE_PATH"] = str(directory / "keycrm-bridge.sqlite3")
    if "BRIDGE_SHARED_SECRET" not in out and (directory / "shared-secret").exists():
        out["BRIDGE_SHARED_SECRET"] = (directory / "shared-secret").read_text().strip()
    out.update({k: v for k, v in env.items() if v != ""})
    return out


def alive(directory: Path) -> bool:
    """Whether the bridge that wrote the file still runs (its pid answers signal 0)."""
    saved = read(directory)
    pid = int(saved.get("pid") or 0) if saved else 0
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
