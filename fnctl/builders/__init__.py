"""Builders turn a build context into an image.

Two exist: `docker.DockerEngine` (the local engine; it also runs the local
target's containers) and `kaniko.KanikoBuilder` (a pod in the cluster that
pushes to the in-cluster registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fnctl.model import Reporter
from fnctl.source.context import BuildContext


@dataclass(frozen=True)
class BuiltImage:
    reference: str          # what to run: a local tag, or registry/repo@sha256:...
    digest: str | None      # the image id (local) or pushed digest (registry)
    cached: bool = False    # True when nothing was built


class Builder(Protocol):
    def build(self, context: BuildContext, tag: str, reporter: Reporter,
              build_args: dict[str, str] | None = None) -> BuiltImage: ...
