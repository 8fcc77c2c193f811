"""Serving: an OpenAI-compatible HTTP API over any model mindset loads."""

from mindset.serve.app import create_app
from mindset.serve.background import BackgroundServer
from mindset.serve.engine import Engine
from mindset.serve.pool import ModelPool

__all__ = ["BackgroundServer", "Engine", "ModelPool", "create_app"]
