"""A faster matrix-vector product for one-token decode steps on the CPU.

A decode step multiplies every weight matrix by a single vector. On the CPU, `F.linear` sends that to
the BLAS GEMV, which here reads weights at ~12 GB/s — well under memory bandwidth (~33 GB/s). Viewing
the weight (N, K) as a batch of P row blocks (P, N/P, K) and calling `bmm` against the vector broadcast
over the batch takes a batched kernel that streams the same bytes 2-3x faster
(`benchmarks/load_and_generate.py` measures the effect on whole generations).

Results are not bitwise those of `F.linear` (the dot products are summed in another order); they agree
to fp32 rounding (~1e-7 relative), and greedy text is checked to be identical in the benchmark and tests.
Only nn.Linear layers (not GPT-2's Conv1D) with single-row inputs on the CPU take this path; prefill
and GPU runs are untouched.

Whether it pays depends on the machine's BLAS: on another CPU of this project's machines, the plain GEMV
was 2x faster than this path (30.7 vs 15.0 tok/s on SmolLM2). So callers ask `pays(model)` first, which times
both paths once per weight shape, dtype and thread count on weights too big for the cache, and take the
faster.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

BLOCKS = 4  # row blocks a weight is split into; measured best among 2, 4, 8 on a 2-core machine


def _fast_forward(module: nn.Linear | SimpleNamespace):
    weight = module.weight.detach()
    n, k = weight.shape
    rows = n // BLOCKS
    blocks = weight[: rows * BLOCKS].view(BLOCKS, rows, k)  # a view: no copy of the weights
    rest = weight[rows * BLOCKS :]  # the n % BLOCKS rows that do not fill a block

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.numel() != k or x.dtype != weight.dtype:
            return F.linear(x, module.weight, module.bias)
        # (1, 1, K) -> (P, K, 1) with batch stride 0: no copy of x, weights read once
        y = torch.bmm(blocks, x.reshape(1, 1, k).mT.expand(BLOCKS, k, 1)).view(-1)
        if rest.shape[0]:
            y = torch.cat([y, rest @ x.reshape(k)])
        y = y.view(*x.shape[:-1], n)
        return y if module.bias is None else y + module.bias

    return forward


def eligible(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        type(module) is nn.Linear
        and weight is not None
        and weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and weight.is_contiguous()
        and weight.shape[0] >= BLOCKS
    )


def pays(model: nn.Module) -> bool:
    """Whether the batched matrix-vector path is faster here than F.linear, for the model's largest CPU Linear."""
    shapes = [(*m.weight.shape, m.weight.dtype) for m in model.modules() if eligible(m)]
    if not shapes:
        return False
    n, k, dtype = max(shapes, key=lambda s: s[0] * s[1])
    return _faster(n, k, dtype, torch.get_num_threads())


@functools.cache
def _faster(n: int, k: int, dtype: torch.dtype, threads: int) -> bool:
    copies = min(64, max(2, (48 << 20) // (n * k * torch.finfo(dtype).bits // 8)))  # ~48 MB of weights: streamed, not cached
    weights = [torch.empty(n, k, dtype=dtype).uniform_(-0.05, 0.05) for _ in range(copies)]
    x = torch.randn(1, k, dtype=dtype)
    fast = [_fast_forward(SimpleNamespace(weight=w, bias=None)) for w in weights]
    plain = [functools.partial(lambda x, w: F.linear(x, w), w=w) for w in weights]

    def best(calls) -> float:  # the fastest of 5 sweeps over every copy, after one warm-up sweep
        times = []
        for _ in range(6):
            start = time.perf_counter()
            for call in calls:
                call(x)
            times.append(time.perf_counter() - start)
        return min(times[1:])

    with torch.no_grad():
        return best(fast) < 0.9 * best(plain)


@contextmanager
def fast_cpu_decode(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Within the block, plain nn.Linear layers of `model` on the CPU use the batched matrix-vector path.

    Yields how many layers were switched. Restores the original forward on exit, even on error.
    """
    patched: list[nn.Linear] = []
    try:
        if enabled:
            for module in model.modules():
                if eligible(module) and "forward" not in module.__dict__:
                    module.forward = _fast_forward(module)
                    patched.append(module)
        yield len(patched)
    finally:
        for module in patched:
            del module.forward
