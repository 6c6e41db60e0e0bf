"""The default HANDLER names a file the source lacks: find the one obvious handler instead.

A template says which files hold handlers (`handlerFiles: [.js, .mjs]` in template.yaml); when
HANDLER was not given, its default's file is missing and one file of the source is the obvious
candidate (the only one of its kind at the top, or the only one of the usual names: index.js,
lambda_function.py, main.sh, ...), the deploy stops before building with the HANDLER that works.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fnctl.errors import UsageError
from fnctl.source.context import ContextFile
from fnctl.templates import BuildTemplate

USUAL_NAMES = ("index", "lambda_function", "main", "app", "handler", "function")
USUAL_FUNCTIONS = ("handler", "lambda_handler", "main")
# What defines a callable handler in each kind of file (top-level definitions and exports).
_DEFINITIONS = {
    ".py": [r"^(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\("],
    ".sh": [r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\s*\)", r"^\s*function\s+([A-Za-z_][\w-]*)"],
    ".js": [r"(?:module\.)?exports\.([A-Za-z_$][\w$]*)\s*=",
            r"^export\s+(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)",
            r"^export\s+(?:const|let|var)\s+([A-Za-z_$][\w$]*)"],
}
_DEFINITIONS[".mjs"] = _DEFINITIONS[".cjs"] = _DEFINITIONS[".js"]


def check(template: BuildTemplate, given: dict[str, str], values: dict[str, str],
          files: Iterable[ContextFile], single_file: str | None, prefix: str = "src/") -> None:
    """Raise a UsageError naming `--build-argument HANDLER=…` when the default handler's file is
    missing and one candidate is obvious; otherwise leave it to the runtime to report."""
    handler = values.get("HANDLER", "")
    module, _, function = handler.rpartition(".")
    if "HANDLER" in given or single_file or not template.handler_files or not module:
        return
    sources = {f.name[len(prefix):]: f for f in files if f.name.startswith(prefix)}
    if "bootstrap" in sources:             # the source brings its own runtime loop
        return
    for ext in template.handler_files:
        if f"{module}{ext}" in sources or f"{module.replace('.', '/')}{ext}" in sources:
            return
    found = _candidate(sources, template.handler_files)
    if found is None:
        return
    name, ext = found
    defined = _defined(sources[name].data.decode(errors="replace"), ext)
    if function not in defined:
        function = next((f for f in USUAL_FUNCTIONS if f in defined), None) or \
            (defined[0] if len(defined) == 1 else function)
    works = f"{name[:-len(ext)]}.{function}"
    raise UsageError(f"the source has no {module}{template.handler_files[0]} for the default HANDLER={handler} "
                     f"of build template {template.name!r}, but it has {name}",
                     f"deploy with --build-argument HANDLER={works}")


def _candidate(sources: dict[str, ContextFile], exts: tuple[str, ...]) -> tuple[str, str] | None:
    """(file, extension) of the one obvious handler file at the top of the source, or None."""
    top = [(n, e) for n in sorted(sources) if "/" not in n for e in exts if n.endswith(e) and len(n) > len(e)]
    if len(top) == 1:
        return top[0]
    usual = [(n, e) for n, e in top if n[:-len(e)] in USUAL_NAMES]
    return usual[0] if len(usual) == 1 else None


def _defined(text: str, ext: str) -> list[str]:
    names: list[str] = []
    for pattern in _DEFINITIONS.get(ext, []):
        names += [n for n in re.findall(pattern, text, re.MULTILINE) if n not in names]
    return names
