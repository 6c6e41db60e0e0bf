"""Cloning git sources: the only module that imports `git` (gitpython).

It drives the user's own git, so credential helpers, ~/.gitconfig URL
rewrites, ssh keys and agents work exactly as they do for `git clone`.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from fnctl import validation
from fnctl.errors import SourceError
from fnctl.redact import redact

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")


def looks_like_git_url(spec: str) -> bool:
    return (spec.startswith(("https://", "http://", "ssh://", "git://", "file://", "git+ssh://"))
            or bool(_SCP_LIKE.match(spec)))


def _git_env() -> dict[str, str]:
    """What git needs beyond the user's own environment and configuration, which it keeps.

    With no terminal no one can answer a prompt, so git fails at once instead of hanging:
    GIT_TERMINAL_PROMPT=0 stops its username/password prompt, and ssh runs in BatchMode (no
    passphrase or host-key question) unless the user chose an ssh command (GIT_SSH_COMMAND, GIT_SSH
    or core.sshCommand), which wins as it does for `git clone`. GIT_ASKPASS and credential helpers
    still answer: they are how a token from an environment variable reaches git without a prompt.
    """
    env = {}
    if not sys.stdin.isatty():
        env["GIT_TERMINAL_PROMPT"] = "0"
        if not _user_ssh_command():
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env


def _user_ssh_command() -> bool:
    if os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH"):
        return True
    import git

    try:
        return bool(git.Git().config("--get", "core.sshCommand"))
    except git.GitCommandError:           # exit 1: not set
        return False


def _stderr_of(error: Exception) -> str:
    text = getattr(error, "stderr", "") or str(error)
    lines = [line.strip() for line in str(text).strip().strip("'").splitlines()
             if line.strip() and not line.strip().startswith("stderr:")]
    return "; ".join(lines)[-600:] or str(error)


def clone(url: str, dest: Path, revision: str | None) -> str:
    """Clone `url` into `dest` at `revision` (branch, tag or commit); return the commit."""
    validation.revision(revision)
    try:
        import git
    except ImportError as e:  # pragma: no cover - git binary missing
        raise SourceError("git is not available to clone the source", "install git") from e
    env = _git_env()
    try:
        if revision:
            repo = git.Repo.clone_from(url, dest, no_checkout=True, env=env)
        else:
            repo = git.Repo.clone_from(url, dest, depth=1, env=env)
    except git.GitCommandError as e:
        raise SourceError(
            f"cannot clone {redact(url)}: {redact(_stderr_of(e))}",
            "check the URL and that your own `git clone` of it works (fnctl uses your git credentials)",
        ) from e
    if revision:
        try:
            # "--" marks what comes before it as a revision, never a path; fetch below takes
            # it after "--" so it can never be read as an option (a leading '-' is refused above).
            repo.git.checkout(revision, "--", env=env)
        except git.GitCommandError as e:
            try:
                # Not a local name: perhaps a remote branch or a tag not yet fetched.
                repo.git.fetch("origin", "--", revision, env=env)
                repo.git.checkout("FETCH_HEAD", "--", env=env)
            except git.GitCommandError:
                raise SourceError(
                    f"revision {revision!r} does not exist in {redact(url)}",
                    "give a branch, tag or commit that exists (git ls-remote lists them)",
                ) from e
    return repo.head.commit.hexsha
