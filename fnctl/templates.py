"""Build templates: one runtime each, a YAML file beside its Dockerfiles.

    # buildtemplates/<name>/template.yaml
    name: bash
    aliases: [aws-custom-runtime]
    runtime: bash (AWS Lambda custom runtime)
    description: ...
    parameters:
      - {name: DIRECTORY, default: ".", description: ...}
      - {name: HANDLER, default: function.handler, description: ...}
      - {name: BASE_IMAGE, default: "buildpack-deps:bookworm-curl", image: true, description: ...}
      - {name: PIP_INDEX_URL, default: "", secret: true}   # RUN --mount=type=secret,id=PIP_INDEX_URL
      - {name: GOPROXY, machine: go-env, secret: true}      # unless given: the machine's `go env GOPROXY`
      - {name: CA_BUNDLE, machine: ca-bundle, secret: true} # the machine's CA bundle (fnctl.trust)
    buildNetwork: host            # RUN steps that download (pip, npm, go modules) need it; default none
    runAsRoot: false              # true only for a runtime that cannot run as uid 65532 locally
    runtimeImage:                 # optional: the per-runtime image, built once and reused
      dockerfile: runtime.Dockerfile   # the language's part; fnctl adds the bridge (fnctl.bridge)
      parameters: [BASE_IMAGE]
    dockerfile: Dockerfile        # the function's build; `FROM ${RUNTIME_IMAGE}` for its runtime
    handlerFiles: [.sh]           # optional: what HANDLER's FILE part is (a missing one gets a hint)

Rendering puts every resolved parameter as a global `ARG NAME="value"` line
on top of the template's Dockerfile, so the context alone says how it was
built, and a changed parameter changes the context digest. A `secret: true`
parameter is the exception: it never becomes an ARG (ARGs a RUN step sees are
kept in the image history); the builders hand it to the build as a secret that
`RUN --mount=type=secret,id=NAME` steps read from /run/secrets/NAME.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fnctl import bridge, config, goenv, trust
from fnctl.errors import TemplateError, UsageError
from fnctl.source.context import BuildContext, ContextFile, make_context

# The names the archived TriggerMesh `tm` CLI used for the same runtimes.
LEGACY_ALIASES = {"aws-custom-runtime": "bash", "knative-go-runtime": "go", "knative-node4-runtime": "node4"}
RUNTIME_IMAGE_ARG = "RUNTIME_IMAGE"
MACHINE_SOURCES = ("go-env", "ca-bundle")   # where a parameter's value may come from on the user's machine
_PARAM_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass(frozen=True)
class Parameter:
    name: str
    default: str | None = None
    description: str = ""
    image: bool = False            # a base image: the machine's image map applies
    secret: bool = False           # reaches the build as a secret mount, never as an ARG
    machine: str | None = None     # "go-env": unless given, the machine's `go env NAME` (if set);
                                   # "ca-bundle": the CA bundle builds trust (PEM text; --ca-bundle)

    def to_dict(self) -> dict:
        return {"name": self.name, "default": self.default, "description": self.description,
                "image": self.image, "secret": self.secret, "machine": self.machine}


@dataclass(frozen=True)
class RuntimeImage:
    dockerfile: str                # Dockerfile text: the template's own, with fnctl's bridge added
    parameters: tuple[str, ...]    # the parameters that shape it
    files: dict[str, bytes] = field(default_factory=dict)   # template files for its context


@dataclass(frozen=True)
class BuildTemplate:
    name: str
    runtime: str
    description: str
    parameters: tuple[Parameter, ...]
    dockerfile: str
    origin: str = "built-in"
    aliases: tuple[str, ...] = ()
    runtime_image: RuntimeImage | None = None
    build_network: str = "none"    # where local builds' RUN steps run: none, or host for downloads
    runs_as_root: bool = False      # locally: uid 0 instead of 65532 (still without capabilities)
    handler_files: tuple[str, ...] = ()   # extensions of the files HANDLER names (fnctl.handlers)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def to_dict(self) -> dict:
        return {"name": self.name, "aliases": list(self.aliases), "runtime": self.runtime,
                "description": self.description, "origin": self.origin,
                "parameters": [p.to_dict() for p in self.parameters]}

    # -- parameters -------------------------------------------------------

    def resolve(self, given: dict[str, str], source_file: str | None = None,
                cfg: config.Config | None = None, ca_bundle: str | None = None) -> dict[str, str]:
        """Every declared parameter's value: given > the machine's setting (`machine: go-env`) >
        derived from a single file > default. A `machine: ca-bundle` parameter is the PEM text of
        the CA bundle builds trust (`ca_bundle`: --ca-bundle FILE or none; fnctl.trust), never given."""
        cfg = cfg or config.load()
        unknown = [k for k in given if self.parameter(k) is None]
        if unknown:
            known = ", ".join(p.name for p in self.parameters) or "none"
            raise TemplateError(
                f"build template {self.name!r} has no parameter {', '.join(map(repr, unknown))}",
                f"its parameters are: {known} (see `fnctl get buildtemplate {self.name}`)")
        values: dict[str, str] = {}
        machine = goenv.settings([p.name for p in self.parameters if p.machine == "go-env" and p.name not in given])
        for p in self.parameters:
            if p.machine == "ca-bundle":
                if p.name in given:
                    raise UsageError(f"build argument {p.name} is the CA bundle builds trust, not a value to give",
                                     "pass --ca-bundle FILE (or `none`), or set build.ca-bundle in the config file")
                bundle = trust.ca_bundle(ca_bundle)
                values[p.name] = bundle[1].decode(errors="replace") if bundle else ""
                continue
            if p.name in given:
                values[p.name] = given[p.name]
            elif p.name in machine:
                values[p.name] = machine[p.name]
            elif p.name == "HANDLER" and source_file and p.default and "." in p.default:
                # As tm did: a single file names the handler's module, e.g. hello.sh -> hello.handler
                values[p.name] = f"{Path(source_file).stem}.{p.default.rsplit('.', 1)[1]}"
            elif p.default is not None:
                values[p.name] = cfg.image(p.default) if p.image else p.default
            else:
                raise TemplateError(f"build template {self.name!r} needs the parameter {p.name}",
                                    f"pass --build-argument {p.name}=VALUE")
            if any(c in values[p.name] for c in "\n\r\0"):
                raise UsageError(f"build argument {p.name} has a line break", "pass a single-line value")
        return values

    # -- rendering --------------------------------------------------------

    def secrets(self, values: dict[str, str]) -> dict[str, str] | None:
        """The secret parameters' values (id -> value, empty ones left out), or None when the
        template has no secret parameter (then its build needs no secret support)."""
        names = [p.name for p in self.parameters if p.secret]
        return {n: values[n] for n in names if values.get(n)} if names else None

    def public(self, values: dict[str, str]) -> dict[str, str]:
        """`values` without the secret ones: what may become an ARG or a build argument."""
        return {k: v for k, v in values.items() if not (p := self.parameter(k)) or not p.secret}

    def render(self, values: dict[str, str], runtime_image: str | None = None) -> str:
        header = [f"# Generated by fnctl from build template {self.name!r}."]
        args = self.public(values)
        if runtime_image is not None:
            args[RUNTIME_IMAGE_ARG] = runtime_image
        return _with_args(header, args, self.dockerfile)

    def runtime_context(self, values: dict[str, str]) -> BuildContext | None:
        """The per-runtime image's context (bridge + language runtime), or None."""
        if self.runtime_image is None:
            return None
        spec = self.runtime_image
        shaping = {k: values[k] for k in spec.parameters if k in values}
        header = [f"# Runtime image of build template {self.name!r}, generated by fnctl."]
        files = [ContextFile(n, d, executable=_executable(n, d)) for n, d in spec.files.items()]
        files += bridge.files()
        files.append(ContextFile("Dockerfile", _with_args(header, shaping, spec.dockerfile).encode()))
        return make_context(files)


def _with_args(header: list[str], args: dict[str, str], body: str) -> str:
    """Global `ARG NAME="value"` lines on top of `body`.

    A bare `ARG NAME` of the body before its first FROM would reset the value to
    empty, so those lines are dropped; the ones inside stages stay and inherit it.
    """
    lines, in_stage = [], False
    for line in body.rstrip().splitlines():
        word = line.strip().split(maxsplit=1)
        if word and word[0].upper() == "FROM":
            in_stage = True
        if not in_stage and len(word) == 2 and word[0].upper() == "ARG" and word[1].strip() in args:
            continue
        lines.append(line)
    header = header + [f"ARG {k}={_quote(v)}" for k, v in args.items()]
    return "\n".join(header) + "\n\n" + "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    """A Dockerfile double-quoted word that yields `value` exactly.

    Inside double quotes Dockerfile's shell-word lexer (the same in the classic builder,
    BuildKit and kaniko) expands `$NAME` and takes a backslash before `\\`, `"` or `$` as an
    escape; every other character, UTF-8 included, stands for itself.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _executable(name: str, data: bytes) -> bool:
    return data.startswith(b"#!") or PurePosixPath(name).name == "bootstrap"


# A ready-made image (`deploy service NAME -f IMAGE`): nothing to build, no parameter, no bridge;
# the image's own entrypoint serves PORT. Never found by name: the pipeline uses it for images only.
READY_MADE = BuildTemplate(name="image", runtime="ready-made image",
                           description="an existing image, run with its own entrypoint", parameters=(),
                           dockerfile="", origin="built-in")


# -- loading ----------------------------------------------------------------

def parse(document: dict, files: dict[str, bytes], origin: str) -> BuildTemplate:
    """A template from its YAML document and the files beside it."""
    if not isinstance(document, dict):
        raise TemplateError(f"{origin}: a build template must be a YAML mapping", "see docs/templates.md")
    name = document.get("name")
    if not isinstance(name, str) or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name):
        raise TemplateError(f"{origin}: template name {name!r} must be a lowercase DNS label",
                            "e.g. name: my-runtime")
    params = []
    for raw in document.get("parameters") or []:
        if not isinstance(raw, dict) or not _PARAM_NAME.match(str(raw.get("name", ""))):
            raise TemplateError(f"{origin}: parameter {raw!r} needs an upper-case `name`",
                                "e.g. - {name: HANDLER, default: function.handler}")
        default = raw.get("default")
        machine = raw.get("machine")
        if machine is not None and (machine not in MACHINE_SOURCES
                                    or machine == "go-env" and not goenv.NAME.match(raw["name"])
                                    or machine == "ca-bundle" and not raw.get("secret")):
            raise TemplateError(f"{origin}: parameter {raw['name']}: machine must be one of "
                                f"{', '.join(MACHINE_SOURCES)}: go-env for a GO… parameter, ca-bundle for a "
                                "secret one", "e.g. - {name: GOPROXY, machine: go-env, secret: true} or "
                                "- {name: CA_BUNDLE, machine: ca-bundle, secret: true}")
        params.append(Parameter(raw["name"], None if default is None else str(default),
                                str(raw.get("description", "")), bool(raw.get("image", False)),
                                bool(raw.get("secret", False)), machine))
    dockerfile = _file_or_inline(document, "dockerfile", files, origin, required=True)
    runtime_image = None
    ri = document.get("runtimeImage")
    if ri:
        if not isinstance(ri, dict):
            raise TemplateError(f"{origin}: runtimeImage must be a mapping", "see docs/templates.md")
        ri_dockerfile = bridge.dockerfile(_file_or_inline(ri, "dockerfile", files, origin, required=True), origin)
        used = {"template.yaml", document.get("dockerfile"), ri.get("dockerfile")}
        shaping = tuple(ri.get("parameters") or ())
        if bridge.BUILD_IMAGE_PARAMETER not in shaping:
            shaping += (bridge.BUILD_IMAGE_PARAMETER,)
        if not any(p.name == bridge.BUILD_IMAGE_PARAMETER for p in params):
            params.append(Parameter(bridge.BUILD_IMAGE_PARAMETER, bridge.BUILD_IMAGE,
                                    "image that compiles the runtime bridge (fnctl's, in every runtime image)",
                                    image=True))
        runtime_image = RuntimeImage(ri_dockerfile, shaping, {n: d for n, d in files.items() if n not in used})
    build_network = document.get("buildNetwork", "none")
    if build_network not in ("none", "host"):
        raise TemplateError(f"{origin}: buildNetwork must be none or host, not {build_network!r}",
                            "host only when a RUN step downloads (pip, npm, go modules)")
    return BuildTemplate(
        name=name, runtime=str(document.get("runtime", name)),
        description=str(document.get("description", "")).strip(),
        parameters=tuple(params), dockerfile=dockerfile, origin=origin,
        aliases=tuple(document.get("aliases") or ()), runtime_image=runtime_image, build_network=build_network,
        runs_as_root=document.get("runAsRoot") is True,
        handler_files=tuple(str(e) for e in document.get("handlerFiles") or ()))


def _file_or_inline(doc: dict, key: str, files: dict[str, bytes], origin: str, required: bool) -> str:
    inline = doc.get(key + "Inline")
    if inline:
        return str(inline)
    ref = doc.get(key)
    if ref is None and not required:
        return ""
    if ref is None or str(ref) not in files:
        raise TemplateError(f"{origin}: {key} {ref!r} is not a file beside the template",
                            f"put the file next to template.yaml, or give {key}Inline")
    return files[str(ref)].decode()


def load_folder(folder: Path, origin: str = "built-in") -> BuildTemplate:
    import yaml

    path = folder / "template.yaml"
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise TemplateError(f"{folder} has no template.yaml", "a template folder needs template.yaml") from e
    except yaml.YAMLError as e:
        raise TemplateError(f"{path} is not valid YAML: {e}", "fix the template file") from e
    files = {p.relative_to(folder).as_posix(): p.read_bytes()
             for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}
    return parse(document, files, origin)


def builtin() -> dict[str, BuildTemplate]:
    """The built-in templates (read once per process and folder; callers get their own dict)."""
    return dict(_load_builtin(config.templates_dir()))


@functools.cache
def _load_builtin(root: Path) -> dict[str, BuildTemplate]:
    found = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if (folder / "template.yaml").is_file():
            t = load_folder(folder)
            found[t.name] = t
    return found


def find(name: str, extra: dict[str, BuildTemplate] | None = None) -> BuildTemplate:
    """A template by name or alias; `extra` (e.g. a cluster's) wins over built-ins."""
    known = {**builtin(), **(extra or {})}
    if name in known:
        return known[name]
    for t in known.values():
        if name in t.aliases:
            return t
    if name in LEGACY_ALIASES and LEGACY_ALIASES[name] in known:
        return known[LEGACY_ALIASES[name]]
    raise TemplateError(f"unknown build template {name!r}",
                        "known templates: " + ", ".join(sorted(known)) + " (`fnctl get buildtemplate` lists them)")
