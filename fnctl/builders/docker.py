"""Images on the local Docker engine: the local target's builder.

Images are tagged by the digest of their build context, so an unchanged
function or runtime is found by tag and never built twice:
fnctl-runtime/TEMPLATE:DIGEST12 and fnctl/SERVICE:DIGEST12.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fnctl import config, labels, trust
from fnctl.errors import BuildError
from fnctl.model import BUILD, RUNTIME, BuiltImage, Reporter
from fnctl.source.context import BuildContext
from fnctl.templates import BuildTemplate

if TYPE_CHECKING:
    from fnctl.dockerengine import DockerEngine
    from fnctl.pipeline import Prepared


def runtime_tag(prepared: Prepared) -> str | None:
    if prepared.runtime_context is None:
        return None
    return f"fnctl-runtime/{prepared.template.name}:{prepared.runtime_context.short_digest}"


def function_tag(name: str, context: BuildContext) -> str:
    return f"fnctl/{name}:{context.short_digest}"


def _describe(context: BuildContext) -> str:
    return f"{len(context.files)} files, {len(context.data)} bytes"


class _LocalImages:
    """What both local builders share: the machine's image map applies, only built-in templates exist."""

    def __init__(self, image_config: config.Config | None = None):
        self.image_config = image_config or config.load()

    def templates(self, reporter: Reporter) -> dict[str, BuildTemplate]:
        return {}

    def discard(self, image: BuiltImage, reporter: Reporter) -> None:
        pass


class DockerBuilder(_LocalImages):
    """Builds with the engine's classic builder."""

    def __init__(self, engine: DockerEngine, image_config: config.Config | None = None):
        super().__init__(image_config)
        self.engine = engine

    def discard(self, image: BuiltImage, reporter: Reporter) -> None:
        """The engine refuses to remove an image a container uses: only an unused one goes."""
        if self.engine.remove_image(image.reference):
            reporter.note(f"removed {image.reference}, built by this failed deploy")

    def runtime_image(self, prepared: Prepared, reporter: Reporter) -> str | None:
        tag = runtime_tag(prepared)
        if tag is None:
            return None
        if self.engine.image_id(tag) is None:
            self._build_runtime(prepared, tag, reporter)
        else:
            reporter.phase(RUNTIME, f"{prepared.template.name} runtime image already built: {tag}")
        return tag

    def _build_runtime(self, prepared: Prepared, tag: str, reporter: Reporter) -> None:
        assert prepared.runtime_context is not None
        reporter.phase(RUNTIME, f"building the {prepared.template.name} runtime image {tag}")
        self.engine.build(prepared.runtime_context, tag, reporter, build_args=trust.proxies(),
                          labels={labels.RUNTIME: prepared.template.name}, network=prepared.template.build_network)

    def function_image(self, prepared: Prepared, runtime_image: str | None, reporter: Reporter) -> BuiltImage:
        context = prepared.function_context(runtime_image)
        tag = function_tag(prepared.request.name, context)
        image_id = self.engine.image_id(tag)
        if image_id is not None:
            reporter.phase(BUILD, f"{tag} unchanged, using the cached image")
            return BuiltImage(tag, image_id, context, cached=True)
        reporter.phase(BUILD, f"{tag} ({_describe(context)})")
        secrets = prepared.template.secrets(prepared.values)
        proxies = trust.proxies()       # Docker's predefined proxy ARGs: in RUN steps, not in the image
        try:
            return BuiltImage(tag, self.engine.build(context, tag, reporter, proxies, secrets=secrets,
                                                      network=prepared.template.build_network), context)
        except BuildError:
            if runtime_image is None or self.engine.image_id(runtime_image) is not None:
                raise
        # The runtime image went away mid-deploy (a prune, another shell): make it again, once.
        self._build_runtime(prepared, runtime_image, reporter)
        reporter.phase(BUILD, f"{tag} again, on the rebuilt runtime image")
        return BuiltImage(tag, self.engine.build(context, tag, reporter, proxies, secrets=secrets,
                                                  network=prepared.template.build_network), context)


class DockerBuildPlan(_LocalImages):
    """Records the images DockerBuilder would build (a first deploy: no cache), touching no engine."""

    def __init__(self, objects: list[dict], image_config: config.Config | None = None):
        super().__init__(image_config)
        self.objects = objects

    def runtime_image(self, prepared: Prepared, reporter: Reporter) -> str | None:
        tag = runtime_tag(prepared)
        if tag is not None:
            assert prepared.runtime_context is not None
            reporter.phase(RUNTIME, f"would build {tag} unless the engine has it")
            self.objects.append(_image_object(tag, "runtime", prepared.runtime_context,
                                              {labels.RUNTIME: prepared.template.name}))
        return tag

    def function_image(self, prepared: Prepared, runtime_image: str | None, reporter: Reporter) -> BuiltImage:
        context = prepared.function_context(runtime_image)
        tag = function_tag(prepared.request.name, context)
        reporter.phase(BUILD, f"would build {tag} ({_describe(context)}) unless the engine has it")
        self.objects.append(_image_object(tag, "function", context, {}))
        return BuiltImage(tag, None, context)


def _image_object(tag: str, role: str, context: BuildContext, image_labels: dict[str, str]) -> dict:
    return {"kind": "Image", "target": "local", "name": tag, "role": role,
            "context": {"digest": context.digest, "bytes": len(context.data), "files": list(context.files)},
            "labels": image_labels, "dockerfile": context.read("Dockerfile").decode()}
