"""Kubernetes quantities for --memory/--cpu and the config file's local limits."""

from __future__ import annotations

import pytest

from fnctl import config, resources
from fnctl.errors import UsageError


@pytest.mark.parametrize(("text", "expected"), [
    ("256Mi", 256 * 2**20), ("1Gi", 2**30), ("1.5Gi", 3 * 2**29), ("128M", 128 * 10**6), ("67108864", 2**26),
])
def test_memory_quantities(text, expected):
    assert resources.memory_bytes(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("500m", 5 * 10**8), ("1", 10**9), ("1.5", 15 * 10**8),
                                                ("2", 2 * 10**9), ("1m", 10**6)])
def test_cpu_quantities(text, expected):
    assert resources.nano_cpus(text) == expected


@pytest.mark.parametrize("text", ["", "Mi", "256MB", "-1Gi", "1e3", "256 Mi", "0x10"])
def test_bad_memory_is_a_usage_error(text):
    with pytest.raises(UsageError) as e:
        resources.memory_bytes(text)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("text", ["", "0", "0m", "0.5m", "1.5m2", "100Mi", "-1", "one"])
def test_bad_cpu_is_a_usage_error(text):
    with pytest.raises(UsageError):
        resources.nano_cpus(text)


def test_local_limits_come_from_the_config_file(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    path.write_text("local:\n  memory: 300Mi\n  cpu: 250m\n  pids: 100\n")
    monkeypatch.setenv("FNCTL_CONFIG", str(path))
    config.load.cache_clear()
    try:
        assert config.load().local_limits == {"memory": "300Mi", "cpu": "250m", "pids": 100}
        path.write_text("local:\n  memory: lots\n")
        config.load.cache_clear()
        with pytest.raises(UsageError, match="local.memory 'lots' is not a memory quantity"):
            config.load()
        path.write_text("local:\n  pids: 2\n")
        config.load.cache_clear()
        with pytest.raises(UsageError, match="local.pids"):
            config.load()
    finally:
        config.load.cache_clear()
