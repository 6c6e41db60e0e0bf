import gzip
import io
import os
import tarfile

from fnctl.source import package
from fnctl.source.context import ContextFile, make_context


def test_same_files_give_identical_bytes_whatever_the_order():
    a = make_context([ContextFile("b.txt", b"2"), ContextFile("a/x.sh", b"#!", executable=True)])
    b = make_context([ContextFile("a/x.sh", b"#!", executable=True), ContextFile("b.txt", b"2")])
    assert a.data == b.data and a.digest == b.digest


def test_content_change_changes_digest():
    assert make_context([ContextFile("f", b"1")]).digest != make_context([ContextFile("f", b"2")]).digest


def test_entries_are_normalised():
    ctx = make_context([ContextFile("d/run", b"x", executable=True), ContextFile("d/data", b"y")])
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(ctx.data))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["d", "d/data", "d/run"]
    assert members["d/run"].mode == 0o755 and members["d/data"].mode == 0o644
    assert {m.mtime for m in members.values()} == {0} and {m.uid for m in members.values()} == {0}


def test_packaging_ignores_file_times(tmp_path):
    (tmp_path / "function.sh").write_text("echo hi\n")
    first = make_context(package(tmp_path)).digest
    os.utime(tmp_path / "function.sh", (1, 1))
    assert make_context(package(tmp_path)).digest == first
