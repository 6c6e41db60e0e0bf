"""Steps every target shares: from a deploy request to build contexts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fnctl import source, templates
from fnctl.model import DeployRequest
from fnctl.source.context import BuildContext, ContextFile, make_context
from fnctl.templates import BuildTemplate


@dataclass(frozen=True)
class Prepared:
    template: BuildTemplate
    values: dict[str, str]                 # every template parameter, resolved
    runtime_context: BuildContext | None   # the per-runtime image's context, if the template has one
    files: tuple[ContextFile, ...]         # the function's files under src/
    commit: str | None                     # the git commit, for git sources

    def function_context(self, runtime_image: str | None) -> BuildContext:
        dockerfile = self.template.render(self.values, runtime_image)
        return make_context([*self.files, ContextFile("Dockerfile", dockerfile.encode())])


@contextmanager
def prepare(request: DeployRequest, extra_templates: dict[str, BuildTemplate] | None = None) -> Iterator[Prepared]:
    """Resolve the template and package the source (cloning a git URL for the block's duration)."""
    template = templates.find(request.template, extra_templates)
    # Check the parameters before any clone: bad input should fail at once.
    template.resolve(request.build_args)
    with source.checkout(request.source, request.revision) as tree:
        values = template.resolve(request.build_args, tree.file)
        folder = source.subfolder(tree, values.get("DIRECTORY", "."))
        files = tuple(source.package(folder))
        yield Prepared(template, values, template.runtime_context(values), files, tree.commit)
