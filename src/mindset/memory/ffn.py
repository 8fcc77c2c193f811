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

GATED = ("gate_proj", "up_proj", "down_proj")


def ffn_layout(mlp: nn.Module) -> str | None:
    if all(isinstance(getattr(mlp, name, None), nn.Linear) for name in GATED) and callable(getattr(mlp, "act_fn", None)):
        return "gated"
    fc, proj = getattr(mlp, "c_fc", None), getattr(mlp, "c_proj", None)
    if type(fc).__name__ == "Conv1D" and type(proj).__name__ == "Conv1D" and callable(getattr(mlp, "act", None)):
        return "conv1d"
    return None


def ffn_slots(mlp: nn.Module) -> int:
    """d_ff: how many key-value slots the block holds."""
    layout = ffn_layout(mlp)
    if layout == "gated":
        return mlp.gate_proj.out_features
    if layout == "conv1d":
        return mlp.c_fc.weight.shape[1]
    raise ValueError(f"unsupported feed-forward block {type(mlp).__name__}")


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
