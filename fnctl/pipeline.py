"""Steps every target shares: from a deploy request to build contexts."""

from __future__ import annotations

from dataclasses import dataclass

from fnctl import config, source, templates
from fnctl.model import DeployRequest
from fnctl.source.context import BuildContext, ContextFile, make_context
from fnctl.templates import BuildTemplate


@dataclass(frozen=True)
class Prepared:
    template: BuildTemplate
    values: dict[str, str]                 # every template parameter, resolved
    runtime_context: BuildContext | None   # the per-runtime image's context, if the template has one
    files: tuple[ContextFile, ...]         # the function's files under src/
    origin: str                            # the source as given, with @commit for git sources

    def function_context(self, runtime_image: str | None) -> BuildContext:
        dockerfile = self.template.render(self.values, runtime_image)
        return make_context([*self.files, ContextFile("Dockerfile", dockerfile.encode())])


def prepare(request: DeployRequest, extra_templates: dict[str, BuildTemplate] | None = None,
            cfg: config.Config | None = None) -> Prepared:
    """Resolve the template and read the source into memory (a git clone is removed again).

    `cfg` carries the image map; a cluster build passes an empty one, since the
    machine's local base images do not exist where kaniko pulls.
    """
    template = templates.find(request.template, extra_templates)
    # Check the parameters before any clone: bad input should fail at once.
    template.resolve(request.build_args, cfg=cfg)
    with source.checkout(request.source, request.revision) as tree:
        values = template.resolve(request.build_args, tree.file, cfg=cfg)
        # A single file's folder is the source (as tm did); DIRECTORY picks a folder of it.
        files = tuple(source.package(source.subfolder(tree, values.get("DIRECTORY", "."))))
        origin = f"{tree.origin}@{tree.commit}" if tree.commit else tree.origin
    return Prepared(template, values, template.runtime_context(values), files, origin)
