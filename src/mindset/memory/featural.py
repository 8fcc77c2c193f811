"""Featural memory: an FFN block as a top-k lookup over its own d_ff slots.

For each token x the block is  out = sum_i a_i(x) v_i (+ output bias): slot i has a key (what decides
a_i) and a value v_i (a column of the output projection). We keep the k slots with the largest score
and compute the output from those only.

The score is each slot's contribution to the output, |a_i| * ||v_i||: the amount by which dropping the
slot can change the output, so keeping the k largest minimises the triangle-inequality bound
||sum of dropped a_i v_i|| <= sum of dropped |a_i| ||v_i||. ||v_i|| is fixed per slot, cached.
- score "exact" (default): a_i from the block's own key projections (GPT-2: act(k_i . x + b_i);
  gated: act(g_i . x) * (u_i . x)), computed for every slot; only the value side is restricted to k.
- score "bound" (gated blocks only differ): computes the gate for every slot and bounds the up factor
  by Cauchy-Schwarz, |u_i . x + c_i| <= ||u_i|| ||x|| + |c_i|; the up projection is then computed for
  the k chosen slots only (rows gathered per token). Cheaper in FLOPs, but the gather costs memory
  traffic and the selection is worse: benchmarks/memory_tradeoff.py measured it slower and with ~2x
  the perplexity at k=32 on SmolLM2, hence not the default.
At k = d_ff every slot is kept and the block equals the dense one whatever the score (tested to 1e-5).

Two ways to compute the chosen slots, same result: "gather" (per token, a weighted sum of the k value
rows, F.embedding_bag: cost grows with k) and "masked" (the dense output matmul with the unchosen
slots zeroed: cost of the dense block, and bit-identical to it at k = d_ff). "auto" gathers when it
pays on CPU: always for a few tokens at a time (decoding reads k weight rows instead of all of them),
and for long inputs only when k <= d_ff / 32.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from mindset.errors import MindsetError
from mindset.memory.ffn import AdoptedFFN, ffn_layout, ffn_slots

SCORES = ("bound", "exact")
PATHS = ("auto", "gather", "masked")
GATHER_MAX_FRACTION = 1 / 32  # for long inputs; measured on CPU (benchmarks/memory_tradeoff.py): k=128 of 1536 gathered lost
GATHER_MAX_TOKENS = 8  # up to this many tokens per call (decoding) gathering wins at any k below d_ff / 2
GATHER_CHUNK = 1 << 22  # gathered (tokens x k x d) elements per step, to bound memory


class FeaturalMemory(AdoptedFFN):
    mindset_component = "memory"
    mindset_restorer = "featural_memory"

    def __init__(self, mlp, k: int, *, score: Literal["bound", "exact"] = "exact", path: Literal["auto", "gather", "masked"] = "auto") -> None:
        if ffn_layout(mlp) is None:
            raise MindsetError(f"{type(mlp).__name__} is not a feed-forward layout featural memory supports (gated gate/up/down, or GPT-2 c_fc/c_proj)")
        slots = ffn_slots(mlp)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= slots:
            raise MindsetError(f"k must be between 1 and the block's {slots} slots, got {k!r}")
        if score not in SCORES:
            raise MindsetError(f"unknown featural score {score!r}; use one of {', '.join(SCORES)}")
        if path not in PATHS:
            raise MindsetError(f"unknown featural path {path!r}; use one of {', '.join(PATHS)}")
        super().__init__(mlp)
        self.k, self.score, self.path, self.slots = k, score, path, slots
        self._cache: dict[str, tuple] = {}

    def extra_repr(self) -> str:
        return f"k={self.k}, slots={self.slots}, score={self.score}, path={self.path}, layout={self.layout}"

    # ---- persistence (see mindset.models.custom) -------------------------------------------------
    def mindset_config(self) -> dict:
        return {"k": self.k, "score": self.score, "path": self.path}

    def mindset_extra_keys(self) -> list[str]:
        return []  # only the original weights, under their original names

    def mindset_save_extra(self, folder) -> None:
        pass

    # ---- weights seen as slot tables ---------------------------------------------------------------
    def _derived(self, name: str, weight: torch.Tensor, make):
        """A tensor derived from a weight, recomputed when the weight changes (in place or replaced)."""
        if torch.is_grad_enabled() and weight.requires_grad:
            return make()  # training: keep the autograd path to the weight
        stamp = (weight.data_ptr(), _version(weight), weight.dtype, weight.device)
        held = self._cache.get(name)
        if held is None or held[0] != stamp:
            with torch.inference_mode(False), torch.no_grad():  # a normal tensor, usable outside inference mode too
                held = (stamp, make().contiguous())
            self._cache[name] = held
        return held[1]

    def value_rows(self) -> torch.Tensor:  # (d_ff, d)
        if self.layout == "gated":
            w = self.down_proj.weight
            return self._derived("values", w, lambda: w.t())
        return self.c_proj.weight

    def value_norms(self) -> torch.Tensor:  # (d_ff,)
        w = self.down_proj.weight if self.layout == "gated" else self.c_proj.weight
        return self._derived("value_norms", w, lambda: w.norm(dim=0 if self.layout == "gated" else 1))

    # ---- forward ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # (N, d)
        out = self._gated(flat) if self.layout == "gated" else self._conv1d(flat)
        return out.reshape(*shape[:-1], out.shape[-1])

    def _use_gather(self, tokens: int) -> bool:
        if self.path != "auto":
            return self.path == "gather"
        if tokens <= GATHER_MAX_TOKENS:
            return 2 * self.k <= self.slots
        return self.k <= GATHER_MAX_FRACTION * self.slots

    def _conv1d(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(torch.addmm(self.c_fc.bias, x, self.c_fc.weight))  # (N, F): the key matches
        idx = torch.topk(a.abs() * self.value_norms(), self.k, dim=1).indices  # (N, k)
        out = self._combine(a.gather(1, idx), idx) + self.c_proj.bias
        return self.dropout(out)

    def _gated(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_proj, self.up_proj
        g = self.act_fn(gate(x))  # (N, F)
        if self.score == "exact" or not self._use_gather(x.shape[0]):
            a = g * up(x)  # every slot's coefficient
            score = a.abs() if self.score == "exact" else g.abs() * self._up_bound(x)
            idx = torch.topk(score * self.value_norms(), self.k, dim=1).indices
            coeff = a.gather(1, idx)
        else:
            idx = torch.topk(g.abs() * self._up_bound(x) * self.value_norms(), self.k, dim=1).indices
            u = self._gathered_dot(x, up.weight, idx)  # (N, k): up projections of the chosen slots only
            if up.bias is not None:
                u = u + up.bias[idx]
            coeff = g.gather(1, idx) * u
        out = self._combine(coeff, idx)
        return out + self.down_proj.bias if self.down_proj.bias is not None else out

    def _up_bound(self, x: torch.Tensor) -> torch.Tensor:
        """||u_i|| ||x|| + |c_i| >= |u_i . x + c_i| for every slot: (N, F)."""
        w = self.up_proj.weight
        norms = self._derived("up_norms", w, lambda: w.norm(dim=1))
        bound = x.norm(dim=1, keepdim=True) * norms
        return bound + self.up_proj.bias.abs() if self.up_proj.bias is not None else bound

    def _combine(self, coeff: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """sum_j coeff[n, j] * v[idx[n, j]] for each token n: (N, d)."""
        values = self.value_rows()
        if self._use_gather(coeff.shape[0]):
            # embedding_bag sums the weighted rows without materialising (N, k, d)
            return F.embedding_bag(idx, values, per_sample_weights=coeff.to(values.dtype), mode="sum")
        sparse = torch.zeros(coeff.shape[0], self.slots, dtype=coeff.dtype, device=coeff.device).scatter(1, idx, coeff)
        # the dense block's own matmul, so that at k = d_ff the result is the dense one bit for bit
        if self.layout == "gated":
            return F.linear(sparse, self.down_proj.weight)
        return sparse @ self.c_proj.weight

    @staticmethod
    def _gathered_dot(x: torch.Tensor, rows: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """(rows[idx[n, j]] . x[n]) for each n, j: (N, k), in chunks of tokens to bound memory."""
        n, k = idx.shape
        step = max(1, GATHER_CHUNK // max(1, k * x.shape[1]))
        parts = [torch.bmm(rows[idx[i : i + step]], x[i : i + step, :, None]).squeeze(-1) for i in range(0, n, step)]
        return torch.cat(parts) if len(parts) > 1 else parts[0]


def _version(weight: torch.Tensor) -> int:
    try:
        return weight._version
    except RuntimeError:  # an inference tensor cannot change in place outside inference mode
        return -1
