"""How big a packed source is, and what makes it big: every deploy reads, packs and sends all of it."""

from __future__ import annotations

from collections.abc import Sequence

from fnctl.source.context import ContextFile

SHOWN = 5                     # the largest entries a warning names


def human(size: int) -> str:
    """Bytes as people read them, in the decimal units the config file's sizes use (10MB)."""
    for unit, factor in (("GB", 1000 ** 3), ("MB", 1000 ** 2), ("KB", 1000)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def largest(files: Sequence[ContextFile], prefix: str = "src/") -> list[tuple[str, int]]:
    """The top-level entries of the source (folders end in /) by the bytes under them, largest first:
    what a line of .fnctlignore can leave out."""
    sizes: dict[str, int] = {}
    for f in files:
        rest = f.name[len(prefix):] if f.name.startswith(prefix) else f.name
        top, sep, _ = rest.partition("/")
        sizes[top + sep] = sizes.get(top + sep, 0) + len(f.data)
    return sorted(sizes.items(), key=lambda item: (-item[1], item[0]))


def report(files: Sequence[ContextFile], warn_above: int) -> tuple[str, str | None]:
    """(the size line, a suggestion when the source is larger than `warn_above` bytes, else None)."""
    total = sum(len(f.data) for f in files)
    line = f"packed {len(files)} file{'s' if len(files) != 1 else ''}, {human(total)}"
    if total <= warn_above:
        return line, None
    top = ", ".join(f"{name} ({human(size)})" for name, size in largest(files)[:SHOWN])
    return line, (f"{line}: more than {human(warn_above)} (build.context-warning in the "
                  "config file): every deploy reads, packs and sends all of it. What the function does not need "
                  f"at run time can go in .fnctlignore (Docker's patterns, e.g. `data/`); its largest entries: {top}")
