import gzip
import io
import tarfile

import pytest

from fnctl import config, templates
from fnctl.errors import TemplateError


def test_legacy_tm_names_are_aliases():
    assert templates.find("aws-custom-runtime").name == "bash"


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(TemplateError) as e:
        templates.find("cobol")
    assert "unknown build template 'cobol'" in e.value.message
    assert "bash" in e.value.hint


def test_undeclared_parameter_is_refused_with_the_declared_ones():
    with pytest.raises(TemplateError) as e:
        templates.find("bash").resolve({"HANDLR": "x.y"})
    assert "no parameter 'HANDLR'" in e.value.message
    assert "HANDLER" in e.value.hint and "DIRECTORY" in e.value.hint


def test_single_file_names_the_handler_module():
    values = templates.find("bash").resolve({}, source_file="hello.sh")
    assert values["HANDLER"] == "hello.handler"
    assert templates.find("bash").resolve({"HANDLER": "a.b"}, source_file="hello.sh")["HANDLER"] == "a.b"


def test_image_map_replaces_public_base_images():
    cfg = config.Config(images={"buildpack-deps:bookworm-curl": "mirror/curl:1"})
    values = templates.find("bash").resolve({}, cfg=cfg)
    assert values["BASE_IMAGE"] == "mirror/curl:1"
    assert templates.find("bash").resolve({"BASE_IMAGE": "mine:2"}, cfg=cfg)["BASE_IMAGE"] == "mine:2"


def test_render_sets_values_as_global_args_without_blanking_them():
    t = templates.find("bash")
    text = t.render({**t.resolve({}), "HANDLER": 'we"ird'}, runtime_image="rt:1")
    assert 'ARG HANDLER="we\\"ird"' in text
    assert 'ARG RUNTIME_IMAGE="rt:1"' in text
    before_from = text.split("\nFROM ")[0]
    assert "\nARG RUNTIME_IMAGE\n" not in before_from        # a bare ARG here would reset it
    assert "FROM ${RUNTIME_IMAGE}" in text


def test_runtime_context_carries_bridge_sources_and_bootstrap():
    t = templates.find("bash")
    ctx = t.runtime_context(t.resolve({}))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(ctx.data))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "Dockerfile" in members and "bootstrap" in members and "bridge/go.mod" in members
    assert members["bootstrap"].mode == 0o755
    assert not any(n.endswith("_test.go") for n in members)
    # Shaped only by the parameters it declares: a new HANDLER keeps the same runtime image.
    assert t.runtime_context(t.resolve({"HANDLER": "x.y"})).digest == ctx.digest


def test_parse_rejects_bad_documents():
    with pytest.raises(TemplateError, match="lowercase DNS label"):
        templates.parse({"name": "Bad Name", "dockerfileInline": "FROM x"}, {}, "t")
    with pytest.raises(TemplateError, match="not a file beside"):
        templates.parse({"name": "ok", "dockerfile": "Missing"}, {}, "t")
    t = templates.parse({"name": "ok", "dockerfileInline": "FROM scratch\n",
                         "parameters": [{"name": "X", "default": 1}]}, {}, "cluster:team")
    assert t.parameter("X").default == "1" and t.origin == "cluster:team"


@pytest.mark.parametrize("value,word", [("pa$$w0rd", '"pa\\$\\$w0rd"'), ('a "b"', '"a \\"b\\""'),
                                        ("c:\\x\\", '"c:\\\\x\\\\"'), ("grüße", '"grüße"'),
                                        ("${HOME}", '"\\${HOME}"')])
def test_render_quotes_values_for_dockerfile(value, word):
    """`$`, `"` and `\\` escaped as Dockerfile's lexer reads them; UTF-8 kept (no \\u00fc)."""
    text = templates.find("bash").render({"HANDLER": value})
    assert f"ARG HANDLER={word}\n" in text


def test_secret_parameters_are_never_rendered_nor_build_arguments():
    python = templates.find("python")
    values = python.resolve({"PIP_INDEX_URL": "https://ci:tok3n@index.example/simple"}, cfg=config.Config(),
                            ca_bundle="none")
    assert python.secrets(values) == {"PIP_INDEX_URL": "https://ci:tok3n@index.example/simple"}
    assert "tok3n" not in python.render(values, "rt:1")
    assert "PIP_INDEX_URL" not in python.public(values) and "HANDLER" in python.public(values)
    assert templates.find("bash").secrets(values) is None       # no secret parameter: no BuildKit needed
    assert {p.name for p in python.parameters if p.secret} == {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "CA_BUNDLE"}


# -- the machine's Go settings (machine: go-env) ----------------------------------------------

@pytest.fixture
def fresh_go_env():
    from fnctl import goenv

    goenv._go_env.cache_clear()
    yield
    goenv._go_env.cache_clear()


def test_go_parameters_take_the_machines_go_env_unless_given(fresh_go_env, monkeypatch):
    import shutil

    if shutil.which("go") is None:
        pytest.skip("no go command (scripts/setup installs golang-go)")
    monkeypatch.setenv("GOPROXY", "https://user:token@proxy.corp.example/go")   # `go env` reads the environment
    monkeypatch.setenv("GOPRIVATE", "corp.example/*")
    monkeypatch.setenv("GOFLAGS", "-tags=netgo")
    go = templates.find("go")
    values = go.resolve({}, cfg=config.Config(images={}))
    assert values["GOPROXY"] == "https://user:token@proxy.corp.example/go"
    assert values["GOPRIVATE"] == "corp.example/*" and values["GOFLAGS"] == "-tags=netgo"
    assert go.resolve({"GOPROXY": "off"}, cfg=config.Config(images={}))["GOPROXY"] == "off"
    # secrets: never an ARG of the rendered Dockerfile (the context, the image history), only build secrets
    rendered = go.render(values, runtime_image="runtime:1")
    assert "proxy.corp.example" not in rendered and "corp.example/*" not in rendered
    assert go.secrets(values)["GOPROXY"] == "https://user:token@proxy.corp.example/go"


def test_without_go_the_template_defaults_apply(fresh_go_env, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    values = templates.find("go").resolve({}, cfg=config.Config(images={}))
    assert values["GOPROXY"] == "https://proxy.golang.org,direct" and values["GOPRIVATE"] == ""


def test_machine_is_only_go_env_for_go_parameters():
    doc = {"name": "t", "dockerfileInline": "FROM x\n", "parameters": [{"name": "HANDLER", "machine": "go-env"}]}
    with pytest.raises(TemplateError) as e:
        templates.parse(doc, {}, "test")
    assert "machine must be one of go-env" in e.value.message
    doc["parameters"] = [{"name": "GOPROXY", "machine": "shell"}]
    with pytest.raises(TemplateError):
        templates.parse(doc, {}, "test")


def test_a_template_step_explains_its_own_build_failure():
    from fnctl.errors import BuildError

    log = "Step 7/9 : RUN printf 'fnctl-%s: %s' error ...\n#12 0.41 fnctl-error: could not fetch module m@v1\n" \
          "#12 0.41 fnctl-hint: set GOPROXY\n"
    e = BuildError("the image build failed at step 7", "see the log", details=log)
    assert e.message == "could not fetch module m@v1"
    assert e.details.endswith("the image build failed at step 7")
    assert e.hint == "set GOPROXY"
    plain = BuildError("kaniko exited with code 1", "see the log", details="error building image")
    assert plain.message == "kaniko exited with code 1" and plain.hint == "see the log"
