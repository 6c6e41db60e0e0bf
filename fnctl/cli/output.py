"""Rendering results and progress: the only place that writes to the terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import click

from fnctl.redact import redact

FORMATS = ("human", "json", "yaml")


class TerminalReporter:
    """Progress to stderr, so stdout stays the result alone (pipe-friendly)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._color = sys.stderr.isatty()

    def phase(self, name: str, detail: str = "") -> None:
        label = click.style(f"{name:>8}", fg="cyan", bold=True) if self._color else f"{name:>8}"
        click.echo(f"{label}  {redact(detail)}".rstrip(), err=True)

    def log(self, line: str) -> None:
        if not self.quiet:
            click.echo(("          " + redact(line)) if line else "", err=True)

    def note(self, text: str) -> None:
        click.echo(f"fnctl: {redact(text)}", err=True)


def dump(data: object, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=False))
    else:
        import yaml

        class Dumper(yaml.SafeDumper):
            """Multi-line strings (a rendered Dockerfile) as literal blocks, readable as written."""

        def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
            # PyYAML falls back to a quoted style where a block cannot hold the text exactly.
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

        Dumper.add_representer(str, text)
        click.echo(yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False).rstrip())


def log_line(service: str, line: str, fmt: str) -> None:
    """One line of a service's log as it arrives: as is, one JSON object per line (JSON Lines),
    or one item of a YAML list, so a followed log is valid output at every moment."""
    if fmt == "human":
        click.echo(line)
    elif fmt == "json":
        click.echo(json.dumps({"service": service, "line": line}))
    else:
        dump([{"service": service, "line": line}], "yaml")


GAP = "  "
ELLIPSIS = "..."
NARROWEST = 8            # a shortened column keeps at least this many characters (or its header's)


def terminal_width() -> int:
    """$COLUMNS, else the terminal's width, else 100 (output to a pipe or file)."""
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], width: int | None = None) -> None:
    for line in table_lines(headers, rows, terminal_width() if width is None else width):
        click.echo(line)


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[object]], width: int) -> list[str]:
    """Columns padded to their longest cell; when that is wider than `width`, the widest columns
    give up characters first and their long cells end in '...'. The first column (names) stays whole."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    floors = [widths[0]] + [max(len(h), NARROWEST) for h in headers[1:]]
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - width
    while excess > 0:
        shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        others = max((widths[i] for i in shrinkable if i != widest), default=floors[widest])
        step = min(excess, widths[widest] - max(others, floors[widest]) or 1)
        widths[widest] -= step
        excess -= step
    return [GAP.join(_fit(v, w).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def _fit(value: str, width: int) -> str:
    return value if len(value) <= width else value[:max(width - len(ELLIPSIS), 0)] + ELLIPSIS
