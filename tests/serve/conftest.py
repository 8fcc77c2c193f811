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


@pytest.fixture
def tiny_served(tiny):
    """(server, loaded) for each tiny model (tiny-llama and tiny-gpt2) without an API key."""
    with LiveServer(create_app(tiny)) as server:
        yield server, tiny
