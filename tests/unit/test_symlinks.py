"""Issue 11, item 2: a build context never carries a file from outside the source.

Before, `link.txt -> /tmp/outside.txt` and `rel.txt -> ../outside.txt` were packed with the
outside file's content, and a link to a folder was silently dropped.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from fnctl import source
from fnctl.errors import SourceError
from fnctl.source.context import make_context
from tests.conftest import git


def _members(files) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(make_context(files).data))) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def fn(tmp_path):
    src = tmp_path / "fn"
    (src / "lib").mkdir(parents=True)
    (src / "function.sh").write_text("handler() { cat data.txt; }\n")
    (src / "lib" / "data.txt").write_text("inside\n")
    (tmp_path / "outside.txt").write_text("SECRET from outside\n")
    (tmp_path / "outdir").mkdir()
    return src


def test_links_inside_stay_links_and_a_folder_link_is_not_dropped(fn):
    os.symlink("lib/data.txt", fn / "data.txt")
    os.symlink("lib", fn / "libs")                                  # a link to a folder
    os.symlink(fn / "lib" / "data.txt", fn / "absolute.txt")        # absolute, but inside: made relative
    os.symlink("lib/missing.txt", fn / "dangling.txt")             # inside, dangling: as docker build keeps it
    members = _members(source.package(fn))
    assert members["src/data.txt"].issym() and members["src/data.txt"].linkname == "lib/data.txt"
    assert members["src/libs"].issym() and members["src/libs"].linkname == "lib"
    assert members["src/absolute.txt"].linkname == "lib/data.txt"
    assert members["src/dangling.txt"].linkname == "lib/missing.txt"
    assert members["src/lib/data.txt"].isfile()


@pytest.mark.parametrize("target", ["ABS", "../outside.txt", "../outdir", "lib/../../outside.txt", "/etc"])
def test_a_link_leading_outside_is_refused_naming_it(fn, target):
    os.symlink(str(fn.parent / "outside.txt") if target == "ABS" else target, fn / "link")
    with pytest.raises(SourceError) as e:
        source.package(fn)
    assert e.value.exit_code == 2 and "link ->" in e.value.message and ".fnctlignore" in e.value.hint


def test_every_escaping_link_is_named_even_deep_ones(fn):
    os.symlink("../../outside.txt", fn / "lib" / "deep.txt")
    os.symlink(str(fn.parent / "outside.txt"), fn / "abs.txt")
    with pytest.raises(SourceError) as e:
        source.package(fn)
    assert "lib/deep.txt -> ../../outside.txt" in e.value.message and "abs.txt ->" in e.value.message


def test_a_chain_that_ends_outside_is_refused(fn):
    os.symlink("../../outside.txt", fn / "lib" / "hop")
    os.symlink("lib/hop", fn / "start")
    with pytest.raises(SourceError) as e:
        source.package(fn)
    assert "start -> lib/hop" in e.value.message and "lib/hop -> ../../outside.txt" in e.value.message


def test_an_ignored_escaping_link_is_fine(fn):
    os.symlink("../outside.txt", fn / "link")
    (fn / ".fnctlignore").write_text("link\n")
    assert "src/link" not in _members(source.package(fn))


def test_the_subfolder_is_the_boundary(fn):
    """With DIRECTORY=lib only lib/ is packed: a link out of it would dangle in the image."""
    os.symlink("../function.sh", fn / "lib" / "up.sh")
    with pytest.raises(SourceError, match="up.sh"):
        source.package(fn / "lib")
    assert "src/lib/up.sh" in _members(source.package(fn))


def test_git_sources_follow_the_same_rule(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "function.sh").write_text("handler() { :; }\n")
    os.symlink("function.sh", repo / "alias.sh")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "inside link", cwd=repo)
    with source.checkout(f"file://{repo}") as tree:
        assert _members(source.package(tree.root))["src/alias.sh"].linkname == "function.sh"
    os.symlink("/etc/passwd", repo / "passwd")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "escaping link", cwd=repo)
    with source.checkout(f"file://{repo}") as tree, pytest.raises(SourceError, match="passwd -> /etc/passwd"):
        source.package(tree.root)
