"""Shared bench plumbing: the tests' real-process helpers, importable from bench scripts."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bridge import SECRET, Proc, Web, Worker, bridge_env, event, free_port, post_events, wait_until  # noqa: E402
from stack import Processes  # noqa: E402

__all__ = ["SECRET", "Processes", "Proc", "Web", "Worker", "bridge_env", "event", "free_port", "post_events",
           "wait_until"]
