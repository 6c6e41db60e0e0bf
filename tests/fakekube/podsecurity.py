"""PodSecurity admission, as the API server's built-in plugin enforces a namespace's level.

The namespace label pod-security.kubernetes.io/enforce (privileged, baseline, restricted; version
from .../enforce-version, default latest) decides. A refused pod gets the plugin's answer:
403 Forbidden, `pods "NAME" is forbidden: violates PodSecurity "restricted:latest": <reason> (<detail>), ...`
(k8s.io/pod-security-admission admission/admission.go and policy/checks.go: baseline checks first,
then restricted ones, each sorted by check ID; a restricted check replaces the baseline check it
overrides). The checks here are those a build pod can meet; their wording is the policy/check_*.go files'.
"""
from __future__ import annotations

from .errors import forbidden

ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def _containers(spec: dict) -> list[dict]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []]


def _quote(names) -> str:
    return '"' + '", "'.join(names) + '"'


def _which(names: list[str]) -> str:
    return f'{"container" if len(names) == 1 else "containers"} {_quote(names)}'


def _sc(c: dict) -> dict:
    return c.get("securityContext") or {}


def _privileged(spec):
    bad = [c["name"] for c in _containers(spec) if _sc(c).get("privileged")]
    return bad and ("privileged", f"{_which(bad)} must not set securityContext.privileged=true")


def _capabilities_baseline(spec):
    bad, caps = [], set()
    for c in _containers(spec):
        extra = {str(x) for x in (_sc(c).get("capabilities") or {}).get("add") or []} - BASELINE_CAPABILITIES
        if extra:
            bad.append(c["name"])
            caps |= extra
    return bad and ("non-default capabilities",
                    f"{_which(bad)} must not include {_quote(sorted(caps))} in securityContext.capabilities.add")


def _allow_privilege_escalation(spec):
    bad = [c["name"] for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    return bad and ("allowPrivilegeEscalation != false",
                    f"{_which(bad)} must set securityContext.allowPrivilegeEscalation=false")


def _capabilities_restricted(spec):
    missing, adding, caps = [], [], set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            missing.append(c["name"])
        extra = {str(x) for x in capabilities.get("add") or []} - {"NET_BIND_SERVICE"}
        if extra:
            adding.append(c["name"])
            caps |= extra
    details = []
    if missing:
        details.append(f'{_which(missing)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_which(adding)} must not include {_quote(sorted(caps))} in securityContext.capabilities.add")
    return details and ("unrestricted capabilities", "; ".join(details))


def _run_as_non_root(spec):
    pod = (spec.get("securityContext") or {}).get("runAsNonRoot")
    setters = ["pod"] if pod is False else []
    explicit = [c["name"] for c in _containers(spec) if _sc(c).get("runAsNonRoot") is False]
    implicit = [c["name"] for c in _containers(spec) if _sc(c).get("runAsNonRoot") is None and pod is not True]
    if explicit:
        setters.append(_which(explicit))
    if setters:
        return "runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
    return implicit and ("runAsNonRoot != true",
                         f"pod or {_which(implicit)} must set securityContext.runAsNonRoot=true")


def _run_as_user(spec):
    setters = ["pod"] if (spec.get("securityContext") or {}).get("runAsUser") == 0 else []
    explicit = [c["name"] for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if explicit:
        setters.append(_which(explicit))
    return setters and ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


def _seccomp_restricted(spec):
    valid = ("RuntimeDefault", "Localhost")
    pod = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    setters, values = [], set()
    if pod is not None and pod not in valid:
        setters.append("pod")
        values.add(pod)
    explicit, implicit = [], []
    for c in _containers(spec):
        kind = (_sc(c).get("seccompProfile") or {}).get("type")
        if kind is not None and kind not in valid:
            explicit.append(c["name"])
            values.add(kind)
        elif kind is None and pod not in valid:
            implicit.append(c["name"])
    if explicit:
        setters.append(_which(explicit))
    if setters:
        return "seccompProfile", (f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                                  f"{_quote(sorted(values))}")
    return implicit and ("seccompProfile", f'pod or {_which(implicit)} must set securityContext.seccompProfile.type '
                                           'to "RuntimeDefault" or "Localhost"')


# (check ID, check, level, the baseline check it overrides)
CHECKS = [
    ("capabilities_baseline", _capabilities_baseline, "baseline", None),
    ("privileged", _privileged, "baseline", None),
    ("allowPrivilegeEscalation", _allow_privilege_escalation, "restricted", None),
    ("capabilities_restricted", _capabilities_restricted, "restricted", "capabilities_baseline"),
    ("runAsNonRoot", _run_as_non_root, "restricted", None),
    ("runAsUser", _run_as_user, "restricted", None),
    ("seccompProfile_restricted", _seccomp_restricted, "restricted", None),
]


def violations(spec: dict, level: str) -> list[tuple[str, str]]:
    if level not in ("baseline", "restricted"):
        return []
    levels = ("baseline",) if level == "baseline" else ("baseline", "restricted")
    active = [c for c in CHECKS if c[2] in levels]
    overridden = {c[3] for c in active if c[3]} if level == "restricted" else set()
    return [found for cid, check, _, _ in active if cid not in overridden and (found := check(spec))]


def admit(obj: dict, store, ns: str):
    """Refuse the pod as PodSecurity admission does when it violates its namespace's enforce level."""
    namespace = store.raw_get("namespaces", "", ns) or {}
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    level = labels.get(ENFORCE)
    found = violations(obj.get("spec") or {}, level or "")
    if not found:
        return
    policy = f"{level}:{labels.get(ENFORCE_VERSION) or 'latest'}"
    name = obj["metadata"].get("name")
    detail = ", ".join(f"{reason} ({text})" if text else reason for reason, text in found)
    from .resources import resolve
    raise forbidden(f'pods "{name}" is forbidden: violates PodSecurity "{policy}": {detail}', name, resolve("pods"))
