"""Issue 11, item 2 on the real engine: links inside the source are links in the image, and the function
reads through them; a link that leads outside stops the deploy before anything is built."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import fnctl, http, needs_docker

pytestmark = [pytest.mark.docker, needs_docker]


def test_links_inside_are_kept_and_work(service, tmp_path):
    src = tmp_path / "fn"
    (src / "lib").mkdir(parents=True)
    (src / "lib" / "data.txt").write_text("through a file link\n")
    (src / "lib" / "more.txt").write_text("through a folder link\n")
    os.symlink("lib/data.txt", src / "data.txt")
    os.symlink("lib", src / "libs")
    (src / "function.sh").write_text(
        'handler() {\n  cat /var/task/data.txt /var/task/libs/more.txt\n'
        '  [ -L /var/task/data.txt ] && [ -L /var/task/libs ] && echo "both are links"\n}\n')
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local", "-o", "json")
    assert r.code == 0, r
    status, body, _ = http(json.loads(r.out)["url"], data=b"{}")
    assert status == 200 and body.decode().split("\n")[:3] == ["through a file link", "through a folder link",
                                                               "both are links"], body


def test_a_link_leading_outside_stops_the_deploy(service, tmp_path):
    (tmp_path / "outside.txt").write_text("SECRET from outside\n")
    src = tmp_path / "fn"
    src.mkdir()
    (src / "function.sh").write_text('handler() { cat /var/task/link.txt; }\n')
    os.symlink(str(tmp_path / "outside.txt"), src / "link.txt")
    os.symlink("../outside.txt", src / "rel.txt")
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local")
    assert r.code == 2, r
    assert f"link.txt -> {tmp_path / 'outside.txt'}" in r.err and "rel.txt -> ../outside.txt" in r.err
    images = subprocess.run(["docker", "images", "-q", f"fnctl/{service}"], capture_output=True, text=True).stdout
    assert images.strip() == ""
