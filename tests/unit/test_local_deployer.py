"""The local target's rollout on a fake engine: zero-downtime swap, undo, Ctrl-C, options. Milliseconds each;
tests/e2e covers the same on the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from fnctl import labels, pipeline
from fnctl.builders.docker import DockerBuilder
from fnctl.deployers.local import LocalDeployer
from fnctl.errors import DeployError, Interrupted, UsageError
from fnctl.model import PHASES, DeployRequest, DeployResult
from tests.conftest import Recorder
from tests.fakeengine import FakeEngine


@pytest.fixture(autouse=True)
def own_locks(tmp_path, monkeypatch):
    """The per-name lock in a folder of the test's own: not shared with real deploys of `hello`."""
    monkeypatch.setenv("FNCTL_LOCK_DIR", str(tmp_path / "locks"))


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def src(function_dir: Path) -> Path:
    return function_dir


def deploy(engine: FakeEngine, src: Path, template: str = "bash", reporter: Recorder | None = None,
           **options) -> DeployResult:
    request = DeployRequest(name="hello", source=str(src), template=template, timeout=5, **options)
    deployer = LocalDeployer(engine, bindable=lambda port: True)
    return pipeline.deploy(request, DockerBuilder(engine), deployer, reporter or Recorder())


def failing_redeploy(engine: FakeEngine, src: Path, behaviour: str, error: type[Exception], **kw):
    """Deploy, edit the function, and redeploy with the new revision's container doing `behaviour`."""
    deploy(engine, src, **kw)
    edit(src, "v2")
    engine.behaviour["fnctl-hello-00002"] = behaviour
    with pytest.raises(error) as failure:
        deploy(engine, src, **kw)
    return failure.value


def edit(src: Path, version: str) -> None:
    (src / "function.sh").write_text(f"handler() {{ echo {version}; }}\n")
    (src / "app.csproj").write_text(f"<Project Label='{version}'/>")


def serving(engine: FakeEngine) -> list[str]:
    return [c.name for c in engine.running("hello")]


def revision(engine: FakeEngine, generation: int):
    return engine.container(f"fnctl-hello-{generation:05d}")


def revisions(engine: FakeEngine) -> list[str]:
    """The revision containers left (the gateway is not one)."""
    return [c.name for c in engine.box.values() if labels.SERVICE in c.labels]


def test_first_deploy_builds_runtime_and_function_and_reports_every_phase(engine, src):
    rec = Recorder()
    result = deploy(engine, src, reporter=rec)
    assert serving(engine) == ["fnctl-hello-00001"]
    assert [t.split(":")[0] for t in engine.built] == ["fnctl-runtime/bash", "fnctl/hello", "fnctl-gateway"]
    assert result.service.revision == "hello-00001" and result.service.ready and result.built
    assert result.service.url == f"http://127.0.0.1:{revision(engine, 1).labels[labels.PORT]}"
    assert rec.phases == list(PHASES)
    assert list(result.phases) == list(PHASES)
    assert engine.restart_policy == {revision(engine, 1).id: "unless-stopped"}
    assert engine.switched == {"fnctl-hello-gateway": "fnctl-hello-00001"}


def test_redeploy_swaps_without_downtime(engine, src):
    deploy(engine, src)
    old = revision(engine, 1)
    edit(src, "v2")
    result = deploy(engine, src)
    assert result.service.revision == "hello-00002"
    assert serving(engine) == ["fnctl-hello-00002"]
    assert revisions(engine) == ["fnctl-hello-00002"], "the old revision's container is removed"
    calls = engine.calls
    assert calls.index(("run", "fnctl-hello-00002")) < calls.index(("stop", "fnctl-hello-00001")), \
        "the old revision stops only once the new one is ready"
    assert engine.switched == {"fnctl-hello-gateway": "fnctl-hello-00002"}, "the gateway went over to it"
    assert calls.count(("run", "fnctl-hello-gateway")) == 1, "the gateway keeps running"
    first_run = calls.index(("run", "fnctl-hello-00001"))
    assert all(counts["hello"] >= 1 for _, counts in engine.timeline[first_run:]), engine.timeline
    new = revision(engine, 2)
    assert new.labels[labels.PORT] == old.labels[labels.PORT], "the URL stays the same"
    assert old.image not in engine.tags, "the old function image is removed"


def test_unchanged_redeploy_restarts_nothing(engine, src):
    deploy(engine, src)
    rec = Recorder()
    result = deploy(engine, src, reporter=rec)
    assert result.unchanged and not result.built
    assert engine.calls == [("run", "fnctl-hello-gateway"), ("run", "fnctl-hello-00001")]
    assert rec.phases == ["source", "runtime", "build", "deploy"]
    assert list(result.phases) == list(PHASES) and result.phases["wait"] == 0.0


def test_a_new_env_value_is_a_new_revision(engine, src):
    deploy(engine, src, env={"A": "1"})
    result = deploy(engine, src, env={"A": "2"})
    assert not result.unchanged and not result.built
    assert result.service.env == {"A": "2"} and serving(engine) == ["fnctl-hello-00002"]


def test_failed_redeploy_is_undone_and_the_old_revision_never_stops(engine, src):
    failure = failing_redeploy(engine, src, "exit", DeployError)
    assert "exited at start with status 3" in failure.message
    assert "failed to start" in failure.details
    assert serving(engine) == ["fnctl-hello-00001"] and revisions(engine) == ["fnctl-hello-00001"]
    assert ("stop", "fnctl-hello-00001") not in engine.calls
    assert engine.switched == {"fnctl-hello-gateway": "fnctl-hello-00001"}
    assert ("remove", "fnctl-hello-00002") in engine.calls


def test_a_failed_deploy_removes_the_image_it_built_and_says_so(engine, src):
    first = deploy(engine, src).service.image
    rec = Recorder()
    edit(src, "v2")
    engine.behaviour["fnctl-hello-00002"] = "exit"
    with pytest.raises(DeployError):
        deploy(engine, src, reporter=rec)
    assert engine.images("fnctl/hello") == [first], "the running revision's image stays, the new one goes"
    assert any(n.startswith("removed fnctl/hello:") and n.endswith("built by this failed deploy") for n in rec.notes)


def test_ctrl_c_while_waiting_removes_the_new_revision(engine, src):
    stopped = failing_redeploy(engine, src, "interrupt", Interrupted)
    assert stopped.message == "interrupted: hello-00002 was removed, hello-00001 keeps serving"
    assert serving(engine) == ["fnctl-hello-00001"] and revisions(engine) == ["fnctl-hello-00001"]
    # The next deploy starts from a clean state: the same revision number again.
    engine.behaviour.clear()
    assert deploy(engine, src).service.revision == "hello-00002"


def test_without_the_bridge_too_the_old_revision_serves_until_the_new_one_answers(engine, src):
    failing_redeploy(engine, src, "exit", DeployError, template="azure-dotnet")
    # The gateway holds the port, so both run side by side: the old one never stops.
    assert ("stop", "fnctl-hello-00001") not in engine.calls
    assert serving(engine) == ["fnctl-hello-00001"]
    edit(src, "v3")
    engine.behaviour.clear()
    assert deploy(engine, src, template="azure-dotnet").service.revision == "hello-00002"
    assert engine.switched == {"fnctl-hello-gateway": "fnctl-hello-00002"}


def test_a_runtime_image_pruned_mid_deploy_is_built_again_once(engine, src):
    deploy(engine, src)
    edit(src, "v2")
    runtime = next(t for t in engine.tags if t.startswith("fnctl-runtime/"))
    engine.vanishing.add(runtime)
    result = deploy(engine, src)
    assert runtime in engine.tags and engine.built.count(runtime) == 2
    assert result.service.revision == "hello-00002"


# -- cluster options on the local target ---------------------------------------------------

def test_concurrency_caps_the_bridges_invokers(engine, src):
    deploy(engine, src, concurrency=2)
    assert revision(engine, 1).env["INVOKER_COUNT"] == "2"
    result = deploy(engine, src, concurrency=3)
    assert not result.unchanged and revision(engine, 2).env["INVOKER_COUNT"] == "3"


def test_env_secret_reads_an_env_file_that_env_overrides(engine, src, tmp_path):
    secrets = tmp_path / "db.env"
    secrets.write_text("# database\nDB_USER=fn\nDB_PASSWORD=s3cret=x\n\n")
    result = deploy(engine, src, env={"DB_USER": "override"}, env_secrets=[str(secrets)])
    env = revision(engine, 1).env
    assert env["DB_PASSWORD"] == "s3cret=x" and env["DB_USER"] == "override"
    assert result.service.env == {"DB_USER": "override"}, "secret values stay out of describe"
    secrets.write_text("DB_USER=fn\nDB_PASSWORD=rotated\n")
    assert not deploy(engine, src, env={"DB_USER": "override"}, env_secrets=[str(secrets)]).unchanged


def test_labels_go_on_the_container_and_fnctls_own_win(engine, src):
    deploy(engine, src, labels={"team": "a", labels.SERVICE: "other"})
    c = revision(engine, 1)
    assert c.labels["team"] == "a" and c.labels[labels.SERVICE] == "hello"


@pytest.mark.parametrize(("options", "named"), [
    ({"annotations": {"a": "b"}}, "--annotation"),
    ({"concurrency_target": 10}, "--concurrency-target"),
    ({"registry_secret": "creds"}, "--registry-secret"),
    ({"kaniko_image": "k"}, "--kaniko-image"),
    ({"insecure_registry": True}, "--insecure-registry"),
    ({"registry_host": "r.example"}, "--registry-host"),
    ({"build_namespace": "builds"}, "--build-namespace"),
    ({"min_scale": 2}, "--min-scale 2"),
    ({"concurrency": 0}, "--concurrency 0"),
    ({"env_secrets": ["/nonexistent/creds.env"]}, "--env-secret /nonexistent/creds.env"),
])
def test_options_that_cannot_apply_are_refused_before_anything_runs(engine, src, options, named):
    with pytest.raises(UsageError) as refused:
        deploy(engine, src, **options)
    assert named in refused.value.message and refused.value.exit_code == 2
    assert "local target" in refused.value.message + (refused.value.hint or "")
    assert engine.built == [] and engine.calls == []


def test_concurrency_needs_the_bridge(engine, src):
    with pytest.raises(UsageError, match="template azure-dotnet runs without the bridge"):
        deploy(engine, src, template="azure-dotnet", concurrency=2)


def test_scale_bounds_one_instance_meets_are_accepted(engine, src):
    result = deploy(engine, src, min_scale=1, max_scale=5)
    assert result.service.ready
    assert deploy(engine, src, min_scale=0).unchanged


def test_revisions_are_confined_on_their_own_network_behind_the_gateway(engine, src):
    deploy(engine, src, memory="300Mi", cpu="250m")
    options = engine.options["fnctl-hello-00001"]
    assert (options.network, options.aliases) == ("fnctl-hello", ("function",))
    assert options.cap_drop == ("ALL",) and options.no_new_privileges and options.read_only
    assert options.user == "65532:65532" and "/tmp" in options.tmpfs
    assert (options.memory, options.nano_cpus, options.pids) == (300 * 2**20, 250 * 10**6, 4096)
    assert options.publish is None, "only the gateway publishes a port"
    front = engine.options["fnctl-hello-gateway"]
    assert front.publish == (8080, int(revision(engine, 1).labels[labels.PORT]))
    assert front.extra_networks == ("fnctl-hello",) and front.cap_drop == ("ALL",)
    assert engine.networks["fnctl-hello"]["isolated"] == "True"
    result = deploy(engine, src, memory="400Mi", cpu="250m")
    assert not result.unchanged, "new limits are a new revision"
    assert engine.options["fnctl-hello-00002"].memory == 400 * 2**20


def test_delete_removes_the_gateway_and_the_network(engine, src):
    deploy(engine, src)
    LocalDeployer(engine, bindable=lambda port: True).delete("hello")
    assert engine.box == {} and "fnctl-hello" not in engine.networks


def test_a_failed_first_deploy_leaves_no_gateway_and_no_network(engine, src):
    engine.behaviour["fnctl-hello-00001"] = "exit"
    with pytest.raises(DeployError):
        deploy(engine, src)
    assert engine.box == {} and "fnctl-hello" not in engine.networks


def test_a_gateway_that_does_not_start_fails_the_deploy_and_is_removed(engine, src):
    engine.behaviour["fnctl-hello-gateway"] = "exit"
    with pytest.raises(DeployError, match="the gateway of hello did not start"):
        deploy(engine, src)
    assert engine.box == {}
