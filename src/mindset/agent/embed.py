"""Embeddings for recall: `embed(texts) -> Tensor (N, D)`, any callable with a `name` works.

The default reads the chat model's own hidden states through the map's encoder (mindset.map.encode's
hidden_states): the mean over a text's tokens of a middle layer's states. The first position is left out
of the mean when there are others: it is where models park their attention sink, with a norm that would
swamp every other token's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mindset.errors import MindsetError
from mindset.map.encode import hidden_states, resolve_layer
from mindset.models.anatomy import n_layers

MAX_TOKENS = 128  # a memory's first tokens are enough to say what it is about


class HiddenStateEmbedder:
    """Mean-pooled hidden states of one layer (default: the middle one) of a LoadedModel."""

    def __init__(self, loaded, layer: int | None = None, max_tokens: int = MAX_TOKENS):
        self.loaded = loaded
        self.layer = resolve_layer(loaded.model, n_layers(loaded.model) // 2 if layer is None else layer)
        self.max_tokens = max_tokens
        self.name = f"{loaded.name} layer {self.layer} mean"

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            raise MindsetError("nothing to embed: the list of texts is empty")
        tokenizer = self.loaded.tokenizer
        fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        id_lists = [list(tokenizer(text, add_special_tokens=False)["input_ids"])[: self.max_tokens] or [fallback] for text in texts]
        _, paths = hidden_states(self.loaded.model, id_lists, self.layer, paths_from=[0] * len(id_lists))
        rows = [torch.from_numpy(paths[i][1:] if len(paths[i]) > 1 else paths[i]).mean(0) for i in range(len(id_lists))]
        return torch.stack(rows).float()
