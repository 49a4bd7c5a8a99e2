"""The resync bar in a real 80-column terminal (tmux): one line redrawn in place, its percentage
never running backwards, ending at 100 %."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from bridge import wait_until
from resync_stack import ResyncStack, S12Catalogue

BAR = re.compile(r"^comparing\s+(\d+)%\|")


def pane(session: str) -> list[str]:
    out = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is listed in .ci/apt-packages.txt")
def test_resync_bar_is_one_line_at_80_columns_and_never_runs_backwards(tmp_path):
    cat = S12Catalogue(total=1500, drifted=100)
    # 120 KeyCRM requests a minute: the reads take long enough to watch the bar move.
    stack = ResyncStack(tmp_path, "keycrm", rate=120).start(cat.keycrm_offers(), cat.woo_products(), worker=False)
    session = f"kcb-bar-{int(time.time() * 1000) % 10**8}"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in stack.env.items() if k.isidentifier())
    command = f"env {exports} {shlex.quote(sys.executable)} -m keycrm_bridge.cli resync --dry-run; echo EXIT=$?; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command], check=True)
    try:
        seen: list[int] = []

        def finished() -> bool:
            lines = pane(session)
            bars = [line for line in lines if BAR.match(line)]
            assert len(bars) <= 1, f"the bar took more than one line: {bars}"
            for line in bars:
                assert len(line) <= 80, line
                seen.append(int(BAR.match(line).group(1)))
            return any(line.startswith("EXIT=") for line in lines)
        wait_until(finished, timeout=180, interval=0.2, what="the resync to end in tmux")
        final = pane(session)
        assert "EXIT=0" in final, final
        assert seen and seen == sorted(seen), f"the percentage ran backwards: {seen}"
        assert seen[-1] == 100 and len(set(seen)) >= 3, seen
        print(f"bar percentages seen: {sorted(set(seen))}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        stack.stop()
