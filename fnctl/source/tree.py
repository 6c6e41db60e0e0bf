"""Function sources: a folder, a single file, or a git repository."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fnctl.errors import SourceError
from fnctl.redact import redact
from fnctl.source.context import ContextFile, file_from_path
from fnctl.source.git import clone, looks_like_git_url
from fnctl.source.ignore import walk

__all__ = ["SourceTree", "checkout", "package", "subfolder"]


@dataclass(frozen=True)
class SourceTree:
    root: Path                 # the folder whose files make the function
    origin: str                # what the user gave
    file: str | None = None    # when a single file was given: its name
    commit: str | None = None  # when cloned: the commit checked out


@contextmanager
def checkout(spec: str, revision: str | None = None) -> Iterator[SourceTree]:
    """Make the source available as a folder for the duration of the block."""
    if looks_like_git_url(spec):
        workspace = Path(tempfile.mkdtemp(prefix="fnctl-src-"))
        try:
            commit = clone(spec, workspace / "repo", revision)
            # The origin is shown and stored (labels, annotations): never with credentials.
            yield SourceTree(workspace / "repo", redact(spec), commit=commit)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        return
    path = Path(spec).expanduser()
    if revision:
        raise SourceError(f"--revision {revision!r} needs a git URL, but {spec!r} is a local path",
                          "use a git URL such as file:///path/to/repo, or drop --revision")
    if not path.exists():
        raise SourceError(f"source {spec!r} does not exist",
                          "give a folder, a file, or a git URL (https://, ssh://, git@host:repo, file://)")
    if path.is_file():
        yield SourceTree(path.resolve().parent, spec, file=path.name)
    elif path.is_dir():
        yield SourceTree(path.resolve(), spec)
    else:
        raise SourceError(f"source {spec!r} is neither a file nor a folder", "give a folder, a file or a git URL")


def subfolder(tree: SourceTree, directory: str) -> Path:
    """The DIRECTORY build argument: a folder inside the source, never outside it."""
    rel = PurePosixPath(directory or ".")
    if rel.is_absolute() or ".." in rel.parts:
        raise SourceError(f"DIRECTORY {directory!r} must be a relative path inside the source",
                          "e.g. --build-argument DIRECTORY=functions/echo")
    folder = tree.root / rel
    if not folder.is_dir():
        raise SourceError(f"DIRECTORY {directory!r} does not exist in {tree.origin}",
                          "give a folder that exists in the source (relative to its top)")
    return folder


def package(folder: Path, prefix: str = "src/") -> list[ContextFile]:
    """The function's files under `prefix`, honouring the ignore files.

    Symbolic links stay links, as `docker build` keeps them, when they point inside `folder`
    (an absolute one is made relative); one that leads outside is refused: a build context
    never carries, nor points at, a file from outside the source.
    """
    files, escaping = [], []
    top = Path(os.path.realpath(folder))
    for rel, path in walk(folder):
        if not path.is_symlink():
            files.append(file_from_path(prefix + rel, path))
            continue
        target = Path(os.path.realpath(path))
        if target != top and top not in target.parents:
            escaping.append(f"{rel} -> {os.readlink(path)}")
            continue
        link = os.path.relpath(target, os.path.realpath(path.parent))
        files.append(ContextFile(prefix + rel, b"", link=Path(link).as_posix()))
    if escaping:
        shown = ", ".join(escaping[:5]) + (f" and {len(escaping) - 5} more" if len(escaping) > 5 else "")
        raise SourceError(f"the source has symbolic links that lead outside it: {shown}",
                          "a build context never carries files from outside the source: copy what they point "
                          "at into the source, or leave the links out with .fnctlignore (docs/cli.md)")
    if not files:
        raise SourceError(f"the source folder {folder} holds no files (after ignore rules)",
                          "check the path, DIRECTORY and your .gitignore/.dockerignore/.fnctlignore")
    return files
