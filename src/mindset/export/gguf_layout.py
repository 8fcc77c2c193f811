"""Which llama.cpp architecture a model's GGUF declares, and its per-layer head counts and FFN widths.

llama.cpp's loader reads `{arch}.attention.head_count`, `.head_count_kv` and `.feed_forward_length` as a
scalar or a per-layer array for every architecture (llama_model::load_hparams, get_key_or_arr into
hparams.n_head_arr / n_head_kv_arr / n_ff_arr). What uses them per layer is the architecture's code:
- `llama` (src/models/llama.cpp, llama_model_llama::load_arch_tensors and its graph) takes n_head,
  n_head_kv and n_ff once, from LLAMA_LOAD_LOCALS / llm_graph_context, i.e. hparams.n_head() = layer 0's,
  and sizes every layer's tensors and attention with those: a layer that differs fails to load;
- `deci` (src/models/deci.cpp, llama_model_deci, for Nemotron-NAS) reads hparams.n_head(il),
  n_head_kv(il), n_ff(il) and n_embd_k_gqa(il) per layer for the tensors and in the graph; its tensors are
  named like llama's, its rotary layout and SiLU-gated FFN are llama's.
So uniform models stay `llama` (what transformers and most tools read) and models whose layers differ are
written as `deci`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mindset.errors import MindsetError
from mindset.models.anatomy import blocks
from mindset.models.shapes import block_shape


@dataclass(frozen=True)
class Layout:
    arch: str  # "llama" when every layer has the same shape, else "deci"
    head_dim: int
    n_heads: list[int]
    n_kv_heads: list[int]
    d_ff: list[int]

    @staticmethod
    def value(per_layer: list[int]) -> int | list[int]:
        """A scalar when every layer agrees (as llama.cpp's converter writes it), else the per-layer array."""
        return per_layer[0] if len(set(per_layer)) == 1 else list(per_layer)

    @property
    def uniform(self) -> bool:
        return all(len(set(v)) == 1 for v in (self.n_heads, self.n_kv_heads, self.d_ff))


def gguf_layout(model) -> Layout:
    """Each layer's shape read from the weights (mindset.models.shapes), and the architecture to declare."""
    found = blocks(model)
    head_dims = {b.attention.head_dim for b in found}
    if len(head_dims) != 1:
        raise MindsetError(f"GGUF needs one head size for all layers; this model's layers have head sizes {sorted(head_dims)}")
    shapes = [block_shape(b) for b in found]
    missing = [b.index for b, s in zip(found, shapes, strict=True) if "d_ff" not in s]
    if missing:
        raise MindsetError(f"GGUF cannot express layer {missing[0]}'s feed-forward block ({type(found[missing[0]].mlp).__name__}): it has no up/down projections")
    layout = Layout("llama", head_dims.pop(), [s["n_heads"] for s in shapes], [s["n_kv_heads"] for s in shapes], [s["d_ff"] for s in shapes])
    return layout if layout.uniform else Layout("deci", layout.head_dim, layout.n_heads, layout.n_kv_heads, layout.d_ff)
