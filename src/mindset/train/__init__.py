"""Training: distill a modified model from the original, on Lightning, resumable, without pickle."""

from mindset.train.config import DistillConfig
from mindset.train.distill import DistillResult, distill, select_trainable

__all__ = ["DistillConfig", "DistillResult", "distill", "select_trainable"]
