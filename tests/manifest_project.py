"""A serverless.yaml project for the end-to-end manifest tests (local target and real cluster): a bash
function in a folder, tm's node4 `handler.landingPage` from a DIRECTORY of a git repository, and an
include adding a second bash function."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from tests.conftest import EXAMPLES, git

INCLUDE = "include:\n  - more/functions.yaml\n"


def make_project(root: Path, service: str) -> Path:
    """The project folder; its serverless.yaml deploys SERVICE-echo, SERVICE-landing and SERVICE-extra."""
    repo = root / "landing-repo"
    (repo / "site").mkdir(parents=True)
    shutil.copy(EXAMPLES / "node4-landing" / "handler.js", repo / "site" / "handler.js")
    (repo / "README.md").write_text("functions of a team\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "landing page", cwd=repo)

    project = root / "project"
    for folder, reply in (("echo", "main"), ("more/extra", "included")):
        (project / folder).mkdir(parents=True)
        (project / folder / "function.sh").write_text(f'handler() {{\n  echo "{reply} $1"\n}}\n')
    (project / "serverless.yaml").write_text(textwrap.dedent(f"""\
        service: {service}
        description: the manifest end-to-end test
        provider:
          name: triggermesh
          runtime: bash
          environment:
            ENABLED: yes
        functions:
          echo:
            source: ./echo
          landing:
            source: file://{repo}
            revision: main
            runtime: knative-node4-runtime
            buildargs:
              - DIRECTORY=site
              - HANDLER=handler.landingPage
              - EVENT=API_GATEWAY
        """) + INCLUDE)
    (project / "more" / "functions.yaml").write_text("functions:\n  extra:\n    source: ./extra\n")
    return project


def drop_include(project: Path) -> None:
    path = project / "serverless.yaml"
    path.write_text(path.read_text().replace(INCLUDE, ""))
