"""A redeploy to a cluster keeps the Service's recorded build arguments and environment (fake cluster)."""

from __future__ import annotations

import json

import pytest

from fnctl import errors
from fnctl.app import cluster_target
from fnctl.model import DeployRequest
from tests.cluster.test_cluster_fake import update_while_watched
from tests.conftest import Recorder

pytest.importorskip("tests.fakekube")
KSVC = "services.serving.knative.dev"


def request(src, **over) -> DeployRequest:
    return DeployRequest(**{"name": "hello", "source": str(src), "template": "bash", "timeout": 30, **over})


@pytest.fixture
def greet_dir(tmp_path):
    src = tmp_path / "fn"
    src.mkdir()
    (src / "greet.sh").write_text('greet () {\n  echo "hello $WHO"\n}\n')
    return src


def container(fake) -> dict:
    return fake.get(KSVC, "hello")["spec"]["template"]["spec"]["containers"][0]


def test_redeploy_keeps_build_arguments_and_env_and_says_so(fake, greet_dir):
    first = cluster_target().deploy(request(greet_dir, build_args={"HANDLER": "greet.greet"}, env={"WHO": "a"}),
                                    Recorder())
    ksvc = fake.get(KSVC, "hello")
    assert json.loads(ksvc["metadata"]["annotations"]["fnctl.dev/build-args"]) == {"HANDLER": "greet.greet"}
    rec = Recorder()
    again = cluster_target().deploy(request(greet_dir), rec)
    assert rec.notes[0] == ("keeping the build arguments HANDLER=greet.greet and environment WHO of the deployed "
                            "hello (given ones win; --reset starts from the defaults)")
    # The same context (HANDLER kept) and the same env: the same image, no new revision.
    assert again.unchanged and again.service.image == first.service.image
    assert fake.get(KSVC, "hello")["metadata"]["generation"] == 1
    # Given values merge over the recorded ones.
    rec = Recorder()
    cluster_target().deploy(request(greet_dir, env={"LANG": "C"}, build_args={"EVENT": "API_GATEWAY"}), rec)
    assert container(fake)["env"] == [{"name": "WHO", "value": "a"}, {"name": "LANG", "value": "C"}]
    assert json.loads(fake.get(KSVC, "hello")["metadata"]["annotations"]["fnctl.dev/build-args"]) == \
        {"EVENT": "API_GATEWAY", "HANDLER": "greet.greet"}
    assert any("keeping the build arguments HANDLER=greet.greet and environment WHO" in n for n in rec.notes)
    # NAME- drops one.
    cluster_target().deploy(request(greet_dir, removed_env=["LANG"]), Recorder())
    assert container(fake)["env"] == [{"name": "WHO", "value": "a"}]


def test_reset_starts_from_the_defaults(fake, greet_dir):
    cluster_target().deploy(request(greet_dir, build_args={"HANDLER": "greet.greet"}, env={"WHO": "a"}), Recorder())
    # The template's default HANDLER (function.handler) has no file here; greet.sh is the obvious one.
    with pytest.raises(errors.UsageError) as e:
        cluster_target().deploy(request(greet_dir, reset=True), Recorder())
    assert e.value.hint == "deploy with --build-argument HANDLER=greet.greet"
    assert fake.get(KSVC, "hello")["metadata"]["generation"] == 1, "nothing was changed"
    (greet_dir / "function.sh").write_text("handler () { echo hi; }\n")
    rec = Recorder()
    cluster_target().deploy(request(greet_dir, reset=True), rec)
    assert rec.notes[0].startswith("--reset: hello starts from the template's defaults")
    assert "env" not in container(fake)
    assert json.loads(fake.get(KSVC, "hello")["metadata"]["annotations"]["fnctl.dev/build-args"]) == {}


def test_a_deploy_overtaken_while_it_waits_says_which_update_serves(fake, function_dir):
    """Another deploy updates the Service while this one waits: this one waits for that update and says so,
    instead of reporting the other's revision as its own."""
    fake.knative.delay = 1.0

    def overtake(obj: dict) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "BY", "value": "other"}]

    other = update_while_watched(fake, overtake)
    rec = Recorder()
    result = cluster_target().deploy(request(function_dir), rec)
    other.join()
    assert result.service.revision == "hello-00002" and result.service.env == {"BY": "other"}
    assert ("hello was updated again by someone else while this deploy waited (generation 2, this deploy's was 1): "
            "that update serves now") in rec.notes


def test_a_kept_build_argument_that_does_not_fit_the_new_source_says_how_to_drop_it(fake, greet_dir, tmp_path):
    (greet_dir / "sub").mkdir()
    (greet_dir / "sub" / "function.sh").write_text('handler () {\n  echo "$1"\n}\n')
    cluster_target().deploy(request(greet_dir, build_args={"DIRECTORY": "sub"}), Recorder())
    other = tmp_path / "other"          # another source, without the folder DIRECTORY names
    other.mkdir()
    (other / "function.sh").write_text('handler () {\n  echo "$1"\n}\n')
    with pytest.raises(errors.FnctlError) as failed:
        cluster_target().deploy(request(other), Recorder())
    assert "DIRECTORY 'sub' does not exist" in failed.value.message
    assert "kept from the deployed service: --reset" in failed.value.hint
    # --reset is the way out it names, and it works.
    assert cluster_target().deploy(request(other, reset=True), Recorder()).service.name == "hello"
