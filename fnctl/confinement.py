"""How a local revision container is confined, and the engine-neutral RunOptions that say so.

Every revision runs with no capabilities, no-new-privileges, a read-only root file system with a
tmpfs /tmp, memory, CPU and pids limits (the config file's `local:` defaults, or --memory/--cpu),
and as uid 65532 (the distroless `nonroot` user, as on clusters) unless its template needs root.
It sits alone with its service's gateway on the service's isolated Docker network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NONROOT = "65532:65532"
TMPFS = {"/tmp": "rw,nosuid,nodev,size=256m,mode=1777"}


@dataclass(frozen=True)
class RunOptions:
    """How a container runs: its networks, its published port and its confinement."""

    network: str = "host"
    aliases: tuple[str, ...] = ()                 # its other names on `network`
    extra_networks: tuple[str, ...] = ()          # joined before it starts
    publish: tuple[int, int] | None = None        # (container port, 127.0.0.1 port)
    user: str | None = None
    read_only: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    memory: int | None = None                     # bytes; swap is not added on top
    nano_cpus: int | None = None
    pids: int | None = None
    restart: bool = False                         # unless-stopped from the start

    def to_dict(self) -> dict:
        """For dry-run plans: only what is set."""
        return {key.replace("_", "-"): list(value) if isinstance(value, tuple) else value
                for key, value in self.__dict__.items() if value not in (None, (), {}, False)}


def confined(network: str, aliases: tuple[str, ...], memory: int, nano_cpus: int, pids: int,
             root: bool = False) -> RunOptions:
    """A revision's options on `network`."""
    return RunOptions(network=network, aliases=aliases, user=None if root else NONROOT, read_only=True,
                      tmpfs=dict(TMPFS), cap_drop=("ALL",), no_new_privileges=True, memory=memory,
                      nano_cpus=nano_cpus, pids=pids)
