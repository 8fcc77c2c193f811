"""Where a model's heads, attention blocks, MLPs and layers are, read from its modules, and their names.

Names: `L3` (decoder layer 3), `L3.attn` (its attention block), `L3.H2` (head 2 of it), `L3.mlp`.
The architecture comes from the module tree, not from model names: the decoder layers are the ModuleList
with `num_hidden_layers` entries; in each, the attention module is the child whose class name says
"Attention" and its output projection is the child that reads the concatenated heads (`o_proj` in
Llama-like models, GPT-2's Conv1D `c_proj`, `out_proj`, `dense`); the MLP is the child named `mlp` (or
whose class says MLP). A head's output is its slice of that projection's input: heads concatenated,
`head_dim` features each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from mindset.errors import MindsetError

GRANULARITIES = ("head", "attn", "mlp", "layer")
OUT_PROJ_NAMES = ("o_proj", "c_proj", "out_proj", "dense")
_NAME = re.compile(r"^L(\d+)(?:\.(H(\d+)|attn|mlp))?$")


@dataclass(frozen=True)
class Block:
    """One decoder layer's modules."""

    index: int
    layer: nn.Module
    attn: nn.Module
    out_proj: nn.Module  # reads the heads, concatenated
    mlp: nn.Module
    n_heads: int
    head_dim: int


@dataclass(frozen=True)
class Component:
    name: str
    kind: str  # head, attn, mlp, layer
    layer: int
    head: int | None = None


def _in_features(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.in_features
    weight = getattr(module, "weight", None)
    if weight is not None and type(module).__name__ == "Conv1D":  # GPT-2: weight is (in, out)
        return weight.shape[0]
    raise MindsetError(f"the attention output projection is a {type(module).__name__}, which mindset cannot read heads from")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    config = getattr(model.config, "text_config", None) or model.config
    n = config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n and all(isinstance(m, nn.Module) for m in module):
            return module
    raise MindsetError(f"found no list of {n} decoder layers in this {type(model).__name__}; circuits needs a decoder-only transformer")


def _attention(layer: nn.Module) -> nn.Module:
    for name, child in layer.named_children():
        if "attention" in type(child).__name__.lower() and "cross" not in name:
            return child
    raise MindsetError(f"decoder layer {type(layer).__name__} has no attention module mindset recognises")


def _mlp(layer: nn.Module) -> nn.Module:
    if isinstance(getattr(layer, "mlp", None), nn.Module):
        return layer.mlp
    for child in layer.children():
        if "mlp" in type(child).__name__.lower():
            return child
    raise MindsetError(f"decoder layer {type(layer).__name__} has no MLP module mindset recognises")


def blocks(model: nn.Module) -> list[Block]:
    """Every decoder layer's attention, output projection and MLP; head counts read from the weights
    (a pruned layer may have fewer heads than the config's default)."""
    config = getattr(model.config, "text_config", None) or model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    found = []
    for i, layer in enumerate(decoder_layers(model)):
        attn = _attention(layer)
        out_proj = next((getattr(attn, n) for n in OUT_PROJ_NAMES if isinstance(getattr(attn, n, None), nn.Module)), None)
        if out_proj is None:
            raise MindsetError(f"the attention module {type(attn).__name__} has no output projection named {', '.join(OUT_PROJ_NAMES)}")
        head_dim_i = getattr(attn, "head_dim", head_dim)
        found.append(Block(i, layer, attn, out_proj, _mlp(layer), _in_features(out_proj) // head_dim_i, head_dim_i))
    return found


def list_components(model: nn.Module, granularity: str) -> list[Component]:
    if granularity not in GRANULARITIES:
        raise MindsetError(f"unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}")
    out = []
    for b in blocks(model):
        if granularity == "head":
            out += [Component(f"L{b.index}.H{h}", "head", b.index, h) for h in range(b.n_heads)]
        elif granularity == "layer":
            out.append(Component(f"L{b.index}", "layer", b.index))
        else:
            out.append(Component(f"L{b.index}.{granularity}", granularity, b.index))
    return out


def parse_component(model: nn.Module, name: str) -> Component:
    """A component by name; a name that does not exist in this model is a MindsetError saying what does."""
    match = _NAME.match(name.strip())
    if not match:
        raise MindsetError(f"{name!r} is not a component name; write L<layer> (a layer), L<layer>.attn, L<layer>.mlp or L<layer>.H<head>, e.g. L3.H2")
    all_blocks = blocks(model)
    layer = int(match.group(1))
    if layer >= len(all_blocks):
        raise MindsetError(f"{name}: the model has {len(all_blocks)} layers (L0 to L{len(all_blocks) - 1})")
    part = match.group(2)
    if part is None:
        return Component(f"L{layer}", "layer", layer)
    if part in ("attn", "mlp"):
        return Component(f"L{layer}.{part}", part, layer)
    head = int(match.group(3))
    if head >= all_blocks[layer].n_heads:
        raise MindsetError(f"{name}: layer {layer} has {all_blocks[layer].n_heads} heads (H0 to H{all_blocks[layer].n_heads - 1})")
    return Component(f"L{layer}.H{head}", "head", layer, head)


def component_parameters(model: nn.Module, component: Component) -> list[str]:
    """Names of the parameter tensors a component owns. A head shares its tensors with the other heads of
    its layer, so it owns its attention block's tensors: protecting a head protects its attention block."""
    module_names = {id(m): n for n, m in model.named_modules()}
    b = blocks(model)[component.layer]
    module = {"layer": b.layer, "attn": b.attn, "head": b.attn, "mlp": b.mlp}[component.kind]
    prefix = module_names[id(module)]
    return [f"{prefix}.{n}" for n, _ in module.named_parameters()]
