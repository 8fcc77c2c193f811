"""Custom modules folded into plain ones before export, or refused by name.

GGUF (and llama.cpp) know only the architecture's own tensors. A module surgery put in a model (a head
gate, an embedding shim, a memory) may say how to compute exactly the same function with a plain module:
`mindset_fold() -> nn.Module | None` (the custom-module contract in mindset.models.custom). Export folds
every one that can on a copy of the model, so the user's model is never changed, and refuses the rest
in one line naming each by path and kind.
"""

from __future__ import annotations

import copy

from torch import nn

from mindset.errors import MindsetError
from mindset.models.custom import custom_modules, set_module

MAX_ROUNDS = 8  # a fold may return a module holding another custom module; never loop for ever


def fold_of(module: nn.Module) -> nn.Module | None:
    """The plain module `module` folds into, or None when it cannot fold exactly (no mindset_fold, or None)."""
    fold = getattr(module, "mindset_fold", None)
    return fold() if callable(fold) else None


def describe(path: str, module: nn.Module) -> str:
    kind = getattr(module, "mindset_restorer", None) or type(module).__name__
    return f"{path} ({kind})"


def refuse(unfoldable: list[tuple[str, nn.Module]]) -> None:
    names = ", ".join(describe(p, m) for p, m in unfoldable)
    memory = any("memory" in describe(p, m).lower() for p, m in unfoldable)
    hint = "; convert memories back first with mindset.surgery.memory_to_ffn" if memory else ""
    raise MindsetError(f"GGUF cannot express {names}: surgery added {'it' if len(unfoldable) == 1 else 'them'} and no exact fold into plain weights exists{hint}")


def folded(model: nn.Module) -> nn.Module:
    """`model` itself when it holds no custom module; else a copy with every custom module replaced by its
    fold. Modules that cannot fold make it one MindsetError naming all of them."""
    if not custom_modules(model):
        return model
    model = copy.deepcopy(model)  # folds may reuse or edit their inner modules: only the copy sees that
    for _ in range(MAX_ROUNDS):
        found = custom_modules(model)
        if not found:
            return model
        plain = [(p, m, fold_of(m)) for p, m in found]
        unfoldable = [(p, m) for p, m, f in plain if f is None]
        if unfoldable:
            refuse(unfoldable)
        for path, _, module in plain:
            set_module(model, path, module)
    raise MindsetError(f"custom modules still fold into custom modules after {MAX_ROUNDS} rounds: {', '.join(describe(p, m) for p, m in custom_modules(model))}")
