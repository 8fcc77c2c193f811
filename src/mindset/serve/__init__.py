"""Serving: an OpenAI-compatible HTTP API over any model mindset loads."""

from mindset.serve.app import create_app
from mindset.serve.background import BackgroundServer
from mindset.serve.engine import Engine

__all__ = ["BackgroundServer", "Engine", "create_app"]
