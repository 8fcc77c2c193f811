"""Names of a model's parts, the same in every command, recipe and API, resolved against its anatomy.

    L3        decoder layer 3               model.layers.3
    L3.attn   its attention block           model.layers.3.self_attn
    L3.H2     head 2 of it (a slice of the  model.layers.3.self_attn   (the module that holds the head)
              attention block's weights)
    L3.mlp    its feed-forward block        model.layers.3.mlp
    L3.mlp.N17  FFN neuron 17 of it (the      model.layers.3.mlp         (the module that holds it)
              down projection's input 17)
    embed     the input embeddings          model.embed_tokens
    head      the output (LM) head          lm_head
    shim      the embedding shim surgery    model.embed_tokens.shim
              may add (shared by a tied head)

Layer specs ("0-3,8", "L4,L12", [4, 12]) are read by `parse_layers`. Where the parts are comes from
`mindset.models.anatomy`; this module only spells them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from mindset.errors import MindsetError
from mindset.models.anatomy import block, blocks, check_layer, n_layers

GRANULARITIES = ("head", "attn", "mlp", "layer", "neuron")
_COMPONENT = re.compile(r"^L(\d+)(?:\.(H(\d+)|attn|mlp(?:\.N(\d+))?))?$")
_COMPONENT_HINT = "write L<layer>, L<layer>.attn, L<layer>.mlp, L<layer>.H<head>, L<layer>.mlp.N<neuron>, embed, head or shim, e.g. L3.H2"
SHIM_CHILD = "shim"  # where surgery's embedding_shim keeps its parameters: a child of the input embeddings


# --- layer specs ---------------------------------------------------------------------------------------

def parse_layers(layers, count: int | None = None) -> list[int]:
    """Layer indices from 3, [4, 12], '4,12,20', '0-3,8' or 'L0-L3,L8'; with `count`, each is range-checked."""
    if isinstance(layers, bool):
        raise MindsetError(f"cannot read layers {layers!r}; give layer indices like 4,12,20 or 0-3")
    if isinstance(layers, int):
        out = [layers]
    elif isinstance(layers, str):
        out = _parse_layer_string(layers)
    else:
        try:
            out = [_layer_int(i) for i in layers]
        except (TypeError, ValueError):
            raise MindsetError(f"cannot read layers {layers!r}; give layer indices like [4, 12, 20]") from None
    if not out:
        raise MindsetError("no layers given")
    if count is not None:
        for i in out:
            check_layer(i, count)
    return out


def _layer_int(value) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, str):
        value = value.strip().removeprefix("L")
    return int(value)


def _parse_layer_string(text: str) -> list[int]:
    out: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, sep, hi = part[1:].partition("-")
            if sep:
                first, last = _layer_int(part[0] + lo), _layer_int(hi)
                if last < first:
                    raise MindsetError(f"layer range {part!r} runs backwards; write it low-high, like 0-3")
                out.extend(range(first, last + 1))
            else:
                out.append(_layer_int(part))
    except ValueError:
        raise MindsetError(f"cannot read layers {text!r}; write them like 4,12,20 or 0-3") from None
    return out


# --- component names -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Component:
    """A named part of a model: kind is head, attn, mlp, neuron, layer, embed, head_out (`head`, the LM head) or shim."""

    name: str
    kind: str
    layer: int | None = None
    head: int | None = None
    neuron: int | None = None  # an FFN neuron: its index among the down projection's inputs


def is_component_name(text: str) -> bool:
    """Whether `text` is spelled like a component name (it may still not exist in a given model)."""
    return text.strip() in ("embed", "head", SHIM_CHILD) or _COMPONENT.match(text.strip()) is not None


def parse_component(model: nn.Module, name: str) -> Component:
    """A component by name; one that does not exist in this model is a MindsetError saying what does."""
    text = name.strip()
    if text == "embed":
        return Component("embed", "embed")
    if text == "head":
        return Component("head", "head_out")
    if text == SHIM_CHILD:
        return Component(SHIM_CHILD, "shim")
    match = _COMPONENT.match(text)
    if not match:
        raise MindsetError(f"{name!r} is not a component name; {_COMPONENT_HINT}")
    count = n_layers(model)
    layer = int(match.group(1))
    if layer >= count:
        raise MindsetError(f"{text}: the model has {count} layers (L0 to L{count - 1})")
    part = match.group(2)
    if part is None:
        return Component(f"L{layer}", "layer", layer)
    if part in ("attn", "mlp"):
        return Component(f"L{layer}.{part}", part, layer)
    if match.group(4) is not None:
        return _neuron(model, layer, int(match.group(4)), text)
    head, n_heads = int(match.group(3)), block(model, layer).n_heads
    if head >= n_heads:
        raise MindsetError(f"{text}: layer {layer} has {n_heads} heads (H0 to H{n_heads - 1})")
    return Component(f"L{layer}.H{head}", "head", layer, head)


def _d_ff(b) -> int:
    return b.ffn.require_projections().d_ff


def _neuron(model: nn.Module, layer: int, neuron: int, text: str) -> Component:
    width = _d_ff(block(model, layer))
    if neuron >= width:
        raise MindsetError(f"{text}: the MLP of layer {layer} has {width} neurons (N0 to N{width - 1})")
    return Component(f"L{layer}.mlp.N{neuron}", "neuron", layer, neuron=neuron)


def list_components(model: nn.Module, granularity: str) -> list[Component]:
    """Every component of one granularity (head, attn, mlp, layer or neuron), in layer order."""
    if granularity not in GRANULARITIES:
        raise MindsetError(f"unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}")
    out = []
    for b in blocks(model):
        if granularity == "head":
            out += [Component(f"L{b.index}.H{h}", "head", b.index, h) for h in range(b.n_heads)]
        elif granularity == "layer":
            out.append(Component(f"L{b.index}", "layer", b.index))
        elif granularity == "neuron":
            out += [Component(f"L{b.index}.mlp.N{n}", "neuron", b.index, neuron=n) for n in range(_d_ff(b))]
        else:
            out.append(Component(f"L{b.index}.{granularity}", granularity, b.index))
    return out


def _module_path(model: nn.Module, module: nn.Module | None, what: str) -> str:
    path = next((n for n, m in model.named_modules() if m is module), None) if module is not None else None
    if path is None:
        raise MindsetError(f"this {type(model).__name__} has no {what} mindset can find")
    return path


def component_path(model: nn.Module, name: str | Component) -> str:
    """The module path of a component; a head's is its attention block's, a neuron's its MLP's (the module that holds it)."""
    comp = name if isinstance(name, Component) else parse_component(model, name)
    if comp.kind == "embed":
        return _module_path(model, model.get_input_embeddings(), "input embeddings")
    if comp.kind == "head_out":
        return _module_path(model, model.get_output_embeddings(), "output head")
    if comp.kind == "shim":
        path = _module_path(model, model.get_input_embeddings(), "input embeddings") + "." + SHIM_CHILD
        if not isinstance(getattr(model.get_input_embeddings(), SHIM_CHILD, None), nn.Module):
            raise MindsetError("this model has no embedding shim; add one with embedding_shim (mindset surgery embedding-shim)")
        return path
    b = block(model, comp.layer)
    return {"layer": b.path, "attn": b.attn_path, "head": b.attn_path, "mlp": b.mlp_path, "neuron": b.mlp_path}[comp.kind]


def component_at(model: nn.Module, path: str) -> Component:
    """The component whose module lives at `path` (the inverse of component_path; a head comes back as
    its attention block). A path that is no component is a MindsetError."""
    for name in ("embed", "head"):
        try:
            if component_path(model, name) == path:
                return parse_component(model, name)
        except MindsetError:
            pass
    for b in blocks(model):
        for kind, at in (("layer", b.path), ("attn", b.attn_path), ("mlp", b.mlp_path)):
            if at == path:
                return Component(f"L{b.index}" + ("" if kind == "layer" else f".{kind}"), kind, b.index)
    raise MindsetError(f"{path!r} is not the path of a layer, attention block, MLP, embedding or head of this model")


def component_parameters(model: nn.Module, name: str | Component) -> list[str]:
    """Names of the parameter tensors a component owns, as model.named_parameters() spells them. A head
    (`L3.H2`) shares its tensors with the other heads of its layer, so it owns its attention block's; a
    tied LM head (`head`) owns the embedding matrix it shares, under the embedding's name."""
    prefix = component_path(model, name) + "."
    canonical: dict[int, str] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        canonical.setdefault(id(p), n)  # the first name is the one named_parameters() keeps
    hits = (canonical[id(p)] for n, p in model.named_parameters(remove_duplicate=False) if n.startswith(prefix))
    return list(dict.fromkeys(hits))


def select_parameters(model: nn.Module, patterns: Iterable[str]) -> set[str]:
    """Parameter names chosen by component names (L3.mlp, embed, ...) or module-path globs
    (model.layers.*.mlp.*); each must choose something, else a MindsetError with example names."""
    import fnmatch

    names = [n for n, _ in model.named_parameters()]
    chosen: set[str] = set()
    for pattern in patterns:
        hits = component_parameters(model, pattern) if is_component_name(pattern) else fnmatch.filter(names, pattern)
        if not hits:
            example = ", ".join(names[:3])
            raise MindsetError(f"{pattern!r} matches no parameter of the model (component names look like L0.mlp; parameter names: {example}, ...)")
        chosen.update(hits)
    return chosen
