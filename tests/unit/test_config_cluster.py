"""The config file's `cluster:` section: defaults of the cluster target's options."""

from __future__ import annotations

import pytest

from fnctl import config
from fnctl.errors import UsageError


@pytest.fixture
def write(tmp_path, monkeypatch):
    def write(text: str):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        monkeypatch.setenv("FNCTL_CONFIG", str(path))
        config.load.cache_clear()
        return path
    yield write
    config.load.cache_clear()


def test_cluster_section_is_read(write):
    write("images: {a: local/a}\ncluster:\n  registry-host: r.internal:5000\n  insecure-registry: true\n"
          "  kaniko-image: r.internal:5000/kaniko:v1.24.0\n  upload-image: r.internal:5000/busybox:1\n"
          "  images: {'debian:bookworm-slim': 'r.internal:5000/debian:bookworm-slim'}\n")
    c = config.load()
    assert c.images == {"a": "local/a"}
    assert c.cluster == config.ClusterDefaults(
        registry_host="r.internal:5000", insecure_registry=True, kaniko_image="r.internal:5000/kaniko:v1.24.0",
        upload_image="r.internal:5000/busybox:1",
        images={"debian:bookworm-slim": "r.internal:5000/debian:bookworm-slim"})


def test_no_section_means_builtin_defaults(write):
    write("images: {}\n")
    assert config.load().cluster == config.ClusterDefaults()


@pytest.mark.parametrize("text, words", [
    ("cluster: [a]\n", "`cluster` must be a mapping"),
    ("cluster: {registry: x}\n", "unknown key cluster.registry"),
    ("cluster: {insecure-registry: 'yes please'}\n", "cluster.insecure-registry must be a bool"),
    ("cluster: {images: [a]}\n", "cluster.images must be a dict"),
])
def test_bad_cluster_section_names_file_and_key(write, text, words):
    path = write(text)
    with pytest.raises(UsageError) as e:
        config.load()
    assert str(path) in e.value.message and words in e.value.message


def test_flags_win_over_the_file_and_the_file_over_defaults(write):
    from fnctl.builders.kaniko import DEFAULT_REGISTRY, build_options
    from fnctl.model import DeployRequest

    write("cluster: {registry-host: r.internal:5000, insecure-registry: true, kaniko-image: k:1, upload-image: b:1}\n")
    options = build_options(DeployRequest(name="x", source=".", template="bash"))
    assert (options.registry_host, options.insecure_registry, options.kaniko_image, options.init_image) == \
        ("r.internal:5000", True, "k:1", "b:1")
    options = build_options(DeployRequest(name="x", source=".", template="bash", registry_host="flag:1",
                                          kaniko_image="k:2"))
    assert (options.registry_host, options.kaniko_image) == ("flag:1", "k:2")
    write("images: {}\n")
    assert build_options(DeployRequest(name="x", source=".", template="bash")).registry_host == DEFAULT_REGISTRY
