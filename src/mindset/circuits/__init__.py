"""Circuits: which components a capability depends on (ablation, causal tracing), protecting them while
training, and compression that knows which parts matter."""

from mindset.circuits.components import Component, list_components, parse_component
from mindset.circuits.importance import ChanceWarning, Importance, importance
from mindset.circuits.protect import Protection, ProtectionConfig
from mindset.circuits.protect_options import ProtectOptions, protection_from_options
from mindset.circuits.prune import Scores, attribution_scores, magnitude_scores, prune
from mindset.circuits.quantize import Int8Linear, critical_blocks, quantize_blocks, weight_bytes
from mindset.circuits.suite import Suite, build_suite, make_suite, score_suite
from mindset.circuits.trace import CausalTrace, causal_trace

__all__ = [
    "CausalTrace", "ChanceWarning", "Component", "Importance", "Int8Linear", "ProtectOptions", "Protection", "ProtectionConfig",
    "Scores", "Suite", "attribution_scores", "build_suite", "causal_trace", "critical_blocks", "importance", "list_components",
    "magnitude_scores", "make_suite", "parse_component", "protection_from_options", "prune", "quantize_blocks", "score_suite", "weight_bytes",
]
