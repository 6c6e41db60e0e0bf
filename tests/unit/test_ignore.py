import pytest

from fnctl.errors import SourceError
from fnctl.source import package
from fnctl.source.ignore import walk


def names(root):
    return [rel for rel, _ in walk(root)]


def make(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_gitignore_dockerignore_and_fnctlignore(tmp_path):
    make(tmp_path, {
        ".gitignore": "*.log\nbuild/\n",
        ".dockerignore": "secret.txt\ndocs\n",
        ".fnctlignore": "*.tmp\n!keep.tmp\n",
        "function.sh": "", "a.log": "", "build/out": "", "secret.txt": "", "sub/secret.txt": "",
        "docs/readme": "", "x.tmp": "", "keep.tmp": "", "sub/b.log": "", ".git/HEAD": "",
    })
    assert names(tmp_path) == [".dockerignore", ".fnctlignore", ".gitignore", "function.sh", "keep.tmp",
                               "sub/secret.txt"]


def test_nested_gitignore_applies_below_its_folder(tmp_path):
    make(tmp_path, {"lib/.gitignore": "*.o\n", "lib/a.o": "", "lib/a.c": "", "b.o": ""})
    assert names(tmp_path) == ["b.o", "lib/.gitignore", "lib/a.c"]


def test_everything_ignored_is_an_error(tmp_path):
    make(tmp_path, {".dockerignore": "*\n", "f.sh": ""})
    with pytest.raises(SourceError, match="holds no files"):
        package(tmp_path)
