"""Function sources: a folder, a single file, or a git repository.

Names load lazily: the CLI's start-up should not pay for gitpython or
pathspec when a command never touches a source.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SourceTree": "fnctl.source.tree", "checkout": "fnctl.source.tree", "subfolder": "fnctl.source.tree",
    "package": "fnctl.source.tree", "looks_like_git_url": "fnctl.source.git",
    "BuildContext": "fnctl.source.context", "ContextFile": "fnctl.source.context",
    "make_context": "fnctl.source.context",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fnctl.source' has no attribute {name!r}")
