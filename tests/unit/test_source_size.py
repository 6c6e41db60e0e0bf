"""Issue 11, item 8: a large source is not packed in silence.

Before, a 50 MB folder was read, packed and sent with no word about its size.
"""

from __future__ import annotations

import os

import pytest

from fnctl import config
from fnctl.model import DeployRequest
from fnctl.source import size
from fnctl.source.context import ContextFile
from tests.conftest import Recorder, fnctl


def test_human_sizes():
    assert [size.human(n) for n in (5, 1500, 10_000_000, 52_300_000, 2_000_000_000)] == \
        ["5 bytes", "1.5 KB", "10.0 MB", "52.3 MB", "2.0 GB"]


def test_the_largest_top_level_entries_folders_summed():
    files = [ContextFile("src/node_modules/a/x.js", b"a" * 700), ContextFile("src/node_modules/b.js", b"b" * 400),
             ContextFile("src/data.bin", b"d" * 900), ContextFile("src/handler.js", b"h" * 10)]
    assert size.largest(files) == [("node_modules/", 1100), ("data.bin", 900), ("handler.js", 10)]
    line, warning = size.report(files, warn_above=2010)
    assert line == "packed 4 files, 2.0 KB" and warning is None
    line, warning = size.report(files, warn_above=1000)
    assert warning.startswith("packed 4 files, 2.0 KB: more than 1.0 KB") and ".fnctlignore" in warning
    assert warning.endswith("node_modules/ (1.1 KB), data.bin (900 bytes), handler.js (10 bytes)")


@pytest.fixture
def big_source(tmp_path):
    src = tmp_path / "fn"
    (src / "assets").mkdir(parents=True)
    (src / "function.sh").write_text("handler() { echo hi; }\n")
    (src / "assets" / "video.bin").write_bytes(os.urandom(7_000_000))
    (src / "dump.sql").write_bytes(os.urandom(4_500_000))
    return src


def _dry_run(src, tmp_path, config_text: str = "{}\n") -> Recorder:
    from fnctl.app import dry_run

    path = tmp_path / "config.yaml"
    path.write_text(config_text)
    os.environ["FNCTL_CONFIG"] = str(path)
    config.load.cache_clear()
    try:
        recorder = Recorder()
        dry_run(DeployRequest(name="big", source=str(src), template="bash"), recorder, local=True)
        return recorder
    finally:
        del os.environ["FNCTL_CONFIG"]
        config.load.cache_clear()


def _one_warning(recorder: Recorder) -> str:
    warnings = [n for n in recorder.notes if ".fnctlignore" in n]
    assert len(warnings) == 1, recorder.notes
    return warnings[0]


def test_a_source_over_10_mb_suggests_fnctlignore_with_its_largest_entries(big_source, tmp_path):
    recorder = _dry_run(big_source, tmp_path)
    warning = _one_warning(recorder)
    assert warning.startswith("packed 3 files, 11.5 MB: more than 10.0 MB")
    assert warning.endswith("assets/ (7.0 MB), dump.sql (4.5 MB), function.sh (23 bytes)")


def test_the_threshold_is_configurable_and_ignored_entries_do_not_count(big_source, tmp_path):
    notes = _dry_run(big_source, tmp_path, "build:\n  context-warning: 20MB\n").notes
    assert "packed 3 files, 11.5 MB" in notes and not [n for n in notes if ".fnctlignore" in n]
    (big_source / ".fnctlignore").write_text("assets/\n")
    recorder = _dry_run(big_source, tmp_path, "build:\n  context-warning: 1MB\n")
    warning = _one_warning(recorder)
    assert warning.startswith("packed 3 files, 4.5 MB")      # .fnctlignore itself is packed, assets/ is not
    assert "assets/" not in warning and "dump.sql (4.5 MB)" in warning


def test_the_cli_shows_the_size_and_the_hint(big_source):
    r = fnctl("deploy", "service", "big", "-f", str(big_source), "--build-template", "bash", "--local", "--dry-run")
    assert r.code == 0, r
    assert "fnctl: packed 3 files, 11.5 MB: more than 10.0 MB" in r.err and "assets/ (7.0 MB)" in r.err
