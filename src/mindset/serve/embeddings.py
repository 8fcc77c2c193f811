"""/v1/embeddings: a text's hidden state at one layer, computed by the map's own encoder.

Texts are tokenized as the map tokenizes an item's prompt (`tokenize_item`: the tokenizer's special tokens
included) and encoded by `mindset.map.encode.hidden_states`, in its length-sorted, padded batches: the last
token's state is exactly the vector `mindset map` places. Mean pooling averages the same states over every
token. Vectors are the raw states (OpenAI's are unit length; `normalize: true` gives that). An input longer
than the context is an error, not silently cut (the map keeps its end; a client asking for an embedding
would not expect part of its text to be dropped).
"""

from __future__ import annotations

import base64

import numpy as np

from mindset.errors import MindsetError
from mindset.map.encode import hidden_states, resolve_layer, tokenize_item
from mindset.models.anatomy import text_config


def token_lists(loaded, inputs: list[str | list[int]]) -> list[list[int]]:
    """Token ids of each input (texts through the map's tokenization); MindsetError for one that cannot be encoded."""
    vocab = len(loaded.tokenizer)
    out = []
    for n, item in enumerate(inputs):
        if isinstance(item, str):
            if not item:
                raise MindsetError(f"input {n} is an empty string; every input needs some text")
            ids = tokenize_item(loaded.tokenizer, item).ids
        else:
            ids = list(item)
            if not ids:
                raise MindsetError(f"input {n} is an empty list of token ids")
            if max(ids) >= vocab:
                raise MindsetError(f"input {n} has token id {max(ids)}; this model's ids are 0 to {vocab - 1}")
        if len(ids) > loaded.context_length:
            raise MindsetError(f"input {n} is {len(ids)} tokens long; this model reads at most {loaded.context_length}")
        out.append(ids)
    return out


def embed(loaded, id_lists: list[list[int]], layer: int | None, pooling: str, normalize: bool = False) -> np.ndarray:
    """(N, hidden) float32 vectors: the last token's state (the map's encoding) or the mean over tokens."""
    index = resolve_layer(loaded.model, layer)
    if pooling == "mean":
        _, paths = hidden_states(loaded.model, id_lists, index, paths_from=[0] * len(id_lists))
        vectors = np.stack([paths[i].mean(axis=0) for i in range(len(id_lists))]).astype(np.float32)
    else:
        vectors, _ = hidden_states(loaded.model, id_lists, index)
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
    return vectors


def check_dimensions(loaded, dimensions: int | None) -> None:
    hidden = int(text_config(loaded.model.config).hidden_size)
    if dimensions is not None and dimensions != hidden:
        raise MindsetError(f"dimensions {dimensions}: this model's embeddings have {hidden} (they are not shortened)")


def encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """A vector as JSON floats, or base64 of its little-endian float32 bytes (what the openai client decodes)."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(np.float32).tolist()


def response(model_name: str, vectors: np.ndarray, encoding_format: str, prompt_tokens: int) -> dict:
    data = [{"object": "embedding", "index": i, "embedding": encode_vector(v, encoding_format)} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model_name, "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
