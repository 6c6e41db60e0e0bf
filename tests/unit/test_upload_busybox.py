"""The upload of a large build context, run by a real busybox (Debian's busybox-static, the
shell and tar of the default upload image busybox:1.36) on a stdin that is never closed:
what a WebSocket v4 pod exec gives, where the client cannot signal the end of stdin."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from fnctl.builders import buildpod
from fnctl.source.context import ContextFile, make_context

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed (scripts/setup installs "
                                                        "busybox-static)")


@pytest.fixture
def shared():
    """A world-writable directory (user nobody writes there too), like the emptyDir the upload container shares
    with kaniko (pytest's own tmp_path lives under a folder only root may enter)."""
    path = Path(tempfile.mkdtemp(prefix="fnctl-upload-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _context():
    # Larger than the ConfigMap limit, and not compressible, like a context that gets uploaded.
    return make_context([ContextFile("Dockerfile", b"FROM scratch\n"),
                         ContextFile("blob.bin", os.urandom(buildpod.CONFIGMAP_LIMIT + 64 * 1024))])


def _start(command: list[str]) -> subprocess.Popen:
    """Run it as the upload container does: as its user (nobody) where we can switch to it, in a
    world-writable directory like the emptyDir it shares with kaniko."""
    assert command[:2] == ["sh", "-c"]
    prefix = []
    if os.geteuid() == 0 and shutil.which("setpriv"):
        uid = str(buildpod.UPLOADER_SECURITY["runAsUser"])
        prefix = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    return subprocess.Popen([*prefix, BUSYBOX, "sh", "-c", command[2]], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_upload_ends_with_stdin_still_open_and_the_marker_comes_after_the_context(shared):
    context = _context()
    data = buildpod.upload_tar(context)
    waiter = _start(buildpod.wait_command(str(shared)))          # the init container
    upload = _start(buildpod.upload_command(len(data), str(shared)))
    try:
        upload.stdin.write(data)
        upload.stdin.flush()                 # and never closed, as over WebSocket v4
        assert upload.wait(timeout=20) == 0, upload.stderr.read().decode()
        assert (shared / buildpod.CONTEXT_FILE).read_bytes() == context.data
        assert (shared / buildpod.DONE_MARKER).exists()
        assert waiter.wait(timeout=10) == 0      # the init container ends once the marker is there
    finally:
        for proc in (upload, waiter):
            proc.kill()
            proc.wait()


def test_a_cut_off_upload_writes_no_marker(shared):
    data = buildpod.upload_tar(_context())
    upload = _start(buildpod.upload_command(len(data), str(shared)))
    upload.stdin.write(data[: len(data) // 2])
    upload.stdin.close()                     # the stream broke off half-way
    assert upload.wait(timeout=20) != 0
    assert not (shared / buildpod.DONE_MARKER).exists()


def test_busybox_tar_reads_to_the_end_of_its_input(shared):
    """Why the marker cannot travel inside the tar: tar has extracted everything, yet it does not
    end while stdin stays open (the init container would see the marker and kill it mid-exec)."""
    context = _context()
    data = buildpod.upload_tar(context)
    tar = _start(["sh", "-c", f"tar -xf - -C {shared}"])
    try:
        tar.stdin.write(data)
        tar.stdin.flush()
        deadline = time.monotonic() + 10
        extracted = shared / buildpod.CONTEXT_FILE
        while not (extracted.exists() and extracted.read_bytes() == context.data) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert extracted.read_bytes() == context.data
        time.sleep(1)
        assert tar.poll() is None, "busybox tar ended before its input did"
    finally:
        tar.kill()
        tar.wait()
