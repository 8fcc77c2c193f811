"""Surgery: pure functions that take a model and return a changed one."""

from mindset.surgery.depth import drop_layers, duplicate_layers, insert_layers, move_layer
from mindset.surgery.feedback import feedback_pairs, layerwise_feedback
from mindset.surgery.ffn_width import narrow_ffn, widen_ffn
from mindset.surgery.gates import gate_report, gate_summary, grow_saturated, head_gates, prune_closed
from mindset.surgery.heads import add_heads, remove_heads
from mindset.surgery.memory import attach_knn_lm, detach_knn_lm, ffn_to_memory, memory_layers, memory_to_ffn
from mindset.surgery.shim import embedding_shim, fold_embedding_shim, shim_parameters

__all__ = [
    "add_heads", "attach_knn_lm", "detach_knn_lm", "drop_layers", "duplicate_layers", "ffn_to_memory", "insert_layers",
    "memory_layers", "memory_to_ffn", "move_layer", "narrow_ffn", "remove_heads", "widen_ffn",
    "feedback_pairs", "layerwise_feedback",
    "embedding_shim", "fold_embedding_shim", "shim_parameters",
    "gate_report", "gate_summary", "grow_saturated", "head_gates", "prune_closed",
]  # fmt: skip
