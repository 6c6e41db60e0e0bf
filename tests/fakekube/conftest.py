import os
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.fakekube import FakeCluster  # noqa: E402


@pytest.fixture
def cluster():
    with FakeCluster(namespace="default", domain="example.com") as c:
        c.kubelet.run_seconds = 0.1
        c.knative.delay = 0.05
        yield c


@pytest.fixture
def api(cluster):
    client = cluster.api_client()
    yield client
    client.close()
