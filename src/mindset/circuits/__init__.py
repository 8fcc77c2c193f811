"""Circuits: which components a capability depends on (ablation, causal tracing), protecting them while
training, and compression that knows which parts matter."""

from mindset.circuits.components import Component, list_components, parse_component
from mindset.circuits.importance import ChanceWarning, Importance, importance
from mindset.circuits.suite import Suite, build_suite, make_suite, score_suite

__all__ = [
    "ChanceWarning", "Component", "Importance", "Suite",
    "build_suite", "importance", "list_components", "make_suite", "parse_component", "score_suite",
]
