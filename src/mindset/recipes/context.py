"""Compatibility: the run context moved to `mindset.runcontext` (below the capabilities that take it)."""

from mindset.runcontext import RunContext

__all__ = ["RunContext"]
