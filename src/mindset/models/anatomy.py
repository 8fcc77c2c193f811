"""Where a model keeps its blocks: the one place that reads a transformer's anatomy, and names its parts.

Everything is read from the module tree and the config, never from model names:
- the text config is `config.text_config` when there is one (multimodal models), else the config;
- the decoder layers are the first ModuleList (in module order) with the text config's
  `num_hidden_layers` entries whose items hold an attention module;
- in a layer, the attention module is the child whose class name says "Attention" (not a cross-attention),
  the feed-forward block is the child named `mlp`/`feed_forward`/`ffn` (or whose class says MLP);
- projections by their names: q/k/v (`q_proj`... or fused `c_attn`, `qkv_proj`, `query_key_value`),
  the output projection reading the concatenated heads (`o_proj`, `c_proj`, `out_proj`, `dense`), the
  FFN's gate (`gate_proj`, `w1`), up (`up_proj`, `c_fc`, `fc1`, `dense_h_to_4h`, `w3`) and down
  (`down_proj`, `c_proj`, `fc2`, `dense_4h_to_h`, `w2`); a block with a gate is "gated".
  A projection is an nn.Linear (weight (out, in)) or GPT-2's Conv1D (weight (in, out)).
- head counts from the weights, so a pruned layer reports what it has: n_heads = o's in-features / head_dim,
  n_kv_heads = k's out-features / head_dim (fused q/k/v: the config's count).

Component names (L3, L3.attn, L3.H2, L3.mlp, embed, head) and layer specs are spelled in
`mindset.models.names`, which resolves them against this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from mindset.errors import MindsetError

FFN_NAMES = ("mlp", "feed_forward", "ffn")
Q_NAMES, K_NAMES, V_NAMES = ("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")
QKV_NAMES = ("c_attn", "qkv_proj", "query_key_value", "Wqkv")
O_NAMES = ("o_proj", "c_proj", "out_proj", "dense")
GATE_NAMES = ("gate_proj", "w1")
UP_NAMES = ("up_proj", "c_fc", "fc1", "dense_h_to_4h", "w3")
DOWN_NAMES = ("down_proj", "c_proj", "fc2", "dense_4h_to_h", "w2")


# --- projections ---------------------------------------------------------------------------------------

def is_conv1d(module: nn.Module) -> bool:
    """GPT-2's Conv1D (or a subclass: head gates' GatedConv1D): a linear map whose weight is stored (in, out),
    the transpose of nn.Linear's."""
    return any(c.__name__ == "Conv1D" for c in type(module).__mro__) and getattr(module, "weight", None) is not None


def is_projection(module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Module) and is_conv1d(module))


def _out_in(module: nn.Module) -> tuple[int, int]:
    """(out, in) features of a projection: nn.Linear's weight is (out, in), GPT-2's Conv1D's (in, out)."""
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    if is_conv1d(module):
        n_in, n_out = module.weight.shape
        return n_out, n_in
    raise MindsetError(f"a {type(module).__name__} is not a projection mindset can read (nn.Linear or GPT-2's Conv1D)")


def in_features(module: nn.Module) -> int:
    return _out_in(module)[1]


def out_features(module: nn.Module) -> int:
    return _out_in(module)[0]


def _child(module: nn.Module, names: Iterable[str], exclude: nn.Module | None = None) -> nn.Module | None:
    for name in names:
        child = getattr(module, name, None)
        if is_projection(child) and child is not exclude:
            return child
    return None


# --- the anatomy of a block ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Attention:
    """A self-attention module: its projections and head layout. q/k/v are None when fused into `qkv`."""

    module: nn.Module
    q: nn.Module | None
    k: nn.Module | None
    v: nn.Module | None
    qkv: nn.Module | None  # GPT-2's c_attn and the like: q, k and v in one projection
    o: nn.Module  # reads the heads, concatenated: head h is its input features h*head_dim ... (h+1)*head_dim
    n_heads: int
    n_kv_heads: int
    head_dim: int

    @property
    def fused(self) -> bool:
        return self.qkv is not None


@dataclass(frozen=True)
class FeedForward:
    """A feed-forward block. gated: down(act(gate x) * up x); ungated: down(act(up x)).
    layout None: mindset found no up/down projections it knows (only the module itself is usable)."""

    module: nn.Module
    layout: str | None  # "gated", "ungated" or None
    up: nn.Module | None
    gate: nn.Module | None
    down: nn.Module | None
    d_ff: int | None  # the hidden width: the down projection's in-features

    @property
    def inputs(self) -> list[nn.Module]:
        """The projections that write the hidden neurons (gate first, then up)."""
        return [m for m in (self.gate, self.up) if m is not None]

    @property
    def conv1d(self) -> bool:
        return self.down is not None and is_conv1d(self.down)

    def require_projections(self) -> FeedForward:
        if self.layout is None:
            raise MindsetError(
                f"the feed-forward block {type(self.module).__name__} has no projections mindset recognises "
                f"(up: {', '.join(UP_NAMES)}; down: {', '.join(DOWN_NAMES)})"
            )
        return self


@dataclass(frozen=True)
class Block:
    """One decoder layer: where it is, its attention and its feed-forward block."""

    index: int
    path: str  # module path of the layer, e.g. model.layers.3
    layer: nn.Module
    attention: Attention
    attn_path: str
    ffn: FeedForward
    mlp_path: str

    # short names for what most callers want
    @property
    def attn(self) -> nn.Module:
        return self.attention.module

    @property
    def mlp(self) -> nn.Module:
        return self.ffn.module

    @property
    def out_proj(self) -> nn.Module:
        return self.attention.o

    @property
    def n_heads(self) -> int:
        return self.attention.n_heads

    @property
    def head_dim(self) -> int:
        return self.attention.head_dim


def text_config(config):
    """The config that describes the language model: `text_config` of multimodal configs, else the config."""
    return getattr(config, "text_config", None) or config


def n_layers(model: nn.Module) -> int:
    """How many decoder layers the config says the model has."""
    count = getattr(text_config(model.config), "num_hidden_layers", None)
    if count is None:
        raise MindsetError(f"this {type(model).__name__}'s config has no num_hidden_layers; mindset needs a decoder-only transformer")
    return int(count)


def _layers_with_path(model: nn.Module) -> tuple[str, nn.ModuleList]:
    count = n_layers(model)
    for path, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count and all(_attention_child(m) is not None for m in module):
            return path, module
    raise MindsetError(f"cannot find the decoder layers of this {type(model).__name__} (no list of {count} blocks with attention)")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of transformer blocks."""
    return _layers_with_path(model)[1]


def layers_path(model: nn.Module) -> str:
    """Module path of the decoder layers' list, e.g. `model.layers` (Llama) or `transformer.h` (GPT-2)."""
    return _layers_with_path(model)[0]


def _attention_child(layer: nn.Module) -> tuple[str, nn.Module] | None:
    for name, child in layer.named_children():
        if "attention" in type(child).__name__.lower() and "cross" not in name:
            return name, child
    return None


def _ffn_child(layer: nn.Module) -> tuple[str, nn.Module] | None:
    for name in FFN_NAMES:
        child = getattr(layer, name, None)
        if isinstance(child, nn.Module):
            return name, child
    for name, child in layer.named_children():
        if "mlp" in type(child).__name__.lower():
            return name, child
    return None


def describe_attention(attn: nn.Module, config) -> Attention:
    """An attention module's projections and heads; `config` supplies head_dim when the module does not."""
    config = text_config(config)
    o = _child(attn, O_NAMES)
    if o is None:
        raise MindsetError(f"the attention module {type(attn).__name__} has no output projection named {', '.join(O_NAMES)}")
    q, k, v = _child(attn, Q_NAMES), _child(attn, K_NAMES), _child(attn, V_NAMES)
    qkv = _child(attn, QKV_NAMES, exclude=o) if q is None else None
    head_dim = getattr(attn, "head_dim", None) or getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    n_heads = in_features(o) // head_dim
    if k is not None:
        n_kv = out_features(k) // head_dim
    else:
        n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    return Attention(attn, q, k, v, qkv, o, n_heads, n_kv, head_dim)


def describe_ffn(mlp: nn.Module) -> FeedForward:
    """A feed-forward block's projections and layout (layout None when they are not ones mindset knows)."""
    down = _child(mlp, DOWN_NAMES)
    up = _child(mlp, UP_NAMES, exclude=down)
    gate = _child(mlp, GATE_NAMES, exclude=down)
    if down is None or up is None:
        return FeedForward(mlp, None, up, gate, down, None)
    return FeedForward(mlp, "gated" if gate is not None else "ungated", up, gate, down, in_features(down))


def blocks(model: nn.Module) -> list[Block]:
    """Every decoder layer's anatomy, in order."""
    prefix, layers = _layers_with_path(model)
    return [_block(model, prefix, i, layer) for i, layer in enumerate(layers)]


def block(model: nn.Module, index: int) -> Block:
    """One decoder layer's anatomy; an index out of range is a MindsetError naming the range."""
    prefix, layers = _layers_with_path(model)
    check_layer(index, len(layers))
    return _block(model, prefix, index, layers[index])


def _block(model: nn.Module, prefix: str, index: int, layer: nn.Module) -> Block:
    attn_name, attn = _attention_child(layer)
    found = _ffn_child(layer)
    if found is None:
        raise MindsetError(f"decoder layer {type(layer).__name__} has no feed-forward block (looked for {', '.join(FFN_NAMES)})")
    mlp_name, mlp = found
    path = f"{prefix}.{index}"
    return Block(index, path, layer, describe_attention(attn, model.config), f"{path}.{attn_name}", describe_ffn(mlp), f"{path}.{mlp_name}")


def check_layer(index: int, count: int) -> int:
    if not 0 <= index < count:
        raise MindsetError(f"layer index {index} is out of range: this model has {count} layers (0-{count - 1})")
    return index
