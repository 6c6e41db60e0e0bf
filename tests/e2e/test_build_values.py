"""Build-argument values reach the image byte for byte (issue 10, item 8).

The old renderer wrote them with json.dumps: `$` was left for Dockerfile's expansion
(`pa$$w0rd` arrived as `paw0rd`) and non-ASCII came out as `\\u00fc`.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from fnctl.dockerengine import DockerEngine
from fnctl.source.context import ContextFile, make_context
from fnctl.templates import parse
from tests.conftest import needs_docker

VALUES = ['pa$$w0rd', 'say "hi"', 'back\\slash\\', 'two  spaces ', 'grüße ü €', '${HOME} $PATH \\$x',
          "it's", "`tick` \\\" \\\\$", "\t"]


class Quiet:
    def phase(self, name: str, detail: str = "") -> None: ...
    def log(self, line: str) -> None: ...
    def note(self, text: str) -> None: ...


def _template(count: int):
    params = [{"name": f"V{i}"} for i in range(count)]
    steps = "".join(f"ARG V{i}\nRUN printf '%s' \"$V{i}\" > /v{i}\n" for i in range(count))
    return parse({"name": "values", "parameters": params,
                  "dockerfileInline": f"FROM fnctl-local/debian:bookworm\n{steps}"}, {}, "test")


@pytest.mark.docker
@needs_docker
def test_values_arrive_byte_exact_in_the_built_image():
    template = _template(len(VALUES))
    dockerfile = template.render({f"V{i}": v for i, v in enumerate(VALUES)})
    context = make_context([ContextFile("Dockerfile", dockerfile.encode())])
    tag = f"fnctl-test/values:{uuid.uuid4().hex[:8]}"
    engine = DockerEngine.connect()
    engine.build(context, tag, Quiet())
    try:
        for i, value in enumerate(VALUES):
            got = subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "cat", f"/v{i}"],
                                 capture_output=True, check=True).stdout
            assert got == value.encode(), (i, value, got)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
