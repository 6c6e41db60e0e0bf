"""How results look in a terminal: the rows of `get` tables and the lines of one template.

Only the human output is shaped here; `-o json|yaml` always carries every value in full.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:          # `fnctl --help` loads this module: keep it light
    from fnctl.model import ServiceInfo
    from fnctl.templates import BuildTemplate

SERVICE_HEADERS = ("NAME", "URL", "REVISION", "AGE", "READY", "REASON")    # the columns of `kn service list`
TEMPLATE_HEADERS = ("NAME", "RUNTIME", "PARAMETERS", "SOURCE")


def ready(value: bool | None) -> str:
    return {True: "True", False: "False"}.get(value, "Unknown")


def service_rows(services: list[ServiceInfo], now: datetime | None = None) -> list[list[str]]:
    return [[s.name, s.url or "", s.revision or "", age(s.created, now), ready(s.ready), s.reason or ""]
            for s in services]


def template_rows(found: list[BuildTemplate]) -> list[list[str]]:
    """Parameter names only: their defaults and image mappings are in `get buildtemplate NAME`."""
    return [[t.name, t.runtime, ", ".join(p.name for p in t.parameters), t.origin] for t in found]


def image_mappings(found: list[BuildTemplate]) -> dict[str, dict[str, dict[str, str]]]:
    """template -> image parameter -> {local, cluster}: what the config file maps its default to on
    each target (kaniko uses the `cluster.images` map: fnctl.builders.kaniko.cluster_images)."""
    from fnctl import config

    cfg = config.load()
    out: dict[str, dict[str, dict[str, str]]] = {}
    for t in found:
        out[t.name] = {}
        for p in t.parameters:
            if not (p.image and p.default):
                continue
            local, cluster = cfg.image(p.default), cfg.cluster.images.get(p.default, p.default)
            if (local, cluster) != (p.default, p.default):
                out[t.name][p.name] = {"local": local, "cluster": cluster}
    return out


def with_mappings(template: dict, mapped: dict[str, dict[str, str]]) -> dict:
    """A template's -o json|yaml form with each mapped image parameter's `mapped: {local, cluster}`."""
    for p in template["parameters"]:
        if p["name"] in mapped:
            p["mapped"] = mapped[p["name"]]
    return template


def template_lines(template: BuildTemplate, mapped: dict[str, dict[str, str]]) -> list[str]:
    """One template in detail: every parameter with its default, and what an image default maps to."""
    lines = [f"Name:        {template.name}"]
    if template.aliases:
        lines.append(f"Aliases:     {', '.join(template.aliases)}")
    lines += [f"Runtime:     {template.runtime}", f"Source:      {template.origin}", "Parameters:"]
    for p in template.parameters:
        default = ("(this machine's)" if p.machine else "(required)") if p.default is None \
            else repr(p.default) if p.default == "" else p.default
        lines.append(f"  {p.name}={default}")
        for where, image in mapped.get(p.name, {}).items():
            lines.append(f"      {where}: {image}")
        if p.description:
            lines.append(f"      {p.description}")
    return lines


def age(created: str | None, now: datetime | None = None) -> str:
    """`created` (RFC 3339) as kubectl and kn print ages: 45s, 3m20s, 2h5m, 3d4h, 20d, 2y30d."""
    if not created:
        return ""
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return created
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return human_duration(((now or datetime.now(timezone.utc)) - then).total_seconds())


def human_duration(seconds: float) -> str:
    """The rounding of k8s.io/apimachinery/pkg/util/duration.HumanDuration: two units while the
    larger one is small, one unit after."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours = s // 60, s // 3600
    if minutes < 10:
        return _two(minutes, "m", s % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return _two(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _two(hours // 24, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        return _two(hours // (24 * 365), "y", (hours // 24) % 365, "d")
    return f"{hours // (24 * 365)}y"


def _two(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"
