"""Every label and annotation key fnctl writes: on local containers and images, and on the
cluster's Services, build pods and ConfigMaps. Other tools (docker ps --filter, kubectl -l)
select by these, so they are a contract: change none of them lightly.
"""

from __future__ import annotations

MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = {MANAGED_BY_KEY: "fnctl"}
SERVICE = "fnctl.dev/service"                 # the function service an object belongs to
MANIFEST = "fnctl.dev/manifest-service"       # the serverless.yaml `service` a function service came from

# What a service was made from: Knative Service annotations, local container labels.
TEMPLATE = "fnctl.dev/template"
SOURCE = "fnctl.dev/source"                   # the source as given, with @commit for git
CONTEXT = "fnctl.dev/context"                 # digest of the function's build context
BUILD_ARGS = "fnctl.dev/build-args"           # the --build-argument values given, as JSON (never secret ones)

# The local target keeps a service's whole state on its containers.
PORT = "fnctl.dev/port"
GENERATION = "fnctl.dev/generation"
REVISION = "fnctl.dev/revision"
CREATED = "fnctl.dev/created"
FINGERPRINT = "fnctl.dev/fingerprint"          # image + environment: unchanged means nothing to do
ENV_NAMES = "fnctl.dev/env-names"              # the --env names, as JSON (values stay in the container)
ENV = "fnctl.dev/env"                          # the --env values, on revisions made before env-names
BRIDGE = "fnctl.dev/bridge"                    # "true" when the runtime bridge serves it
URL = "fnctl.dev/url"
GATEWAY = "fnctl.dev/gateway"                  # on a local service's gateway container: the service
RUNTIME = "fnctl.dev/runtime"                  # on runtime images: the template they are for

# Build pods in the cluster and their ConfigMaps.
BUILD = "fnctl.dev/build"
BUILD_KIND = "fnctl.dev/build-kind"            # function or runtime
DESTINATION = "fnctl.dev/destination"
CONTEXT_DIGEST = "fnctl.dev/context-digest"

# Build templates stored in a cluster namespace.
BUILDTEMPLATE = "fnctl.dev/buildtemplate"
TEMPLATE_PATHS = "fnctl.dev/paths"             # ConfigMap key -> file path, where they differ


def service_selector(name: str) -> str:
    """The label selector of everything fnctl made for service `name` in a cluster."""
    return f"{MANAGED_BY_KEY}=fnctl,{SERVICE}={name}"
