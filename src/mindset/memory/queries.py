"""The query each memory store of a model sees at the last position of a text: what `mindset memory search`
and the UI's memory search look up."""

from __future__ import annotations

import torch
from torch import nn

from mindset.memory.associative import AssociativeMemory
from mindset.memory.knn_lm import KnnLMHead, final_hidden_states


@torch.no_grad()
def store_queries(loaded, text: str) -> dict[str, tuple[object, torch.Tensor, nn.Module]]:
    """{module path: (store, query (1, d), module)} for every associative memory layer (its input at the last
    token, caught by a pre-hook during one forward) and a kNN-LM head (the final hidden state there)."""
    model = loaded.model
    ids = torch.tensor([loaded.tokenizer(text, add_special_tokens=False)["input_ids"]], device=loaded.device)
    queries: dict[str, tuple] = {}

    def catch(name: str):
        return lambda module, args: queries.__setitem__(name, (module.store, args[0][0, -1:], module))

    hooks = [m.register_forward_pre_hook(catch(name)) for name, m in model.named_modules() if isinstance(m, AssociativeMemory)]
    try:
        hidden = final_hidden_states(model, ids)[0, -1:]
    finally:
        for hook in hooks:
            hook.remove()
    head = model.get_output_embeddings()
    if isinstance(head, KnnLMHead):
        path = next(name for name, m in model.named_modules() if m is head)
        queries[path] = (head.store, hidden, head)
    return queries
