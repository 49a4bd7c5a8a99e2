"""A 1C:Enterprise "обмен с сайтом" client that runs the real dialogue against a site.

checkauth (Basic) → cookie; init → ``zip``/``file_limit``; each file in POSTs of at most
``file_limit`` bytes to the same name; ``import`` for each document, repeated while the site
answers ``progress`` (as 1C does); then ``deactivate`` and ``complete``. Only the first line of an
answer counts; answers are decoded as windows-1251. Every request's duration is kept, so a test
can show that none was held long.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

ORDER = ("import", "offers", "prices", "rests")


class ExchangeFailed(RuntimeError):
    def __init__(self, mode: str, reason: str, status: int) -> None:
        super().__init__(f"mode={mode}: failure: {reason} (HTTP {status})")
        self.mode, self.reason, self.status = mode, reason, status


@dataclass
class Exchange:
    answers: list[tuple[str, str]] = field(default_factory=list)   # (mode, full answer)
    durations: list[float] = field(default_factory=list)
    imports: dict[str, str] = field(default_factory=dict)          # document -> its success line 2
    progress_calls: int = 0

    @property
    def max_request_s(self) -> float:
        return max(self.durations, default=0.0)


def documents_of(files: list[Path]) -> list[str]:
    """What 1C names in ``mode=import``: the XML documents, from inside zips too, in 1C's order."""
    names: list[str] = []
    for f in files:
        if f.suffix.lower() == ".zip":
            with zipfile.ZipFile(f) as zf:
                names += [n for n in zf.namelist() if n.lower().endswith(".xml")]
        else:
            names.append(f.name)

    def rank(n: str) -> int:
        base = n.rsplit("/", 1)[-1].lower()
        return next((i for i, p in enumerate(ORDER) if base.startswith(p)), len(ORDER))
    return sorted(names, key=rank)


class OneCClient:
    def __init__(self, url: str, user: str, password: str, *, timeout: float = 30.0,
                 retry_for_s: float = 0.0, poll_s: float = 0.2) -> None:
        self.url, self.auth, self.timeout = url, (user, password), timeout
        self.retry_for_s, self.poll_s = retry_for_s, poll_s
        self.session = requests.Session()
        self.log = Exchange()
        self.on_chunk: Callable[[str, int], None] | None = None

    def call(self, mode: str, data: bytes | Iterator[bytes] | None = None, type_: str = "catalog",
             headers: dict[str, str] | None = None, **params: str) -> list[str]:
        deadline = time.monotonic() + self.retry_for_s
        while True:
            started = time.monotonic()
            try:
                r = self.session.request("POST" if data is not None else "GET", self.url,
                                         params={"type": type_, "mode": mode, **params}, data=data, headers=headers,
                                         auth=self.auth, timeout=self.timeout)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or not isinstance(data, bytes | type(None)):
                    raise
                time.sleep(0.3)  # the site is restarting: 1C repeats the same request
        self.log.durations.append(time.monotonic() - started)
        text = r.content.decode("cp1251", errors="replace")
        self.log.answers.append((mode, text))
        lines = text.splitlines() or [""]
        if lines[0].strip() == "failure":
            raise ExchangeFailed(mode, lines[1] if len(lines) > 1 else "", r.status_code)
        return lines

    def run(self, files: list[Path], *, chunk: int | None = None, documents: list[str] | None = None,
            max_polls: int = 3000) -> Exchange:
        lines = self.call("checkauth")
        assert lines[0] == "success", lines
        self.session.cookies.set(lines[1], lines[2])
        init = dict(line.split("=", 1) for line in self.call("init") if "=" in line)
        limit = int(init.get("file_limit", 1 << 20))
        step = min(limit, chunk or limit)
        for f in files:
            self.upload(f, step)
        for doc in documents if documents is not None else documents_of(files):
            self.import_(doc, max_polls)
        self.call("deactivate")
        self.call("complete")
        return self.log

    def upload(self, f: Path, step: int) -> None:
        sent = 0
        with open(f, "rb") as fh:
            while True:
                block = fh.read(step)
                if not block:
                    break
                self.call("file", data=block, filename=f.name)
                sent += len(block)
                if self.on_chunk:
                    self.on_chunk(f.name, sent)

    def import_(self, doc: str, max_polls: int = 3000) -> str:
        for _ in range(max_polls):
            lines = self.call("import", filename=doc)
            if lines[0] == "success":
                self.log.imports[doc] = lines[1] if len(lines) > 1 else ""
                return self.log.imports[doc]
            assert lines[0] == "progress", lines
            self.log.progress_calls += 1
            time.sleep(self.poll_s)
        raise AssertionError(f"{doc}: still 'progress' after {max_polls} calls")
