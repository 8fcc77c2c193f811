"""Feed-forward blocks seen as key-value memories: which layouts we know, and a base that adopts one.

Layouts are recognised by their modules, not by model names:
- "gated" (Llama, Mistral, Qwen2, SmolLM2...): nn.Linear gate_proj, up_proj, down_proj and act_fn;
   out = W_down (act(W_gate x) * W_up x). Slot i: key = gate row i (and up row i), value = down column i.
- "conv1d" (GPT-2): HF Conv1D c_fc, c_proj (weights stored input-major) and act;
   out = W_proj^T act(W_fc^T x + b_fc) + b_proj. Slot i: key = c_fc column i, value = c_proj row i.
"""

from __future__ import annotations

import torch
from torch import nn

from mindset.models.anatomy import describe_ffn, is_conv1d

GATED = ("gate_proj", "up_proj", "down_proj")
CONV1D = (None, "c_fc", "c_proj")


def ffn_layout(mlp: nn.Module) -> str | None:
    """Which of the two layouts memory layers support this block has, if any. Anatomy finds the gate, up
    and down projections; memory layers then read them by these names, so the names must match too."""
    ffn = describe_ffn(mlp)
    names = {id(m): n for n, m in mlp.named_children()}
    spelled = tuple(names.get(id(m)) if m is not None else None for m in (ffn.gate, ffn.up, ffn.down))
    if spelled == GATED and all(isinstance(m, nn.Linear) for m in ffn.inputs + [ffn.down]) and callable(getattr(mlp, "act_fn", None)):
        return "gated"
    if spelled == CONV1D and all(is_conv1d(m) for m in (ffn.up, ffn.down)) and callable(getattr(mlp, "act", None)):
        return "conv1d"
    return None


def ffn_slots(mlp: nn.Module) -> int:
    """d_ff: how many key-value slots the block holds."""
    if ffn_layout(mlp) is None:
        raise ValueError(f"unsupported feed-forward block {type(mlp).__name__}")
    return describe_ffn(mlp).d_ff


class AdoptedFFN(nn.Module):
    """Holds an FFN block's own submodules and attributes under their own names, and can run its forward.

    Keeping the names keeps the weight names (`...mlp.gate_proj.weight`), so the saved weights are the
    original model's and plain transformers loads them as the dense block.
    """

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.dense_class = type(mlp)
        self.adopted_attributes = [n for n in vars(mlp) if not n.startswith("_") and n != "training"]
        for name in self.adopted_attributes:
            setattr(self, name, getattr(mlp, name))
        self.adopted_children = [n for n, _ in mlp.named_children()]
        for name, child in mlp.named_children():
            self.add_module(name, child)
        self.adopted_parameters = [n for n, _ in mlp.named_parameters(recurse=False)]
        for name, param in mlp.named_parameters(recurse=False):
            self.register_parameter(name, param)
        self.layout = ffn_layout(mlp)
        self.train(mlp.training)

    def dense_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_class.forward(self, x)

    def to_dense(self) -> nn.Module:
        """The original block again, holding the same (possibly since trained) weights."""
        mlp = self.dense_class.__new__(self.dense_class)
        nn.Module.__init__(mlp)
        for name in self.adopted_attributes:
            setattr(mlp, name, getattr(self, name))
        for name in self.adopted_children:
            mlp.add_module(name, getattr(self, name))
        for name in self.adopted_parameters:
            mlp.register_parameter(name, getattr(self, name))
        mlp.train(self.training)
        return mlp
