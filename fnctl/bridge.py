"""The runtime bridge in every runtime image: fnctl compiles it and installs it, once for all templates.

A template's runtime.Dockerfile holds only what its language needs (the base
image, the bootstrap, settings). fnctl puts a stage that compiles the bridge
before the template's first FROM, and the lines that install it and make it the
entrypoint after the template's last line:

    ARG ...                          # the resolved parameters (fnctl.templates)
    FROM ${GO_IMAGE} AS fnctl-bridge # compile buildtemplates/bridge (these files, under bridge/)
    FROM ${BASE_IMAGE}               # the template's own lines
    COPY bootstrap /var/runtime/bootstrap
    COPY --from=fnctl-bridge ...     # the bridge, its environment, ENTRYPOINT

GO_IMAGE is a parameter of every template with a runtime image (fnctl adds it
unless the template declares it, as the go template does for its own builds), so
`--build-argument GO_IMAGE=...` and the image map apply as to any base image.
"""

from __future__ import annotations

from fnctl import config
from fnctl.errors import TemplateError
from fnctl.source.context import ContextFile

BUILD_IMAGE_PARAMETER = "GO_IMAGE"
BUILD_IMAGE = "golang:1.23-bookworm"
STAGE = "fnctl-bridge"

_BUILD = f"""# The runtime bridge, compiled by fnctl (the same stage in every runtime image).
FROM ${{{BUILD_IMAGE_PARAMETER}}} AS {STAGE}
WORKDIR /src
COPY bridge/ ./
RUN CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o /out/bridge .
"""

_INSTALL = f"""# Added by fnctl: the bridge serves HTTP on $PORT and runs the bootstrap per invocation.
COPY --from={STAGE} /out/bridge /opt/fnctl/bridge
ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime PORT=8080
WORKDIR /var/task
ENTRYPOINT ["/opt/fnctl/bridge"]
"""


def dockerfile(runtime_dockerfile: str, origin: str = "template") -> str:
    """The template's runtime Dockerfile with the bridge's build stage before it and its install after it."""
    lines = runtime_dockerfile.rstrip().splitlines()
    first = next((i for i, line in enumerate(lines) if line.split()[:1] and line.split()[0].upper() == "FROM"),
                 None)
    if first is None:
        raise TemplateError(f"{origin}: the runtime image's Dockerfile has no FROM line",
                            "start it with FROM ${BASE_IMAGE} (fnctl adds the bridge)")
    return "\n".join([*lines[:first], _BUILD, *lines[first:], "", _INSTALL])


def files() -> list[ContextFile]:
    """The bridge's Go sources, placed at bridge/ in runtime contexts."""
    folder = config.templates_dir() / "bridge"
    found = []
    for path in sorted(folder.glob("*")):
        if path.is_file() and (path.suffix == ".go" and not path.name.endswith("_test.go")
                               or path.name in ("go.mod", "go.sum")):
            found.append(ContextFile(f"bridge/{path.name}", path.read_bytes()))
    return found
