import uuid

import pytest

from tests.conftest import fnctl


@pytest.fixture
def service():
    """A unique local service name, deleted afterwards whatever happened."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    fnctl("delete", "service", name, "--local")
