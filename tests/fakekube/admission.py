"""What the API server (and Knative's webhooks) do to an object before it is stored:
defaulting, name validation, per-kind validation, ServiceAccount admission."""
from __future__ import annotations

import random
import re
import string

from . import schema as crd_schema
from .errors import ApiError, forbidden, invalid

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '" + DNS1123_SUBDOMAIN + "')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '"
             + DNS1123_LABEL + "')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
               "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
               "validation is '" + DNS1035_LABEL + "')")

KNATIVE_WEBHOOK = "validation.webhook.serving.knative.dev"
USER = "fake"


def rand_suffix(n=5) -> str:
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


def name_errors(name: str, label: bool) -> list[dict]:
    causes = []
    limit = 63 if label else 253
    if len(name) > limit:
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                       "message": f'Invalid value: "{name}": must be no more than {limit} characters'})
    pattern = DNS1123_LABEL if label else DNS1123_SUBDOMAIN
    if not re.fullmatch(pattern, name):
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                       "message": f'Invalid value: "{name}": ' + (LABEL_MSG if label else SUBDOMAIN_MSG)})
    return causes


def webhook_denied(message: str) -> ApiError:
    # Knative's webhook denies without a code; the API server turns that into 400.
    return ApiError(400, "BadRequest", f'admission webhook "{KNATIVE_WEBHOOK}" denied the request: '
                    f"validation failed: {message}")


# ---------------------------------------------------------------- validation of metadata

def validate_metadata(rt, obj: dict, old: dict | None):
    md = obj.get("metadata") or {}
    name = md.get("name") or ""
    causes = []
    if not name:
        causes.append({"reason": "FieldValueRequired", "field": "metadata.name",
                       "message": "Required value: name or generateName is required"})
    else:
        causes += name_errors(name, label=(rt.plural == "namespaces"))
    for field in ("labels", "annotations"):
        val = md.get(field)
        if val is not None and not isinstance(val, dict):
            causes.append({"reason": "FieldValueTypeInvalid", "field": f"metadata.{field}",
                           "message": "Invalid value: must be a map of strings"})
            continue
        for k, v in (val or {}).items():
            if not isinstance(v, str):
                causes.append({"reason": "FieldValueTypeInvalid", "field": f"metadata.{field}",
                               "message": f"Invalid value: {k}: must be a string"})
            elif field == "labels":
                if len(v) > 63 or (v and not re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", v)):
                    causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels",
                                   "message": f'Invalid value: "{v}": a valid label must be an empty string or '
                                   "consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                                   "with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                                   "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"})
    if causes:
        raise invalid(rt, name, causes)


# ---------------------------------------------------------------- pods

def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def default_pod(obj: dict, store, ns: str):
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = sa
    spec["serviceAccount"] = sa
    spec.setdefault("tolerations", [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
    ])
    vols = spec.setdefault("volumes", [])
    for v in vols:
        if isinstance(v, dict):
            if "configMap" in v and isinstance(v["configMap"], dict):
                v["configMap"].setdefault("defaultMode", 420)
            if "secret" in v and isinstance(v["secret"], dict):
                v["secret"].setdefault("defaultMode", 420)
    token_vol = None
    if spec.get("automountServiceAccountToken") is not False and not any(
            isinstance(v, dict) and str(v.get("name", "")).startswith("kube-api-access-") for v in vols):
        token_vol = "kube-api-access-" + rand_suffix()
        vols.append({"name": token_vol, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                        "path": "namespace"}]}}]}})
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            if isinstance(c.get("image"), str) and c.get("image"):
                c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
            if token_vol:
                c.setdefault("volumeMounts", []).append(
                    {"name": token_vol, "readOnly": True,
                     "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})


def validate_pod(rt, obj: dict):
    name = obj["metadata"]["name"]
    spec = obj.get("spec") or {}
    causes = []
    if not spec.get("containers"):
        causes.append({"reason": "FieldValueRequired", "field": "spec.containers", "message": "Required value"})
    vol_names = set()
    for i, v in enumerate(spec.get("volumes") or []):
        vn = v.get("name") if isinstance(v, dict) else None
        if not vn:
            causes.append({"reason": "FieldValueRequired", "field": f"spec.volumes[{i}].name",
                           "message": "Required value"})
        elif vn in vol_names:
            causes.append({"reason": "FieldValueDuplicate", "field": f"spec.volumes[{i}].name",
                           "message": f'Duplicate value: "{vn}"'})
        vol_names.add(vn)
    seen = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            f = f"spec.{key}[{i}]"
            if not isinstance(c, dict):
                causes.append({"reason": "FieldValueTypeInvalid", "field": f, "message": "Invalid value"})
                continue
            cn = c.get("name")
            if not cn:
                causes.append({"reason": "FieldValueRequired", "field": f + ".name", "message": "Required value"})
            elif not re.fullmatch(DNS1123_LABEL, cn) or len(cn) > 63:
                causes.append({"reason": "FieldValueInvalid", "field": f + ".name",
                               "message": f'Invalid value: "{cn}": ' + LABEL_MSG})
            elif cn in seen:
                causes.append({"reason": "FieldValueDuplicate", "field": f + ".name",
                               "message": f'Duplicate value: "{cn}"'})
            seen.add(cn)
            if not c.get("image"):
                causes.append({"reason": "FieldValueRequired", "field": f + ".image", "message": "Required value"})
            for j, m in enumerate(c.get("volumeMounts") or []):
                if m.get("name") not in vol_names:
                    causes.append({"reason": "FieldValueNotFound", "field": f"{f}.volumeMounts[{j}].name",
                                   "message": f'Not found: "{m.get("name")}"'})
                if not m.get("mountPath"):
                    causes.append({"reason": "FieldValueRequired", "field": f"{f}.volumeMounts[{j}].mountPath",
                                   "message": "Required value"})
            for field in ("command", "args"):
                val = c.get(field)
                if val is not None and (not isinstance(val, list) or not all(isinstance(x, str) for x in val)):
                    causes.append({"reason": "FieldValueTypeInvalid", "field": f"{f}.{field}",
                                   "message": "Invalid value: must be a list of strings"})
    rp = spec.get("restartPolicy")
    if rp not in ("Always", "OnFailure", "Never"):
        causes.append({"reason": "FieldValueNotSupported", "field": "spec.restartPolicy",
                       "message": f'Unsupported value: "{rp}": supported values: "Always", "OnFailure", "Never"'})
    if causes:
        raise invalid(rt, name, causes)


POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def validate_pod_update(rt, new: dict, old: dict):
    a, b = dict(new.get("spec") or {}), dict(old.get("spec") or {})
    for s in (a, b):
        for k in POD_MUTABLE:
            s.pop(k, None)
        for key in ("containers", "initContainers"):
            s[key] = [{k: v for k, v in c.items() if k != "image"} for c in s.get(key) or []]
    if a != b:
        raise invalid(rt, new["metadata"]["name"], [{
            "reason": "FieldValueForbidden", "field": "spec",
            "message": "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                       "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                       "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                       "(allow it to be set to 1 if it was previously negative)"}])


def pod_admission(obj: dict, store, ns: str):
    sa = obj["spec"]["serviceAccountName"]
    if store.raw_get("serviceaccounts", ns, sa) is None:
        raise forbidden(f'pods "{obj["metadata"].get("name")}" is forbidden: error looking up service account '
                        f'{ns}/{sa}: serviceaccount "{sa}" not found', obj["metadata"].get("name"),
                        _rt("pods"))


def initial_pod_status(obj: dict) -> dict:
    qos = "BestEffort"
    for c in obj["spec"].get("containers") or []:
        res = c.get("resources") or {}
        if res.get("requests") or res.get("limits"):
            qos = "Burstable"
    return {"phase": "Pending", "qosClass": qos}


def _rt(plural):
    from .resources import resolve
    return resolve(plural)


# ---------------------------------------------------------------- knative (webhook + CRD schema)

def default_knative(rt, obj: dict, old: dict | None):
    md = obj.setdefault("metadata", {})
    ann = md.get("annotations")
    if rt.plural in ("services", "configurations", "routes"):
        ann = md.setdefault("annotations", {})
        if old is None:
            ann.setdefault("serving.knative.dev/creator", USER)
            ann.setdefault("serving.knative.dev/lastModifier", USER)
        else:
            oldann = (old.get("metadata") or {}).get("annotations") or {}
            if "serving.knative.dev/creator" in oldann:
                ann["serving.knative.dev/creator"] = oldann["serving.knative.dev/creator"]
            if obj.get("spec") != old.get("spec"):
                ann["serving.knative.dev/lastModifier"] = USER
            elif "serving.knative.dev/lastModifier" in oldann:
                ann.setdefault("serving.knative.dev/lastModifier", oldann["serving.knative.dev/lastModifier"])
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if rt.plural in ("services", "configurations"):
        tmpl = spec.get("template")
        if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
            default_revision_spec(tmpl["spec"])
    if rt.plural == "revisions":
        default_revision_spec(spec)
    if rt.plural in ("services", "routes"):
        if "traffic" not in spec:
            spec["traffic"] = [{"latestRevision": True, "percent": 100}]
        else:
            for t in spec.get("traffic") or []:
                if isinstance(t, dict) and "latestRevision" not in t:
                    t["latestRevision"] = not t.get("revisionName")


def default_revision_spec(rs: dict):
    rs.setdefault("containerConcurrency", 0)
    rs.setdefault("timeoutSeconds", 300)
    rs.setdefault("enableServiceLinks", False)
    containers = rs.get("containers")
    if isinstance(containers, list):
        for i, c in enumerate(containers):
            if not isinstance(c, dict):
                continue
            if not c.get("name"):
                c["name"] = "user-container" if len(containers) == 1 else f"user-container-{i}"
            c.setdefault("resources", {})
            if i == 0 or c.get("ports"):
                c.setdefault("readinessProbe", {"successThreshold": 1, "tcpSocket": {"port": 0}})


def knative_schema(rt, obj: dict, field_validation: str | None) -> list[str]:
    """Prune/default/validate against the CRD schema. Returns warnings."""
    sch = crd_schema.load_crd_schema(rt.crd_file)
    if sch is None:
        return []
    unknown = crd_schema.prune_and_default(sch, obj)
    name = obj["metadata"].get("name", "")
    if unknown and (field_validation or "").lower() == "strict":
        raise ApiError(400, "BadRequest", "strict decoding error: " +
                       ", ".join(f'unknown field "{u}"' for u in unknown))
    causes = crd_schema.validate(rt.crd_file, obj)
    mistyped = [c for c in causes if c["reason"] == "FieldValueTypeInvalid"]
    if mistyped:
        # Knative's mutating webhook decodes the object into its Go types before the API server applies
        # the CRD schema, so a wrongly typed field is its 400, not the schema's 422 (seen on the real
        # API server: tests/apicontract; knative/pkg webhook/resourcesemantics/defaulting).
        got = mistyped[0]["message"].split('"')[1]
        raise ApiError(400, "BadRequest", f'admission webhook "webhook.serving.knative.dev" denied the request: '
                       f"mutation failed: cannot decode incoming new object: json: cannot unmarshal "
                       f"{_GO_JSON.get(got, got)} into Go struct field {mistyped[0]['field']} of type string")
    if causes:
        raise invalid(rt, name, causes)
    return [f'unknown field "{u}"' for u in unknown]


_GO_JSON = {"integer": "number", "boolean": "bool"}   # encoding/json's words for JSON types


AUTOSCALING_GROUP = "autoscaling.knative.dev"


def _autoscaling_annotations_misplaced(rt, obj: dict) -> str | None:
    """Knative keeps autoscaling annotations off Services and Configurations: they only work on the
    revision template. serving.ValidateObjectMetadata(ctx, meta, allowAutoscalingAnnotations=false) in
    knative/serving pkg/apis/serving/metadata_validation.go (called from Service.Validate in
    pkg/apis/serving/v1/service_validation.go), one apis.ErrInvalidKeyName per key, each rendered by
    knative.dev/pkg apis.FieldError.Error() as "<message>: <path>\n<details>"."""
    if rt.plural not in ("services", "configurations"):
        return None
    keys = sorted(k for k in (obj["metadata"].get("annotations") or {}) if k.startswith(AUTOSCALING_GROUP))
    return "\n".join(f'invalid key name "{k}": metadata.annotations\nautoscaling annotations must be put under '
                     '"spec.template.metadata.annotations" to work' for k in keys) or None


def knative_webhook_validate(rt, obj: dict, old: dict | None):
    name = obj["metadata"].get("name", "")
    misplaced = _autoscaling_annotations_misplaced(rt, obj)
    if misplaced:
        raise webhook_denied(misplaced)
    if rt.plural == "services" or rt.plural == "configurations" or rt.plural == "routes":
        if len(name) > 63:
            raise webhook_denied("not a DNS 1035 label: [must be no more than 63 characters]: metadata.name")
        if not re.fullmatch(DNS1035_LABEL, name):
            raise webhook_denied(f"not a DNS 1035 label: [{DNS1035_MSG}]: metadata.name")
    spec = obj.get("spec") or {}
    if rt.plural in ("services", "configurations"):
        tmpl = spec.get("template") or {}
        rs = tmpl.get("spec") or {}
        containers = rs.get("containers") or []
        if not containers:
            raise webhook_denied("missing field(s): spec.template.spec.containers")
        for i, c in enumerate(containers):
            if not c.get("image"):
                raise webhook_denied(f"missing field(s): spec.template.spec.containers[{i}].image")
        tname = (tmpl.get("metadata") or {}).get("name")
        if tname and not tname.startswith(name + "-"):
            raise webhook_denied(f'not "{name}-*": spec.template.metadata.name')
        if old is not None and tname and tname == ((old.get("spec") or {}).get("template") or {}).get(
                "metadata", {}).get("name") and (old.get("spec") or {}).get("template") != tmpl:
            raise webhook_denied('Saw the following changes without a name change (-old +new): '
                                 'spec.template.metadata.name')
    if rt.plural in ("services", "routes"):
        traffic = spec.get("traffic") or []
        total = sum(int(t.get("percent") or 0) for t in traffic if isinstance(t, dict))
        if traffic and total != 100:
            raise webhook_denied(f"Traffic targets sum to {total}, want 100: spec.traffic")


__all__ = [n for n in dir() if not n.startswith("_")] + ["string"]
