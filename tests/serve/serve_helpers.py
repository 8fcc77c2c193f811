"""Helpers for server tests: a live server on loopback, and a way to slow a model down."""

import time

from mindset.serve.background import BackgroundServer as LiveServer  # noqa: F401


def slow_down(loaded, seconds: float) -> None:
    """Make each forward pass take at least `seconds`, so tests can act while a generation runs."""
    model = loaded.model
    original = model.forward

    def forward(*args, **kwargs):
        time.sleep(seconds)
        return original(*args, **kwargs)

    model.forward = forward


def api(server):
    """The official openai client pointed at a LiveServer."""
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)
