"""The install: scripts/setup puts fnctl in a virtual environment of its own and leaves the system
Python's site-packages without it; `pipx install .` gives a working `fnctl` command (README)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

VENV = Path(os.environ.get("FNCTL_VENV", "/opt/fnctl/venv"))
LINK = Path("/usr/local/bin/fnctl")


def system_interpreters() -> list[Path]:
    """The interpreters a user means by "the system Python": the one fnctl's virtual environment (or this
    test) was made from, and Debian's /usr/bin/python3."""
    found = {Path(sys._base_executable).resolve()}         # this interpreter's own, outside any venv
    cfg = VENV / "pyvenv.cfg"
    if cfg.is_file():
        home = dict(line.split(" = ", 1) for line in cfg.read_text().splitlines() if " = " in line).get("home")
        if home:
            found.add((Path(home) / "python3").resolve())
    if Path("/usr/bin/python3").exists():
        found.add(Path("/usr/bin/python3").resolve())
    return sorted(found)


def clean_env() -> dict[str, str]:
    """The environment without anything that would point an interpreter at this checkout or a venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


@pytest.mark.skipif(not VENV.is_dir(), reason=f"no {VENV}: run scripts/setup first")
@pytest.mark.parametrize("python", system_interpreters(), ids=str)
def test_setup_leaves_the_system_python_without_fnctl(python, tmp_path):
    """Run after scripts/setup (scripts/test): the system interpreter, started outside the checkout, cannot
    import fnctl and lists no fnctl distribution, as `pip list` would (it reads the same metadata)."""
    imported = subprocess.run([str(python), "-c", "import fnctl"], cwd=tmp_path, env=clean_env(),
                              capture_output=True, text=True)
    assert imported.returncode != 0 and "No module named 'fnctl'" in imported.stderr, imported
    listing = subprocess.run([str(python), "-c", "import importlib.metadata as m, json; "
                              "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"],
                             cwd=tmp_path, env=clean_env(), capture_output=True, text=True, check=True)
    names = json.loads(listing.stdout)
    assert names, "the interpreter lists no distributions at all: the check would prove nothing"
    assert "fnctl" not in names


@pytest.mark.skipif(not VENV.is_dir(), reason=f"no {VENV}: run scripts/setup first")
def test_setup_links_the_fnctl_command_into_its_virtual_environment(tmp_path):
    assert LINK.is_symlink() and LINK.resolve() == (VENV / "bin" / "fnctl").resolve()
    r = subprocess.run([str(LINK), "--version"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("fnctl, version "), r
    # The test tools scripts/test runs live there too, beside fnctl.
    tools = subprocess.run([str(VENV / "bin" / "python"), "-c", "import fnctl, pytest, ruff, importlinter, jsonschema"],
                           cwd=tmp_path, env=clean_env(), capture_output=True, text=True)
    assert tools.returncode == 0, tools


@pytest.mark.skipif(shutil.which("pipx") is None, reason="no pipx (scripts/setup installs Debian's)")
def test_pipx_install_gives_a_working_fnctl_command(tmp_path):
    """`pipx install .` as the README says, into a throwaway PIPX_HOME: a copy of the checkout (pip builds in
    the source tree and would leave build/ behind), installed from PyPI's dependencies."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                            ".venv", "results", ".pytest_cache", ".ruff_cache"))
    env = {**clean_env(), "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin"),
           "PIPX_MAN_DIR": str(tmp_path / "man")}
    install = subprocess.run(["pipx", "install", str(src)], cwd=src, env=env, capture_output=True, text=True,
                             timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    command = tmp_path / "bin" / "fnctl"
    home = tmp_path / "elsewhere"
    home.mkdir()
    version = subprocess.run([str(command), "--version"], cwd=home, env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("fnctl, version "), version
    # Not a checkout: the built-in templates come from the installed copy (setup.py's data files).
    shutil.rmtree(src)
    templates = subprocess.run([str(command), "get", "buildtemplate", "--local", "-o", "json"], cwd=home, env=env,
                               capture_output=True, text=True)
    assert templates.returncode == 0, templates
    names = {t["name"] for t in json.loads(templates.stdout)}
    assert {"bash", "node4", "go", "python"} <= names
