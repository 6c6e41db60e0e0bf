"""Reproducible build contexts: the same files always give the same bytes.

Entries are sorted, owners are root, times are zero, modes are normalised
(0755 for executables, else 0644) and gzip carries no name or time, so an
unchanged function yields a byte-identical context, hence the same digest,
hence a cache hit on every target.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ContextFile:
    name: str                     # path inside the context, '/'-separated
    data: bytes
    executable: bool = False
    link: str | None = None       # a symbolic link to this relative target (data is empty)


@dataclass(frozen=True)
class BuildContext:
    data: bytes                   # gzip-compressed tar
    digest: str                   # sha256 hex of `data`
    files: tuple[str, ...]

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    def read(self, name: str) -> bytes:
        """One file of the context, e.g. its Dockerfile."""
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(self.data))) as tar:
            member = tar.extractfile(name)
            if member is None:
                raise KeyError(name)
            return member.read()


def file_from_path(name: str, path: Path) -> ContextFile:
    return ContextFile(name, path.read_bytes(), executable=bool(path.stat().st_mode & 0o111))


def make_context(files: Iterable[ContextFile]) -> BuildContext:
    by_name: dict[str, ContextFile] = {}
    for f in files:
        by_name[f.name] = f          # a later entry overrides (e.g. the rendered Dockerfile)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirname in _directories(by_name):
            info = tarfile.TarInfo(dirname)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            _normalise(info)
            tar.addfile(info)
        for name in sorted(by_name):
            f = by_name[name]
            info = tarfile.TarInfo(name)
            if f.link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, f.link, 0o777
                _normalise(info)
                tar.addfile(info)
                continue
            info.size = len(f.data)
            info.mode = 0o755 if f.executable else 0o644
            _normalise(info)
            tar.addfile(info, io.BytesIO(f.data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
        gz.write(raw.getvalue())
    data = packed.getvalue()
    return BuildContext(data, hashlib.sha256(data).hexdigest(), tuple(sorted(by_name)))


def _normalise(info: tarfile.TarInfo) -> None:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0


def _directories(names: Iterable[str]) -> list[str]:
    dirs = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs)
