"""Which files of a function folder go into the build context.

Honours .gitignore (in every folder, like git), .dockerignore and
.fnctlignore (at the top, with Docker's root-anchored patterns), and always
leaves out .git.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pathspec

_ALWAYS_OUT = {".git"}


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _anchored(lines: list[str]) -> list[str]:
    """Docker's ignore patterns are relative to the context root, not any depth."""
    out = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        negate = text.startswith("!")
        body = text[1:] if negate else text
        body = body.lstrip("/")
        if body.startswith("./"):
            body = body[2:]
        out.append(("!" if negate else "") + "/" + body)
    return out


def walk(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield (relative posix path, absolute path) of every file and symlink to package, sorted by folder."""
    top = pathspec.GitIgnoreSpec.from_lines(
        _anchored(_lines(root / ".dockerignore")) + _anchored(_lines(root / ".fnctlignore")))
    # Specs of .gitignore files by the folder they sit in, relative to root.
    git_specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []

    def ignored(rel: str, is_dir: bool) -> bool:
        probe = rel + "/" if is_dir else rel
        if top.match_file(probe):
            return True
        for base, spec in git_specs:
            if base and not rel.startswith(base + "/"):
                continue
            if spec.match_file(probe[len(base) + 1:] if base else probe):
                return True
        return False

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        if (here / ".gitignore").is_file():
            git_specs.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(_lines(here / ".gitignore"))))
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if d in _ALWAYS_OUT or ignored(rel, True):
                continue
            if (here / d).is_symlink():
                yield rel, here / d          # a link to a folder: packed as the link, never followed
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = f"{rel_dir}/{f}" if rel_dir else f
            path = here / f
            if ignored(rel, False) or not (path.is_file() or path.is_symlink()):
                continue
            yield rel, path                  # symlinks too (even dangling ones): the packer judges them
