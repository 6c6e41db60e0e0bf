"""The runtimes' build templates: listing, parameters, rendering (no Docker)."""

from __future__ import annotations

import json
import re

import pytest

from fnctl import config, knative, templates
from fnctl.model import DeployRequest
from tests.conftest import fnctl

NO_MAP = config.Config(images={})
EXPECTED = {
    "bash": {"DIRECTORY", "HANDLER", "EVENT", "BASE_IMAGE", "GO_IMAGE"},
    "node4": {"DIRECTORY", "HANDLER", "EVENT", "CA_BUNDLE", "BASE_IMAGE", "GO_IMAGE"},
    "go": {"DIRECTORY", "EVENT", "GOPROXY", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOSUMDB", "GOFLAGS", "CA_BUNDLE",
           "BASE_IMAGE", "GO_IMAGE"},
    "python": {"DIRECTORY", "HANDLER", "EVENT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "CA_BUNDLE", "BASE_IMAGE",
               "GO_IMAGE"},
    "azure-dotnet": {"DIRECTORY", "PROJECT", "WORKER_MODEL", "BUILD_CONFIGURATION", "DOTNET_SDK_IMAGE",
                     "ISOLATED_IMAGE", "INPROC_IMAGE"},
}


def test_get_buildtemplate_lists_every_runtime_with_parameters():
    r = fnctl("get", "buildtemplate", "-o", "json")
    assert r.code == 0, r
    listed = {t["name"]: t for t in json.loads(r.out)}
    for name, params in EXPECTED.items():
        assert name in listed, f"{name} missing from {sorted(listed)}"
        assert {p["name"] for p in listed[name]["parameters"]} == params
        assert all(p["description"] for p in listed[name]["parameters"])
    node = {p["name"]: p for p in listed["node4"]["parameters"]}
    assert node["HANDLER"]["default"] == "handler.handler"
    assert node["EVENT"]["default"] == ""
    assert node["BASE_IMAGE"] == {**node["BASE_IMAGE"], "default": "node:20-bookworm-slim", "image": True}
    go = {p["name"]: p for p in listed["go"]["parameters"]}
    assert go["BASE_IMAGE"]["default"] == "gcr.io/distroless/static-debian12"
    assert go["GOPROXY"]["default"] == "https://proxy.golang.org,direct"
    py = {p["name"]: p for p in listed["python"]["parameters"]}
    assert py["BASE_IMAGE"]["default"] == "python:3.12-slim-bookworm"
    assert py["HANDLER"]["default"] == "handler.handler"
    az = {p["name"]: p for p in listed["azure-dotnet"]["parameters"]}
    assert az["ISOLATED_IMAGE"]["default"] == "mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated8.0"
    assert az["DOTNET_SDK_IMAGE"]["default"].startswith("mcr.microsoft.com/dotnet/sdk:")
    assert az["WORKER_MODEL"]["default"] == "isolated"


@pytest.mark.parametrize("alias,name", [("knative-node4-runtime", "node4"), ("knative-go-runtime", "go"),
                                        ("python3", "python"), ("nodejs", "node4")])
def test_aliases(alias, name):
    assert templates.find(alias).name == name


@pytest.mark.parametrize("name", ["node4", "go", "python"])
def test_lambda_templates_use_the_bridge_and_bake_event_into_the_image(name):
    t = templates.find(name)
    assert t.runtime_image is not None
    values = t.resolve({"EVENT": "API_GATEWAY"}, cfg=NO_MAP)
    rendered = t.render(values, runtime_image="runtime:1")
    assert 'ARG EVENT="API_GATEWAY"' in rendered
    assert re.search(r"^ENV .*EVENT=\$\{EVENT\}", rendered, re.M)
    context = t.runtime_context(values)
    assert "bridge/main.go" in context.files
    assert 'ENTRYPOINT ["/opt/fnctl/bridge"]' in context.read("Dockerfile").decode()


@pytest.mark.parametrize("name", ["bash", "node4", "go", "python"])
def test_the_bridge_stage_is_fnctls_and_the_runtime_folder_holds_only_the_language(name):
    folder = config.templates_dir() / name
    own = (folder / "runtime.Dockerfile").read_text()
    assert "bridge" not in own.replace("fnctl adds the bridge", "")
    assert "GO_IMAGE" not in (folder / "template.yaml").read_text() or name == "go"
    t = templates.find(name)
    rendered = t.runtime_context(t.resolve({}, cfg=NO_MAP)).read("Dockerfile").decode()
    assert rendered.count(" AS fnctl-bridge") == 1 and rendered.count("ENTRYPOINT") == 1
    assert 'ARG GO_IMAGE="golang:1.23-bookworm"' in rendered
    assert rendered.index("AS fnctl-bridge") < rendered.index("FROM ${BASE_IMAGE}") \
        < rendered.index("COPY --from=fnctl-bridge")
    # GO_IMAGE stays a parameter of each, as before, so --build-argument GO_IMAGE=... still works.
    assert t.parameter("GO_IMAGE").image and "GO_IMAGE" in t.runtime_image.parameters


def test_single_file_names_the_handler_module():
    t = templates.find("node4")
    assert t.resolve({}, source_file="landing.js", cfg=NO_MAP)["HANDLER"] == "landing.handler"
    assert templates.find("python").resolve({}, source_file="app.py", cfg=NO_MAP)["HANDLER"] == "app.handler"


def test_go_runtime_final_stages_have_no_run():
    """distroless has no shell: neither the runtime image nor the function's last stage may RUN."""
    t = templates.find("go")
    final_runtime = t.runtime_image.dockerfile.split("\nFROM ")[-1]
    final_function = t.dockerfile.split("\nFROM ")[-1]
    for stage in (final_runtime, final_function):
        assert not re.search(r"^RUN\b", stage, re.M), stage
    assert "COPY --from=build /out/bootstrap /var/runtime/bootstrap" in final_function
    assert "CGO_ENABLED=0" in t.dockerfile
    assert "go mod init" in t.dockerfile and "-mod=vendor" in t.dockerfile


def test_image_map_applies_to_base_images():
    cfg = config.Config(images={"node:20-bookworm-slim": "fnctl-local/node:bookworm"})
    values = templates.find("node4").resolve({}, cfg=cfg)
    assert values["BASE_IMAGE"] == "fnctl-local/node:bookworm"
    given = templates.find("node4").resolve({"BASE_IMAGE": "node:22-slim"}, cfg=cfg)
    assert given["BASE_IMAGE"] == "node:22-slim"


def test_azure_dotnet_renders_the_functions_container_convention():
    t = templates.find("azure-dotnet")
    assert t.runtime_image is None                     # no bridge
    values = t.resolve({}, cfg=NO_MAP)
    rendered = t.render(values)
    assert 'ARG DOTNET_SDK_IMAGE="mcr.microsoft.com/dotnet/sdk:8.0"' in rendered
    assert 'ARG ISOLATED_IMAGE="mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated8.0"' in rendered
    assert 'ARG WORKER_MODEL="isolated"' in rendered
    assert "FROM ${DOTNET_SDK_IMAGE} AS build" in rendered
    assert "dotnet publish" in rendered and "-o /home/site/wwwroot" in rendered
    assert "FROM host-${WORKER_MODEL}" in rendered
    assert "AzureWebJobsScriptRoot=/home/site/wwwroot" in rendered
    assert "AzureFunctionsJobHost__Logging__Console__IsEnabled=true" in rendered
    assert "FUNCTIONS_INPROC_NET8_ENABLED=1" in rendered
    # The host follows $PORT: ASPNETCORE_URLS is made from it when the container starts.
    assert 'ASPNETCORE_URLS=\\"http://+:${PORT:-8080}\\"' in rendered
    assert "PORT=8080" in rendered and "EXPOSE 8080" in rendered
    # The in-process model is the other stage.
    inproc = t.resolve({"WORKER_MODEL": "in-process"}, cfg=NO_MAP)
    assert 'ARG WORKER_MODEL="in-process"' in t.render(inproc)


def test_a_knative_service_gives_the_azure_container_its_port():
    """Knative sets PORT from the single containerPort; the image listens there."""
    request = DeployRequest(name="hello-azure", source="examples/azure-dotnet", template="azure-dotnet")
    manifest = knative.service_manifest(request, "default", "registry/hello-azure@sha256:" + "0" * 64,
                                        template="azure-dotnet", source="examples/azure-dotnet")
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
    assert not any(e["name"] == "PORT" for e in container.get("env", []))   # reserved: Knative sets it
    rendered = templates.find("azure-dotnet").dockerfile
    assert "${PORT:-8080}" in rendered


def test_unknown_parameter_is_refused():
    with pytest.raises(Exception, match="has no parameter 'HANDLER'"):
        templates.find("go").resolve({"HANDLER": "x.y"}, cfg=NO_MAP)
