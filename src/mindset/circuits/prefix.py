"""Prefix reuse for batched ablation: the layers below every ablated component run once, not once per replica.

A batched ablation pass (`ablation.ablated_rows`) feeds the model `replicas` identical copies of its
inputs, replica-major (rows r*B ... r*B+B-1 are replica r). Ablating a component of layer L changes nothing
below layer L, so the replicas' rows are identical there: `shared_prefix(model, L, replicas)` makes
decoder layers 0 ... L-1 run on replica 0's B rows only, and layer L's input repeated back to all
`replicas * B` rows, so layers L ... and the unembedding see exactly the batch they would have seen.

Why it is exact: the rows dropped below L are copies of the rows kept (the model is causal and rows do not
mix), and a layer's KV cache below L keeps B rows, which is what the next pass (`_score_shared`'s
continuation pass, whose inputs are replica-major too) reads after the same slicing. The numbers are those
of the full batch up to float rounding of a smaller matmul (tested to 1e-5 against one-at-a-time).

Which tensors are sliced below L: the hidden states, and every other input of the layer (positional or
keyword, inside tuples such as rotary (cos, sin)) that has at least two dimensions and the full batch's
row count (attention masks, per-row position embeddings); 1-D tensors (cache positions) and caches are left
as they are. One forward-pass state is kept per context: nothing here is thread-safe, as no hook is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from mindset.models.anatomy import decoder_layers


def _slice_batch(value, full: int, keep: int):
    """value with its first `keep` rows where it is a batch-shaped tensor of `full` rows (tuples recursed)."""
    if isinstance(value, torch.Tensor):
        return value[:keep] if value.dim() >= 2 and value.shape[0] == full else value
    if isinstance(value, tuple):
        return tuple(_slice_batch(v, full, keep) for v in value)
    return value


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def shared_prefix(model, start_layer: int, replicas: int) -> Iterator[None]:
    """Within the block, every forward pass's batch is `replicas` identical replicas (replica-major) up to
    decoder layer `start_layer`, and layers below it run on the first replica's rows only (module docstring).
    A no-op for one replica or `start_layer` 0."""
    layers = decoder_layers(model)
    if replicas <= 1 or start_layer <= 0:
        yield
        return
    if start_layer >= len(layers):
        raise ValueError(f"start layer {start_layer} is past the model's {len(layers)} decoder layers")
    state = {"full": 0, "keep": 0}

    def below(module, args, kwargs, first: bool):
        if first:  # the pass's real batch: what the embeddings produced
            full = _hidden(args, kwargs).shape[0]
            if full % replicas:
                raise ValueError(f"a batch of {full} rows is not {replicas} replicas")
            state["full"], state["keep"] = full, full // replicas
        full, keep = state["full"], state["keep"]
        args = tuple(_slice_batch(a, full, keep) for a in args)
        kwargs = {k: _slice_batch(v, full, keep) for k, v in kwargs.items()}
        return args, kwargs

    def at_start(module, args, kwargs):
        hidden = _hidden(args, kwargs)
        if hidden.shape[0] != state["keep"]:
            raise RuntimeError(f"layer {start_layer} got {hidden.shape[0]} rows, expected the {state['keep']} of one replica")
        return _with_hidden(args, kwargs, hidden.repeat(replicas, *[1] * (hidden.dim() - 1)))

    handles = [layers[i].register_forward_pre_hook(lambda m, a, k, first=(i == 0): below(m, a, k, first), with_kwargs=True, prepend=True)
               for i in range(start_layer)]
    handles.append(layers[start_layer].register_forward_pre_hook(at_start, with_kwargs=True, prepend=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
