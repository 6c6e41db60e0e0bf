"""One deploy or delete of a service name at a time on the local engine: a file lock per name.

    with service_lock("hello", reporter):     # waits, saying so, while another fnctl holds it
        ...

The lock is an flock(2) on a file in a folder every fnctl of the same user finds, whatever its
shell's environment: /run/fnctl/locks for root, else ~/.cache/fnctl/locks under the home folder
of the user's passwd entry ($HOME, $XDG_RUNTIME_DIR and $XDG_CACHE_HOME differ between a
desktop terminal, ssh, sudo and tmux). The kernel drops an flock when its process ends, however
it ends, so a crashed deploy never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

from fnctl.errors import EnvironmentProblem, Interrupted
from fnctl.model import Reporter

ROOT_DIR = Path("/run/fnctl/locks")


def lock_dir() -> Path:
    """Where the locks live; FNCTL_LOCK_DIR overrides (tests)."""
    if os.environ.get("FNCTL_LOCK_DIR"):
        return Path(os.environ["FNCTL_LOCK_DIR"])
    if os.geteuid() == 0:
        return ROOT_DIR
    return Path(pwd.getpwuid(os.geteuid()).pw_dir) / ".cache" / "fnctl" / "locks"


@contextlib.contextmanager
def service_lock(name: str, reporter: Reporter, scope: str = "local") -> Iterator[None]:
    """Hold the lock of service `name`; when another process holds it, note that and wait."""
    folder = lock_dir()
    path = folder / f"{scope}-{name}.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise EnvironmentProblem(f"cannot make the lock file {path} that keeps deploys of {name} apart: "
                                 f"{e.strerror}", f"check that {folder} is writable, or set FNCTL_LOCK_DIR "
                                 "to a folder that is") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            reporter.note(f"waiting for another deploy or delete of {name} to finish"
                          + (f" (pid {holder})" if holder.isdigit() else ""))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted while waiting for another deploy or delete of {name}; "
                                  "nothing was changed") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)   # no stale pid for the next waiter to name
    finally:
        os.close(fd)              # releases the lock
