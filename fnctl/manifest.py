"""serverless.yaml, the manifest TriggerMesh's `tm` deployed many functions from (docs/manifest.md).

    manifest = load("serverless.yaml")          # or an https URL
    for function in manifest.functions:         # in the order written, includes after
        function.request                        # the DeployRequest `fnctl deploy service` would build

Parsing is strict: an unknown key, a wrong type, a missing `service`, a function with no
source, a name defined twice (across includes too) or an include that cannot be read is a
ManifestError (exit 2) naming the file, the line and the key. Values are read from the YAML
nodes, not from what a YAML loader makes of them, so an environment value `yes` or `010` is
the string as written, never True or 8.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import yaml

from fnctl import labels, registry, templates, validation
from fnctl.errors import FnctlError, UsageError
from fnctl.model import DeployRequest
from fnctl.source.git import looks_like_git_url

DEFAULT_FILE = "serverless.yaml"
MAX_BYTES = 1_000_000
PROVIDERS = ("triggermesh", "fnctl")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# tm's runtime URLs point into triggermesh's runtime repositories; these folder names say which
# runtime they build (knative-lambda-runtime's node-4.x, go-1.x, python-3.7, …).
TM_RUNTIME_FOLDERS = {"node-4.x": "node4", "node4": "node4", "go-1.x": "go", "go": "go",
                      "python-3.7": "python", "python-3.8": "python", "python": "python",
                      "bash": "bash", "aws-custom-runtime": "bash", "dotnet": "azure-dotnet"}

_STR, _INT, _MAP, _LIST, _PAIRS = "a string", "a whole number", "a mapping", "a list of strings", \
    "a list of KEY=VALUE strings"
TOP_KEYS = {"service": _STR, "description": _STR, "provider": _MAP, "functions": _MAP, "include": _LIST}
INCLUDE_KEYS = {"description": _STR, "functions": _MAP, "include": _LIST}
PROVIDER_KEYS = {"name": _STR, "namespace": _STR, "registry": _STR, "registry-secret": _STR, "runtime": _STR,
                 "environment": _MAP, "env-secrets": _LIST, "annotations": _MAP, "buildtimeout": _STR,
                 "pull-policy": _STR}
FUNCTION_KEYS = {"source": _STR, "handler": _STR, "revision": _STR, "runtime": _STR, "concurrency": _INT,
                 "buildargs": _PAIRS, "description": _STR, "labels": _PAIRS, "environment": _MAP,
                 "env-secrets": _LIST, "annotations": _MAP}


class ManifestError(UsageError):
    """A manifest that cannot be used as written: names the file, the line and the key."""

    kind = "manifest"

    def __init__(self, file: str, line: int | None, key: str | None, problem: str, hint: str | None = None):
        where = file + (f", line {line}" if line else "") + (f", key {key}" if key else "")
        super().__init__(f"{where}: {problem}", hint or "see docs/manifest.md for the format")
        self.file, self.line, self.key = file, line, key

    def to_dict(self) -> dict:
        return {**super().to_dict(), "file": self.file, "line": self.line, "key": self.key}


@dataclass(frozen=True)
class Function:
    name: str                     # as in the manifest: echo
    request: DeployRequest        # its service is SERVICE-NAME
    file: str                     # where it is defined
    line: int


@dataclass(frozen=True)
class Manifest:
    service: str
    file: str                     # the manifest as given
    namespace: str | None
    functions: tuple[Function, ...] = field(default_factory=tuple)

    def select(self, names: Iterable[str]) -> list[Function]:
        """The functions NAMES pick (`echo` or `demo-echo`); all of them for none."""
        names = list(names)
        if not names:
            return list(self.functions)
        by_name = {f.name: f for f in self.functions} | {f.request.name: f for f in self.functions}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise UsageError(f"{self.file} has no function {', '.join(map(repr, unknown))}",
                             "its functions: " + ", ".join(f.name for f in self.functions))
        picked: dict[str, Function] = {}
        for n in names:
            picked[by_name[n].name] = by_name[n]
        return list(picked.values())


def find(spec: str | None, folder: Path | None = None) -> str | None:
    """The manifest a command means: `spec` as given, else serverless.yaml in `folder` (or the
    current folder) when there is one."""
    if spec:
        return spec
    candidate = (folder or Path.cwd()) / DEFAULT_FILE
    return str(candidate) if candidate.is_file() else None


def load(spec: str) -> Manifest:
    """Read and check the manifest at `spec` (a path or an https URL) and its includes."""
    text = _read(spec, None)
    root = _document(text, spec)
    _check_keys(root, TOP_KEYS, spec, "")
    top = dict(_items(root, spec, ""))
    if "service" not in top:
        raise ManifestError(spec, root.start_mark.line + 1, "service", "the manifest names no service",
                            "add e.g. `service: demo` (every function becomes the service demo-FUNCTION)")
    service = _string(top["service"], spec, "service")
    _checked(lambda: validation.service_name(service), top["service"], spec, "service")
    provider = _provider(top.get("provider"), spec)
    loader = _Loader(service, provider)
    loader.add(root, spec, spec)
    if not loader.functions:
        raise ManifestError(spec, _line(top.get("functions", root)), "functions",
                            "the manifest (with its includes) defines no function", "add functions: {NAME: {...}}")
    return Manifest(service, spec, provider.get("namespace"), tuple(loader.functions))


# -- reading ---------------------------------------------------------------------------

def _read(spec: str, included_from: tuple[str, int, str] | None) -> str:
    try:
        if urlsplit(spec).scheme == "https":
            from fnctl import download

            data = download.fetch(spec, MAX_BYTES)
        elif "://" in spec:
            raise UsageError(f"{spec}: only local files and https URLs are read", "give a path or an https URL")
        else:
            data = Path(spec).expanduser().read_bytes()
        if len(data) > MAX_BYTES:
            raise UsageError(f"{spec} is larger than {MAX_BYTES} bytes", "a manifest is a small YAML file")
        return data.decode()
    except (OSError, UnicodeDecodeError, FnctlError) as e:
        reason = e.message if isinstance(e, FnctlError) else \
            getattr(e, "strerror", None) or str(e)
        if included_from:
            file, line, key = included_from
            raise ManifestError(file, line, key, f"cannot read the include {spec}: {reason}",
                                "fix the path or URL (a path is relative to the file that includes it)") from None
        raise UsageError(f"cannot read the manifest {spec}: {reason}",
                         "give a serverless.yaml path or an https URL with -f") from None


def _document(text: str, file: str) -> yaml.Node:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ManifestError(file, mark.line + 1 if mark else None, None,
                            f"not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ManifestError(file, None, None, f"not valid YAML: {e}") from None
    if node is None:
        raise ManifestError(file, None, None, "the file is empty", "see docs/manifest.md for the format")
    if not isinstance(node, yaml.MappingNode):
        raise ManifestError(file, _line(node), None, "a manifest must be a YAML mapping of keys")
    return node


# -- typed values from nodes --------------------------------------------------------------

def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _items(node: yaml.Node, file: str, key: str) -> list[tuple[str, yaml.Node]]:
    """A mapping's (key, value node) pairs, in order; a key written twice is an error."""
    if not isinstance(node, yaml.MappingNode):
        raise ManifestError(file, _line(node), key or None, f"must be {_MAP}, not {_kind(node)}")
    seen: dict[str, int] = {}
    pairs = []
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode) or k.tag == "tag:yaml.org,2002:null":
            raise ManifestError(file, _line(k), key or None, "keys must be plain names")
        name = k.value
        path = f"{key}.{name}" if key else name
        if name in seen:
            raise ManifestError(file, _line(k), path, f"written twice (first on line {seen[name]})")
        seen[name] = _line(k)
        pairs.append((name, v))
    return pairs


def _check_keys(node: yaml.Node, known: dict[str, str], file: str, key: str) -> None:
    for name, _value in _items(node, file, key):
        if name not in known:
            path = f"{key}.{name}" if key else name
            line = next(_line(k) for k, _ in node.value if k.value == name)
            raise ManifestError(file, line, path, f"unknown key {name!r}",
                                "known keys here: " + ", ".join(sorted(known)))


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "empty"
    return f"{node.value!r}"


def _string(node: yaml.Node, file: str, key: str) -> str:
    """A scalar as written: `1.0` stays "1.0" and `yes` stays "yes" (quoting it is never needed)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        raise ManifestError(file, _line(node), key, f"must be {_STR}, not {_kind(node)}")
    if any(c in node.value for c in "\n\r\0"):
        raise ManifestError(file, _line(node), key, "must be a single line")
    return node.value


def _integer(node: yaml.Node, file: str, key: str) -> int:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int" \
            or not re.fullmatch(r"[0-9]+", node.value):
        raise ManifestError(file, _line(node), key, f"must be {_INT} (0 or more), not {_kind(node)}")
    return int(node.value)


def _strings(node: yaml.Node, file: str, key: str) -> list[str]:
    if not isinstance(node, yaml.SequenceNode):
        raise ManifestError(file, _line(node), key, f"must be {_LIST}, not {_kind(node)}")
    return [_string(item, file, f"{key}[{i}]") for i, item in enumerate(node.value)]


def _mapping(node: yaml.Node, file: str, key: str) -> dict[str, str]:
    return {name: _string(value, file, f"{key}.{name}") for name, value in _items(node, file, key)}


def _pairs(node: yaml.Node, file: str, key: str, option: str) -> dict[str, str]:
    """tm's KEY=VALUE lists (buildargs, labels), checked as the option they stand for."""
    if not isinstance(node, yaml.SequenceNode):
        raise ManifestError(file, _line(node), key, f"must be {_PAIRS}, not {_kind(node)}")
    result: dict[str, str] = {}
    for i, item in enumerate(node.value):
        text = _string(item, file, f"{key}[{i}]")
        result.update(_checked(lambda t=text: validation.key_values([t], option), item, file, f"{key}[{i}]"))
    return result


def _environment(node: yaml.Node, file: str, key: str) -> dict[str, str]:
    env = _mapping(node, file, key)
    for name, value in env.items():
        _checked(lambda n=name, v=value: validation.key_values([f"{n}={v}"], "--env"), node, file, f"{key}.{name}")
    return env


def _checked(check, node: yaml.Node, file: str, key: str):
    """`check()`'s value; its UsageError located in the manifest."""
    try:
        return check()
    except ManifestError:
        raise
    except UsageError as e:
        raise ManifestError(file, _line(node), key, e.message, e.hint) from None


# -- the manifest's parts -------------------------------------------------------------------

def _provider(node: yaml.Node | None, file: str) -> dict:
    if node is None:
        return {}
    _check_keys(node, PROVIDER_KEYS, file, "provider")
    found: dict = {}
    for name, value in _items(node, file, "provider"):
        key = f"provider.{name}"
        if name == "environment":
            found[name] = _environment(value, file, key)
        elif name == "annotations":
            found[name] = _mapping(value, file, key)
        elif name == "env-secrets":
            found[name] = _strings(value, file, key)
        else:
            found[name] = _string(value, file, key)
        if name == "name" and found[name] not in PROVIDERS:
            raise ManifestError(file, _line(value), key, f"provider {found[name]!r} is not supported",
                                f"use one of: {', '.join(PROVIDERS)}")
        if name == "namespace":
            _checked(lambda v=found[name]: validation.namespace(v), value, file, key)
        if name == "buildtimeout":
            found[name] = _checked(lambda v=found[name]: validation.duration(v), value, file, key)
        if name == "pull-policy" and found[name] not in PULL_POLICIES:
            raise ManifestError(file, _line(value), key, f"{found[name]!r} is not a pull policy",
                                f"use one of: {', '.join(PULL_POLICIES)}")
        if name == "runtime":
            found[name] = _runtime(found[name], value, file, key)
    return found


def _runtime(text: str, node: yaml.Node, file: str, key: str) -> str:
    """A template name or alias; tm's template URLs are taken when they name a runtime fnctl has."""
    if "://" not in text:
        return _checked(lambda: validation.template_name(text), node, file, key)
    parts = [p.removesuffix(".yaml").removesuffix(".yml") for p in urlsplit(text).path.split("/") if p]
    known = {**TM_RUNTIME_FOLDERS, **{n: n for n in templates.builtin()}, **templates.LEGACY_ALIASES}
    for part in reversed(parts):
        if part in known:
            return known[part]
    raise ManifestError(file, _line(node), key, f"the template URL {text} names no runtime fnctl knows",
                        "use a template name instead (`fnctl get buildtemplate` lists them)")


class _Loader:
    """Collects the functions of a manifest and of its includes, in order, each name once."""

    def __init__(self, service: str, provider: dict):
        self.service = service
        self.provider = provider
        self.functions: list[Function] = []
        self._where: dict[str, tuple[str, int]] = {}
        self._files: set[str] = set()

    def add(self, root: yaml.Node, file: str, location: str) -> None:
        self._files.add(location)
        entries = dict(_items(root, file, ""))
        if "description" in entries:
            _string(entries["description"], file, "description")
        if "functions" in entries:
            node = entries["functions"]
            lines = {k.value: _line(k) for k, _ in node.value} if isinstance(node, yaml.MappingNode) else {}
            for name, node in _items(entries["functions"], file, "functions"):
                self._function(name, node, file, location, lines[name])
        if "include" in entries:
            for i, item in enumerate(_strings(entries["include"], file, "include")):
                key, line = f"include[{i}]", _line(entries["include"].value[i])
                target = _resolve_include(item, location, file, line, key)
                if target in self._files:
                    raise ManifestError(file, line, key, f"{item} is included more than once (or includes itself)",
                                        "include each file once")
                text = _read(target, (file, line, key))
                shown = target
                node = _document(text, shown)
                if any(k == "service" for k, _ in _items(node, shown, "")) or \
                        any(k == "provider" for k, _ in _items(node, shown, "")):
                    k = next(k for k, _ in _items(node, shown, "") if k in ("service", "provider"))
                    raise ManifestError(shown, _line(node), k, f"an include has no {k!r} of its own: its functions "
                                        f"join service {self.service!r} of {file}",
                                        "keep only functions (and include) in an included file")
                _check_keys(node, INCLUDE_KEYS, shown, "")
                self.add(node, shown, target)

    def _function(self, name: str, node: yaml.Node, file: str, location: str, line: int) -> None:
        key = f"functions.{name}"
        if name in self._where:
            other, other_line = self._where[name]
            raise ManifestError(file, line, key, f"function {name!r} is already defined in {other}, line {other_line}",
                                "give every function one name, across all included files")
        self._where[name] = (file, line)
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            raise ManifestError(file, line, key, "the function has no source", "add source: FOLDER|FILE|GIT-URL")
        _check_keys(node, FUNCTION_KEYS, file, key)
        fields = dict(_items(node, file, key))
        service_name = f"{self.service}-{name}"
        _checked(lambda: validation.service_name(service_name), node, file, key)
        source_key = "source" if "source" in fields else "handler" if "handler" in fields else None
        if source_key is None:
            raise ManifestError(file, line, key, "the function has no source",
                                "add source: FOLDER|FILE|GIT-URL (`handler` is tm's older name for it)")
        if "source" in fields and "handler" in fields:
            raise ManifestError(file, _line(fields["handler"]), f"{key}.handler",
                                "give either source or handler (its older name), not both")
        source = _string(fields[source_key], file, f"{key}.{source_key}")
        runtime = _runtime(_string(fields["runtime"], file, f"{key}.runtime"), fields["runtime"], file,
                           f"{key}.runtime") if "runtime" in fields else self.provider.get("runtime")
        revision = _checked(lambda: validation.revision(_string(fields["revision"], file, f"{key}.revision")),
                            fields["revision"], file, f"{key}.revision") if "revision" in fields else None
        source, image = self._source(source, runtime, revision, location, fields[source_key], file,
                                     f"{key}.{source_key}")
        if image is None and not runtime:
            raise ManifestError(file, line, key, "the function has no runtime",
                                "add runtime: TEMPLATE to it or to the provider (`fnctl get buildtemplate`)")
        provider = self.provider
        request = DeployRequest(
            name=service_name, source=source, template="" if image else runtime, image=image,
            build_args=_pairs(fields["buildargs"], file, f"{key}.buildargs", "--build-argument")
            if "buildargs" in fields else {},
            env={**provider.get("environment", {}),
                 **(_environment(fields["environment"], file, f"{key}.environment")
                    if "environment" in fields else {})},
            revision=revision,
            env_secrets=list(dict.fromkeys([*provider.get("env-secrets", []),
                                            *(_strings(fields["env-secrets"], file, f"{key}.env-secrets")
                                              if "env-secrets" in fields else [])])),
            labels={**(_pairs(fields["labels"], file, f"{key}.labels", "--label") if "labels" in fields else {}),
                    labels.MANIFEST: self.service},
            annotations={**provider.get("annotations", {}),
                         **(_mapping(fields["annotations"], file, f"{key}.annotations")
                            if "annotations" in fields else {})},
            concurrency=_integer(fields["concurrency"], file, f"{key}.concurrency") if "concurrency" in fields
            else None,
            registry_host=provider.get("registry"), registry_secret=provider.get("registry-secret"))
        if "buildtimeout" in provider:
            request.timeout = provider["buildtimeout"]
        if "description" in fields:
            _string(fields["description"], file, f"{key}.description")
        self.functions.append(Function(name, request, file, line))

    @staticmethod
    def _source(source: str, runtime: str | None, revision: str | None, location: str, node: yaml.Node,
                file: str, key: str) -> tuple[str, str | None]:
        """(source to build, ready-made image): a path is relative to the manifest's folder."""
        if looks_like_git_url(source):
            return source, None
        if revision:
            raise ManifestError(file, _line(node), key, "revision needs a git URL source",
                                "use a git URL such as file:///path/to/repo, or drop revision")
        remote = urlsplit(location).scheme == "https"
        path = Path(source).expanduser()
        if not remote:
            path = path if path.is_absolute() else Path(os.path.normpath(Path(location).resolve().parent / path))
            if path.exists():
                return str(path), None
        if not runtime and (registry.image_reference(source)):
            return "", source
        if remote:
            raise ManifestError(file, _line(node), key, f"source {source!r} is a path in a manifest read from a "
                                "URL", "give a git URL, or an image (with no runtime)")
        raise ManifestError(file, _line(node), key, f"source {source!r} does not exist (paths are relative to "
                            f"{Path(location).resolve().parent})",
                            "give a folder, a file or a git URL, or an image reference with no runtime")


def _resolve_include(item: str, location: str, file: str, line: int, key: str) -> str:
    if urlsplit(item).scheme == "https":
        return item
    if urlsplit(location).scheme == "https":
        if "://" in item or item.startswith("/"):
            raise ManifestError(file, line, key, f"{item}: a manifest read from a URL includes only https URLs "
                                "or paths relative to it")
        return urljoin(location, item)
    if "://" in item:
        raise ManifestError(file, line, key, f"{item}: includes are local files or https URLs")
    path = Path(item).expanduser()
    return str(path if path.is_absolute() else Path(os.path.normpath(Path(location).resolve().parent / path)))
