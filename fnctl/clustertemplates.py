"""Build templates stored in a cluster namespace: one ConfigMap per template.

    store = ClusterTemplates(cluster)
    store.store("path/or/https://.../template.yaml")   # validated, then created or replaced
    store.list()                                       # {name: BuildTemplate}, origin cluster:<namespace>
    store.delete(name, force=False)

A ConfigMap fnctl-buildtemplate-NAME (label fnctl.dev/buildtemplate=NAME) holds
template.yaml and the files beside it; keys a ConfigMap cannot hold are renamed,
and the fnctl.dev/paths annotation maps them back.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import yaml

from fnctl import labels, templates, validation
from fnctl.cluster import Cluster
from fnctl.errors import NotFoundError, TemplateError, UsageError
from fnctl.kube.client import CONFIGMAPS
from fnctl.kube.errors import Forbidden
from fnctl.model import Reporter
from fnctl.redact import redact

TEMPLATE_PREFIX = "fnctl-buildtemplate-"
TEMPLATE_LIMIT = 900 * 1024
_CM_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class ClusterTemplates:
    """The build templates of the cluster's namespace."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    def list(self) -> dict[str, templates.BuildTemplate]:
        """The namespace's build templates (origin cluster:<namespace>), by name."""
        kube = self.cluster.kube
        found = {}
        for cm in kube.list(CONFIGMAPS, label_selector=labels.BUILDTEMPLATE).get("items") or []:
            try:
                t = template_from_configmap(cm, kube.namespace)
            except TemplateError:
                continue        # a broken one must not break every deploy; `describe` shows it
            found[t.name] = t
        return found

    def for_deploy(self, reporter: Reporter) -> dict[str, templates.BuildTemplate]:
        """The namespace's templates for a deploy: none (with a note) when RBAC forbids listing them."""
        try:
            return self.list()
        except Forbidden:
            reporter.note("cannot list the namespace's build templates (RBAC); using the built-in ones")
            return {}

    def store(self, file_or_url: str) -> templates.BuildTemplate:
        """Store a template (folder, template.yaml file, or https URL of a template.yaml) in the namespace."""
        kube = self.cluster.kube
        text, files = read_template_source(file_or_url)
        cm = template_configmap(text, files, kube.namespace)
        template = template_from_configmap(cm, kube.namespace)
        current = kube.get(CONFIGMAPS, cm["metadata"]["name"])
        if current is None:
            kube.create(CONFIGMAPS, cm)
        else:
            cm["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            kube.replace(CONFIGMAPS, cm)
        return template

    def delete(self, name: str, force: bool = False) -> None:
        validation.template_name(name)
        if not self.cluster.delete_ours(CONFIGMAPS, TEMPLATE_PREFIX + name, f"build template {name!r}", force):
            raise NotFoundError(f"build template {name!r} not found in namespace {self.cluster.kube.namespace}",
                                "`fnctl get buildtemplate` lists them")


def read_template_source(file_or_url: str) -> tuple[str, dict[str, bytes]]:
    """(template.yaml text, the files beside it) from a folder, a template.yaml, or an https URL."""
    if file_or_url.startswith(("http://", "https://")):
        from fnctl import download

        data = download.fetch(file_or_url, TEMPLATE_LIMIT)      # one byte over: template_configmap says so
        try:
            return data.decode(), {}
        except UnicodeDecodeError:
            raise TemplateError(f"{redact(file_or_url)} is not a text file",
                                "give the URL of a template.yaml") from None
    path = Path(file_or_url).expanduser()
    if path.is_file():
        folder = path.parent
        main = path
    elif path.is_dir():
        folder = path
        main = path / "template.yaml"
        if not main.is_file():
            raise TemplateError(f"{path} has no template.yaml", "a template folder needs template.yaml")
    else:
        raise UsageError(f"build template {file_or_url!r} does not exist",
                         "give a template folder, its template.yaml, or an https URL")
    files = {p.relative_to(folder).as_posix(): p.read_bytes()
             for p in sorted(folder.rglob("*"))
             if p.is_file() and p != main and "__pycache__" not in p.parts and ".git" not in p.parts}
    return main.read_text(), files


def template_configmap(text: str, files: dict[str, bytes], namespace: str) -> dict:
    """The ConfigMap holding a template: data template.yaml plus its files (binary ones in binaryData)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TemplateError(f"the template is not valid YAML: {e}", "fix template.yaml") from None
    # Validate before storing anything.
    parsed = templates.parse(document, {**files, "template.yaml": text.encode()}, f"cluster:{namespace}")
    data = {"template.yaml": text}
    binary: dict[str, str] = {}
    paths: dict[str, str] = {}
    for i, (path, content) in enumerate(sorted(files.items())):
        key = path if _CM_KEY.match(path) and path not in ("template.yaml",) else f"file-{i}"
        if key != path:
            paths[key] = path
        try:
            data[key] = content.decode()
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(content).decode()
    size = len(text) + sum(len(c) for c in files.values())
    if size > TEMPLATE_LIMIT:
        raise TemplateError(f"build template {parsed.name!r} is {size // 1024} KiB; a cluster template must "
                            f"stay under {TEMPLATE_LIMIT // 1024} KiB", "leave large files out of its folder")
    meta: dict = {"name": TEMPLATE_PREFIX + parsed.name, "namespace": namespace,
                  "labels": {**labels.MANAGED_BY, labels.BUILDTEMPLATE: parsed.name}}
    if paths:
        meta["annotations"] = {labels.TEMPLATE_PATHS: json.dumps(paths, sort_keys=True)}
    cm: dict = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
    if binary:
        cm["binaryData"] = binary
    return cm


def template_from_configmap(cm: dict, namespace: str) -> templates.BuildTemplate:

    meta = cm.get("metadata") or {}
    origin = f"cluster:{namespace}"
    data = dict(cm.get("data") or {})
    text = data.pop("template.yaml", None)
    if text is None:
        raise TemplateError(f"ConfigMap {meta.get('name')} holds no template.yaml", "deploy the template again")
    try:
        paths = json.loads((meta.get("annotations") or {}).get(labels.TEMPLATE_PATHS) or "{}")
    except ValueError:
        paths = {}
    files = {paths.get(k, k): v.encode() for k, v in data.items()}
    files.update({paths.get(k, k): base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TemplateError(f"{origin}: template {meta.get('name')} is not valid YAML: {e}",
                            "deploy the template again") from None
    files["template.yaml"] = text.encode()
    return templates.parse(document, files, origin)
