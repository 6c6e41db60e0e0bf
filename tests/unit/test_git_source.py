import pytest

from fnctl import source
from fnctl.errors import FnctlError, SourceError, UsageError
from tests.conftest import git


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "fn").mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=root)
    (root / "fn" / "function.sh").write_text("v1\n")
    git("add", ".", cwd=root)
    git("commit", "-qm", "v1", cwd=root)
    git("tag", "v1", cwd=root)
    first = git("rev-parse", "HEAD", cwd=root)
    git("checkout", "-qb", "feature", cwd=root)
    (root / "fn" / "function.sh").write_text("feature\n")
    git("commit", "-qam", "feature", cwd=root)
    git("checkout", "-q", "main", cwd=root)
    (root / "fn" / "function.sh").write_text("v2\n")
    git("commit", "-qam", "v2", cwd=root)
    return root, first


@pytest.mark.parametrize("revision,expected", [(None, "v2"), ("v1", "v1"), ("feature", "feature"),
                                               ("first", "v1")])
def test_clone_at_revision_and_workspace_removed(repo, revision, expected):
    root, first = repo
    rev = first if revision == "first" else revision
    with source.checkout(f"file://{root}", rev) as tree:
        assert (source.subfolder(tree, "fn") / "function.sh").read_text() == expected + "\n"
        workspace = tree.root
        assert tree.commit and len(tree.commit) == 40
    assert not workspace.exists()


def test_missing_revision(repo):
    root, _ = repo
    with pytest.raises(SourceError, match="revision 'nope' does not exist"), \
            source.checkout(f"file://{root}", "nope"):
        pass


@pytest.mark.parametrize("revision", ["--upload-pack=touch {marker}; git-upload-pack",
                                      "-c core.sshCommand=touch {marker}", "-"])
def test_revision_cannot_be_an_option(repo, tmp_path, revision):
    """Issue 10: `--revision '--upload-pack=CMD'` reached `git fetch` and ran CMD."""
    root, _ = repo
    marker = tmp_path / "pwned"
    with pytest.raises(FnctlError) as refused, source.checkout(f"file://{root}", revision.format(marker=marker)):
        pass
    assert not marker.exists(), "git ran the command given as a revision"
    assert isinstance(refused.value, UsageError) and "invalid --revision" in refused.value.message


def test_uncloneable_url(tmp_path):
    with pytest.raises(SourceError, match="cannot clone") as e, source.checkout(f"file://{tmp_path}/none"):
        pass
    assert "git credentials" in e.value.hint


def test_directory_outside_the_source_is_refused(repo):
    root, _ = repo
    with source.checkout(str(root)) as tree:
        with pytest.raises(SourceError, match="relative path inside"):
            source.subfolder(tree, "../etc")
        with pytest.raises(SourceError, match="does not exist"):
            source.subfolder(tree, "nope")


def test_revision_needs_a_git_url(tmp_path):
    with pytest.raises(SourceError, match="needs a git URL"), source.checkout(str(tmp_path), "main"):
        pass


def test_missing_path(tmp_path):
    with pytest.raises(SourceError, match="does not exist"), source.checkout(str(tmp_path / "nope")):
        pass
