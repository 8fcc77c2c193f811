import pytest
from serve_helpers import LiveServer

from mindset.models import load
from mindset.serve import create_app


@pytest.fixture
def served():
    """(server, loaded) for tiny-llama without an API key."""
    loaded = load("tiny-llama")
    with LiveServer(create_app(loaded)) as server:
        yield server, loaded
