"""Deploying (and deleting) every function of a serverless.yaml manifest (fnctl.manifest).

    results = deploy_all(functions, make_target, reporter, concurrency=3, on_result=show)
    removed = prune(manifest, make_target())      # services of its manifest service it no longer lists

Each function goes through the one pipeline (`Target.deploy`), at most `concurrency` at a
time, on a target of its own (its own engine or API connection). What they share is made
safe here: one runtime image per template is built once (its builds run one at a time), and
on the local target roll-outs run one at a time (each picks a free port). A failure is a
result like any other: the other functions still complete.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fnctl import labels
from fnctl.errors import FnctlError, Interrupted, NotFoundError
from fnctl.manifest import Function, Manifest
from fnctl.model import DeployResult, Reporter

if TYPE_CHECKING:
    from fnctl.app import Target


@dataclass
class Outcome:
    function: str                      # as the manifest names it
    service: str
    result: DeployResult | None = None
    error: FnctlError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        body: dict = {"function": self.function, "name": self.service, "ok": self.ok}
        if self.result is not None:
            body.update(self.result.to_dict())
        if self.error is not None:
            body["error"] = self.error.to_dict()
        return body


class Prefixed:
    """A Reporter that says which function each line is about (deploys run side by side)."""

    def __init__(self, inner: Reporter, name: str):
        self.inner, self.name = inner, name

    def phase(self, name: str, detail: str = "") -> None:
        self.inner.phase(name, f"[{self.name}] {detail}")

    def log(self, line: str) -> None:
        self.inner.log(f"[{self.name}] {line}")

    def note(self, text: str) -> None:
        self.inner.note(f"[{self.name}] {text}")


class _OneAtATime:
    """Delegates to `inner`, running `method` under a shared lock."""

    def __init__(self, inner, method: str, lock: threading.Lock):
        self._inner, self._method, self._lock = inner, method, lock

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def locked(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)
        return locked


def deploy_all(functions: list[Function], make_target: Callable[[], Target], reporter: Reporter,
               concurrency: int = 3, on_result: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Deploy `functions`, at most `concurrency` at once; every outcome, in the manifest's order."""
    runtime_lock, roll_out_lock = threading.Lock(), threading.Lock()

    def one(function: Function) -> Outcome:
        outcome = Outcome(function.name, function.request.name)
        try:
            target = make_target()
            target.builder = _OneAtATime(target.builder, "runtime_image", runtime_lock)
            if target.name == "local":
                target.deployer = _OneAtATime(target.deployer, "roll_out", roll_out_lock)
            outcome.result = target.deploy(function.request, Prefixed(reporter, function.name))
        except FnctlError as e:
            outcome.error = e
        return outcome

    outcomes: dict[str, Outcome] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fnctl-deploy")
    try:
        futures = [pool.submit(one, f) for f in functions]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[outcome.function] = outcome
            if on_result:
                on_result(outcome)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise Interrupted("interrupted: the deploys not yet started were cancelled; those under way finish or "
                          "clean up after themselves", "run the deploy again to finish the rest") from None
    pool.shutdown()
    return [outcomes[f.name] for f in functions]


def stale(manifest: Manifest, target: Target) -> list[str]:
    """Services carrying the manifest's service label that the manifest no longer lists."""
    listed = {f.request.name for f in manifest.functions}
    return [name for name in target.labelled(labels.MANIFEST, manifest.service) if name not in listed]


def delete_all(names: list[str], target: Target, on_result: Callable[[str, FnctlError | None], None]) -> bool:
    """Delete each service; one not found counts as done. True when every delete worked."""
    ok = True
    for name in names:
        try:
            target.delete(name)
            on_result(name, None)
        except NotFoundError as e:
            on_result(name, e)
        except FnctlError as e:
            ok = False
            on_result(name, e)
    return ok
