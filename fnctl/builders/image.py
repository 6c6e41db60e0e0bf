"""Ready-made images (`fnctl deploy service NAME -f IMAGE`): builders that build nothing.

They stand in for a target's builder in the one pipeline (fnctl.pipeline.deploy) and only
find the image: the local one takes it from the engine or pulls it; the cluster one asks the
registry which digest the reference names now and pins the Service to it, as `kn` does
(Knative resolves tags the same way; a digest keeps every later revision on that very image).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fnctl import config, registry
from fnctl.errors import SourceError
from fnctl.model import BUILD, BuiltImage, Reporter
from fnctl.source.context import BuildContext, make_context
from fnctl.templates import BuildTemplate

if TYPE_CHECKING:
    from fnctl.dockerengine import DockerEngine
    from fnctl.pipeline import Prepared


def _context(prepared: Prepared) -> BuildContext:
    return make_context(prepared.files)


def _image(prepared: Prepared) -> str:
    assert prepared.request.image
    return prepared.request.image


class _NoBuild:
    """No templates and no runtime image: a ready-made image has neither."""

    def __init__(self, image_config: config.Config | None = None):
        self.image_config = image_config or config.Config()

    def templates(self, reporter: Reporter) -> dict[str, BuildTemplate]:
        return {}

    def runtime_image(self, prepared: Prepared, reporter: Reporter) -> str | None:
        return None

    def discard(self, image: BuiltImage, reporter: Reporter) -> None:
        """Nothing: the image is the user's, never fnctl's to remove (even after a failed deploy)."""


class EngineImage(_NoBuild):
    """The local target: the engine's image, pulled when it has none by that reference."""

    def __init__(self, engine: DockerEngine):
        super().__init__()
        self.engine = engine

    def function_image(self, prepared: Prepared, runtime_image: str | None, reporter: Reporter) -> BuiltImage:
        image = _image(prepared)
        image_id = self.engine.image_id(image)
        if image_id is None:
            reporter.phase(BUILD, f"no build: pulling {image}")
            image_id = self.engine.pull(image, reporter)
        else:
            reporter.phase(BUILD, f"no build: {image} is on the engine ({image_id[:19]})")
        return BuiltImage(image, image_id, _context(prepared), cached=True)


class RegistryImage(_NoBuild):
    """The cluster target: the image pinned by the digest its registry gives, when it answers."""

    def function_image(self, prepared: Prepared, runtime_image: str | None, reporter: Reporter) -> BuiltImage:
        image = _image(prepared)
        answer = None if "@" in image else registry.digest(image, prepared.request.insecure_registry)
        if answer is None:
            why = "it names a digest" if "@" in image else "the registry cannot be asked from here"
            reporter.phase(BUILD, f"no build: {image} as given ({why})")
            return BuiltImage(image, image.split("@", 1)[1] if "@" in image else None, _context(prepared),
                              cached=True)
        exists, digest = answer
        if not exists:
            raise SourceError(f"the registry has no image {image}",
                              "check the repository and tag (the registry answered 404 for its manifest)")
        if digest is None:
            reporter.phase(BUILD, f"no build: {image} as given (the registry named no digest)")
            return BuiltImage(image, None, _context(prepared), cached=True)
        pinned = registry.pinned(image, digest)
        reporter.phase(BUILD, f"no build: {image} is {pinned}")
        return BuiltImage(pinned, digest, _context(prepared), cached=True)


class ImagePlan(_NoBuild):
    """A dry run: the image as given, asking nothing (the real deploy pins it by digest)."""

    def function_image(self, prepared: Prepared, runtime_image: str | None, reporter: Reporter) -> BuiltImage:
        image = _image(prepared)
        reporter.phase(BUILD, f"would build nothing: runs {image} (pinned by digest when its registry answers)")
        return BuiltImage(image, None, _context(prepared), cached=True)
