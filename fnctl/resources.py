"""Memory and CPU amounts as Kubernetes writes them (256Mi, 1Gi, 500m, 2), checked once for both targets.

A cluster takes the text as a container's requests and limits; the local target turns it into
the Docker engine's numbers (bytes, nano-CPUs), so `--memory 256Mi --cpu 500m` means the same there.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from fnctl.errors import UsageError

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
MIN_MEMORY = 6 * 2**20              # the Docker engine refuses less


def memory_bytes(text: str, origin: str = "--memory") -> int:
    """`text` (e.g. 256Mi, 1G, 134217728) in bytes; UsageError (exit 2) when it is no memory quantity."""
    match = _MEMORY.match(str(text).strip())
    amount = _decimal(match.group(1)) if match else None
    if amount is None:
        raise UsageError(f"{origin} {text!r} is not a memory quantity",
                         "write it as Kubernetes does: a number with Ki, Mi, Gi (or k, M, G), e.g. 256Mi")
    unit = match.group(2) or ""
    value = int(amount * (_BINARY.get(unit) or _DECIMAL[unit]))
    if value < MIN_MEMORY:
        raise UsageError(f"{origin} {text!r} is less than 6Mi", "give a function at least 6Mi (e.g. 128Mi)")
    return value


def nano_cpus(text: str, origin: str = "--cpu") -> int:
    """`text` (e.g. 500m, 1, 1.5) in billionths of a CPU; UsageError (exit 2) when it is no CPU quantity."""
    match = _CPU.match(str(text).strip())
    amount = _decimal(match.group(1)) if match else None
    if amount is None or amount == 0:
        raise UsageError(f"{origin} {text!r} is not a CPU quantity",
                         "write it as Kubernetes does: CPUs (1, 1.5) or millicores (500m), more than 0")
    value = int(amount * (10**6 if match.group(2) else 10**9))
    if value < 10**6:
        raise UsageError(f"{origin} {text!r} is less than 1m", "give at least 1m (a thousandth of a CPU)")
    return value


def container_resources(memory: str | None, cpu: str | None) -> dict:
    """A Kubernetes container's `resources`: each given amount as both request and limit."""
    amounts = {key: value for key, value in (("memory", memory), ("cpu", cpu)) if value is not None}
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except InvalidOperation:
        return None
