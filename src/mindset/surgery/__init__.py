"""Surgery: pure functions that take a model and return a changed one."""

from mindset.surgery.memory import attach_knn_lm, detach_knn_lm, ffn_to_memory, memory_layers, memory_to_ffn

__all__ = ["attach_knn_lm", "detach_knn_lm", "ffn_to_memory", "memory_layers", "memory_to_ffn"]
