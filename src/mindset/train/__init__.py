"""Training: distill a modified model from the original, or pretrain one from random initialization (variants
as surgery at init), on Lightning, resumable, without pickle; compare pretraining runs."""

from mindset.train.config import DistillConfig
from mindset.train.distill import DistillResult, distill, select_trainable
from mindset.train.pretrain import PretrainResult, pretrain, read_config
from mindset.train.pretrain_config import PretrainConfig

__all__ = ["DistillConfig", "DistillResult", "PretrainConfig", "PretrainResult", "distill", "pretrain", "read_config", "select_trainable"]
