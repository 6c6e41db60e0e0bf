"""One deploy, the same steps in the same order for every target.

A target is a pair: a `Builder` (ensure the template's runtime image, build the
function's image, with the cache lookup inside) and a `Deployer` (roll the image
out, wait, and answer list/describe/delete/logs). `deploy` composes them, in the
spirit of knative/func's client (pkg/functions/client.go: one orchestrator over
Builder, Pusher and Deployer implementations); a dry run is the same `deploy`
with implementations that record instead of act.

    result = deploy(request, builder, deployer, reporter)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from fnctl import config, handlers, redeploy, source, templates, validation
from fnctl.errors import FnctlError, Interrupted
from fnctl.model import PHASES, SOURCE, BuiltImage, DeployRequest, DeployResult, RecordedSettings, Reporter, ServiceInfo
from fnctl.redact import redact
from fnctl.source import size
from fnctl.source.context import BuildContext, ContextFile, make_context
from fnctl.templates import BuildTemplate


@dataclass(frozen=True)
class Prepared:
    """A deploy request made concrete: its template's values resolved, its source read."""

    request: DeployRequest
    template: BuildTemplate
    values: dict[str, str]                 # every template parameter, resolved
    runtime_context: BuildContext | None   # the per-runtime image's context, if the template has one
    files: tuple[ContextFile, ...]         # the function's files under src/
    origin: str                            # the source as given, with @commit for git sources

    def function_context(self, runtime_image: str | None) -> BuildContext:
        dockerfile = self.template.render(self.values, runtime_image)
        return make_context([*self.files, ContextFile("Dockerfile", dockerfile.encode())])

    def runtime_build_args(self) -> dict[str, str]:
        """The parameters that shape the runtime image (already in its Dockerfile's ARG lines)."""
        shaping = self.template.runtime_image.parameters if self.template.runtime_image else ()
        return {k: self.values[k] for k in shaping if k in self.values}


@dataclass(frozen=True)
class Release:
    """What a deployer rolls out: the function's image and what it was made from."""

    prepared: Prepared
    image: BuiltImage

    @property
    def request(self) -> DeployRequest:
        return self.prepared.request

    @property
    def context(self) -> BuildContext:
        """The function's build context the image was built from."""
        return self.image.context

    @property
    def bridge(self) -> bool:
        """Served by the runtime bridge (the template has a runtime image)."""
        return self.prepared.runtime_context is not None


class Builder(Protocol):
    image_config: config.Config            # how the templates' image parameters resolve for this builder

    def templates(self, reporter: Reporter) -> dict[str, BuildTemplate]:
        """Templates this target knows besides the built-in ones (a cluster namespace's)."""

    def runtime_image(self, prepared: Prepared, reporter: Reporter) -> str | None:
        """Make sure the template's runtime image exists (phase `runtime`); its reference, or None."""

    def function_image(self, prepared: Prepared, runtime_image: str | None, reporter: Reporter) -> BuiltImage:
        """The function's image (phase `build`) FROM `runtime_image`: a cached one for an unchanged
        context (prepared.function_context), else built."""

    def discard(self, image: BuiltImage, reporter: Reporter) -> None:
        """A deploy that built `image` failed: remove the image unless something uses it."""


class Deployer(Protocol):
    target: str                            # "local" or "cluster"

    def check(self, request: DeployRequest, template: BuildTemplate) -> None:
        """Before any source is read: the target is there and every option given applies to it."""

    def serialize(self, name: str, reporter: Reporter) -> AbstractContextManager:
        """Held around a deploy or delete of `name`: one at a time where the target needs a lock
        (the local engine); a cluster keeps them apart by resourceVersion instead."""

    def recorded(self, name: str) -> RecordedSettings | None:
        """The settings the deployed service `name` was given, or None for a new name."""

    def roll_out(self, release: Release, reporter: Reporter) -> DeployResult:
        """Run the release (phases `deploy`, then `wait`); what was there keeps serving on failure."""

    def list(self) -> list[ServiceInfo]: ...

    def describe(self, name: str) -> ServiceInfo: ...

    def delete(self, name: str, force: bool = False) -> list[str]:
        """Remove the service and what fnctl made for it; `force`: even what fnctl did not make.
        What was removed, e.g. ["container fnctl-hello-00002", "image fnctl/hello:0123abcd4567"]."""

    def logs(self, name: str, follow: bool = False, tail: int | None = None) -> Iterator[str]: ...

    def labelled(self, key: str, value: str) -> list[str]:
        """Names of the services carrying the label key=value."""


def deploy(request: DeployRequest, builder: Builder, deployer: Deployer, reporter: Reporter) -> DeployResult:
    """Source to a running service: every step once, in order, timed by phase."""
    validation.service_name(request.name)
    clock = PhaseClock(reporter)
    try:
        template = templates.READY_MADE if request.image else templates.find(request.template,
                                                                              builder.templates(clock))
        deployer.check(request, template)
    except KeyboardInterrupt:
        # Builders and deployers answer Ctrl-C themselves (undo, cleanup); before them nothing was made.
        raise Interrupted(f"interrupted before {request.name} was built; nothing was changed") from None
    # One deploy or delete of a name at a time, from reading what runs to rolling out: whatever
    # order they finish in, the last one serves and each reports what it did.
    with deployer.serialize(request.name, clock):
        try:
            request, kept = redeploy.carry_over(request, template, deployer.recorded(request.name))
            if kept:
                clock.note(kept)
            if request.image:
                clock.phase(SOURCE, f"ready-made image {request.image}, nothing to build")
                prepared = ready_made(request)
            else:
                clock.phase(SOURCE, redact(request.source))
                try:
                    prepared = prepare(request, template, builder.image_config)
                except FnctlError as e:
                    if kept and not request.reset:    # a kept value may not fit this source
                        e.hint = ((e.hint + "; ") if e.hint else "") + (
                            "some build arguments were kept from the deployed service: --reset starts "
                            "from the template's defaults, --build-argument NAME- drops one")
                    raise
                line, warning = size.report(prepared.files, config.load().build.context_warning)
                clock.note(warning or line)          # a remark, not build output: shown with -q too
        except KeyboardInterrupt:
            # Builders and deployers answer Ctrl-C themselves (undo, cleanup); before them nothing was made.
            raise Interrupted(f"interrupted before {request.name} was built; nothing was changed") from None
        runtime_image = builder.runtime_image(prepared, clock)
        image = builder.function_image(prepared, runtime_image, clock)
        try:
            result = deployer.roll_out(Release(prepared, image), clock)
        except BaseException:
            if not image.cached:         # nothing half-made: the image this deploy built goes too
                builder.discard(image, clock)
            raise
    result.phases = clock.stop()
    return result


def delete(name: str, deployer: Deployer, reporter: Reporter, force: bool = False) -> list[str]:
    """Remove service `name`, waiting for a deploy of it in progress; what was removed."""
    validation.service_name(name)
    with deployer.serialize(name, reporter):
        return deployer.delete(name, force)


def prepare(request: DeployRequest, template: BuildTemplate, cfg: config.Config | None = None) -> Prepared:
    """Read the source into memory (a git clone is removed again) and resolve `template`'s parameters.

    `cfg` carries the builder's image map: the machine's for the local engine, the config
    file's cluster.images for kaniko (the machine's local base images do not exist where it pulls).
    """
    cfg = cfg or config.load()
    # Check the parameters before any clone: bad input should fail at once.
    template.resolve(request.build_args, cfg=cfg, ca_bundle=request.ca_bundle)
    with source.checkout(request.source, request.revision) as tree:
        values = template.resolve(request.build_args, tree.file, cfg=cfg, ca_bundle=request.ca_bundle)
        # A single file's folder is the source (as tm did); DIRECTORY picks a folder of it.
        files = tuple(source.package(source.subfolder(tree, values.get("DIRECTORY", "."))))
        handlers.check(template, request.build_args, values, files, tree.file)
        origin = f"{tree.origin}@{tree.commit}" if tree.commit else tree.origin
    return Prepared(request, template, values, template.runtime_context(values), files, origin)


def ready_made(request: DeployRequest) -> Prepared:
    """A ready-made image's request made concrete: no source, no parameters, no runtime image.
    The builder (fnctl.builders.image) only finds the image; its "context" is the reference itself,
    so the Service's context annotation changes exactly when the image named does."""
    assert request.image
    return Prepared(request, templates.READY_MADE, {}, None,
                    (ContextFile("image", request.image.encode()),), request.image)


class Silent:
    """A Reporter that drops everything (callers with nowhere to show progress)."""

    def phase(self, name: str, detail: str = "") -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class PhaseClock:
    """A Reporter that passes everything on and times each phase, summed by name.

    Only the names of PHASES exist: one vocabulary for progress and `-o json` on every target.
    """

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.totals = dict.fromkeys(PHASES, 0.0)
        self._current: tuple[str, float] | None = None

    def phase(self, name: str, detail: str = "") -> None:
        if name not in self.totals:
            raise ValueError(f"unknown deploy phase {name!r}; the phases are {', '.join(PHASES)}")
        self.stop()
        self._current = (name, time.monotonic())
        self.reporter.phase(name, detail)

    def stop(self) -> dict[str, float]:
        """End the current phase; the seconds of every phase so far."""
        if self._current:
            name, start = self._current
            self.totals[name] += time.monotonic() - start
            self._current = None
        return dict(self.totals)

    def log(self, line: str) -> None:
        self.reporter.log(line)

    def note(self, text: str) -> None:
        self.reporter.note(text)
