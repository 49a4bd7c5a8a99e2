"""Limits that every uploaded ERP package passes before a byte of it is believed.

A package is refused — with one plain sentence that 1C shows its user — when it is bigger than
allowed, unpacks to far more than it weighs (a zip bomb), nests deeper than any real CommerceML
file, declares a DTD (the door for external entities and entity expansion), or names a file
outside the exchange folder.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO
from xml.parsers import expat


class HostilePackage(ValueError):
    """The package breaks a limit or is not well-formed; the message is shown to the ERP's user."""


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 512 * 2**20      # one exchange, every file together
    max_unpacked_bytes: int = 2 * 2**30      # what one zip may unpack to, in total
    max_zip_ratio: float = 200.0             # real CommerceML packs 10-40 times; a bomb thousands
    max_depth: int = 32                      # CommerceML nests about 8 deep
    max_xml_bytes: int = 2 * 2**30           # one XML document


class CountingReader:
    """A file-like wrapper that refuses to read past ``limit`` bytes (parsers stream through it)."""

    def __init__(self, raw: IO[bytes], limit: int, what: str) -> None:
        self.raw, self.limit, self.what, self.count = raw, limit, what, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n and n > 0 else 1 << 16)
        self.count += len(data)
        if self.count > self.limit:
            raise HostilePackage(f"{self.what} is larger than the limit of {self.limit // 2**20} MB")
        return data


class DtdRefused(HostilePackage):
    pass


class PrologGuard:
    """Refuses a document that declares a DTD, before the real parser believes any of it.

    A DTD is the only door to entities (external ones, and the expansion of a billion laughs), and
    XML allows it only before the root element (later it is a syntax error). So the bytes pass a
    bare expat parser that fails on a DOCTYPE and is dropped at the root's start tag: the rest of
    the document goes to the fast C parser unwatched, at no cost per element."""

    def __init__(self, raw: CountingReader, what: str) -> None:
        self.raw, self.what = raw, what
        self._watch: expat.XMLParserType | None = expat.ParserCreate()
        self._watch.StartDoctypeDeclHandler = self._doctype
        self._watch.StartElementHandler = self._root
        self._root_seen = False

    def _doctype(self, *_: object) -> None:
        raise DtdRefused(f"{self.what} declares a DTD or entities; CommerceML needs none, so it is refused")

    def _root(self, *_: object) -> None:
        self._root_seen = True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        watch = self._watch
        if watch is not None:
            try:
                watch.Parse(data, not data)
            except expat.ExpatError as exc:
                raise HostilePackage(f"{self.what} is not well-formed XML ({exc})") from None
            if self._root_seen or not data:
                self._watch = None
        return data


def safe_relative(name: str) -> PurePosixPath:
    """A file name 1C sends (``goods/1/rests___x.xml``) as a path that stays inside the exchange."""
    cleaned = name.replace("\\", "/").strip()
    path = PurePosixPath(cleaned)
    if not cleaned or path.is_absolute() or any(p in ("", "..") for p in path.parts) or "\x00" in cleaned \
            or len(cleaned) > 255 or ":" in cleaned:
        raise HostilePackage(f"file name {name[:80]!r} is not allowed (use a relative name without '..')")
    return path


def unpack_zip(archive: Path, into: Path, limits: Limits) -> list[Path]:
    """Unpack ``archive`` streaming, refusing bombs by total size and by ratio; returns XML files."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise HostilePackage(f"{archive.name} is not a readable zip archive ({exc})") from None
    compressed = max(archive.stat().st_size, 1)
    budget = min(limits.max_unpacked_bytes, int(compressed * limits.max_zip_ratio) + 2**20)
    written = 0
    out: list[Path] = []
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            rel = safe_relative(info.filename)
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    while True:
                        block = src.read(1 << 16)
                        if not block:
                            break
                        written += len(block)
                        if written > budget:
                            raise HostilePackage(
                                f"{archive.name} unpacks to more than {budget // 2**20} MB "
                                f"({limits.max_zip_ratio:g} times its size): refused as a zip bomb")
                        dst.write(block)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise HostilePackage(f"{archive.name}: {info.filename} cannot be unpacked ({exc})") from None
            except HostilePackage:
                target.unlink(missing_ok=True)
                raise
            if rel.suffix.lower() == ".xml":
                out.append(target)
    return out


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def fsync_file(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())
