"""fnctl.fleet: at most N deploys at once, every outcome in the manifest's order, a failure stops nothing,
and the shared steps (runtime images; local roll-outs) run one at a time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fnctl import fleet
from fnctl.errors import BuildError
from fnctl.manifest import Function
from fnctl.model import DeployRequest, DeployResult, ServiceInfo
from tests.conftest import Recorder


@dataclass
class Counter:
    lock: threading.Lock = field(default_factory=threading.Lock)
    now: int = 0
    most: int = 0
    runtime_now: int = 0
    runtime_most: int = 0


class FakeBuilder:
    def __init__(self, counter: Counter):
        self.counter = counter

    def runtime_image(self):
        with self.counter.lock:
            self.counter.runtime_now += 1
            self.counter.runtime_most = max(self.counter.runtime_most, self.counter.runtime_now)
        time.sleep(0.02)
        with self.counter.lock:
            self.counter.runtime_now -= 1


@dataclass
class FakeTarget:
    counter: Counter
    name: str = "local"
    builder: object = None
    deployer: object = None

    def deploy(self, request: DeployRequest, reporter) -> DeployResult:
        with self.counter.lock:
            self.counter.now += 1
            self.counter.most = max(self.counter.most, self.counter.now)
        try:
            self.builder.runtime_image()
            time.sleep(0.05 if request.name != "demo-a" else 0.15)     # a finishes last
            if request.name == "demo-bad":
                raise BuildError("the image build failed", "fix it")
            reporter.phase("build", "built")
            return DeployResult(ServiceInfo(request.name, "local", url=f"http://{request.name}"))
        finally:
            with self.counter.lock:
                self.counter.now -= 1


def _functions(*names: str) -> list[Function]:
    return [Function(n, DeployRequest(f"demo-{n}", "src", "bash"), "serverless.yaml", i + 1)
            for i, n in enumerate(names)]


def test_at_most_n_at_once_in_order_and_failures_stop_nothing():
    counter = Counter()
    seen: list[str] = []
    recorder = Recorder()

    def make():
        return FakeTarget(counter, builder=FakeBuilder(counter))

    outcomes = fleet.deploy_all(_functions("a", "b", "bad", "c", "d", "e"), make, recorder, concurrency=2,
                                on_result=lambda o: seen.append(o.function))
    assert counter.most == 2                        # the limit was reached, never passed
    assert counter.runtime_most == 1                # runtime images one at a time
    assert [o.function for o in outcomes] == ["a", "b", "bad", "c", "d", "e"]
    assert seen.index("b") < seen.index("a")         # reported as each finishes, a (the slowest) later
    failed = [o for o in outcomes if not o.ok]
    assert [o.function for o in failed] == ["bad"] and failed[0].error.exit_code == 5
    assert all(o.result.service.url == f"http://{o.service}" for o in outcomes if o.ok)
    assert failed[0].to_dict()["error"]["message"] == "the image build failed"
    assert any(d.startswith("[a] ") for d in recorder.details)       # progress says which function
