"""Circuits' view of a model: its blocks and components, as `mindset.models.anatomy` reads them and
`mindset.models.names` names them.

Names: `L3` (decoder layer 3), `L3.attn` (its attention block), `L3.H2` (head 2 of it), `L3.mlp`, `L3.mlp.N17`
(neuron 17 of that MLP: feature 17 of its down projection's input).
A head's output is its slice of the attention output projection's input: heads concatenated, `head_dim`
features each. Circuits works on decoder layers, so `embed` and `head` are not components here.
"""

from __future__ import annotations

from torch import nn

from mindset.errors import MindsetError
from mindset.models import names
from mindset.models.anatomy import Block, blocks, decoder_layers
from mindset.models.names import GRANULARITIES, Component, component_parameters, list_components

__all__ = ["GRANULARITIES", "Block", "Component", "blocks", "component_parameters", "decoder_layers", "list_components", "parse_component"]


def parse_component(model: nn.Module, name: str) -> Component:
    """A decoder component by name (L3, L3.attn, L3.H2, L3.mlp, L3.mlp.N17); anything else is a MindsetError."""
    comp = names.parse_component(model, name)
    if comp.layer is None:
        raise MindsetError(f"{name!r} is not a decoder component; circuits maps L<layer>, L<layer>.attn, L<layer>.mlp, L<layer>.H<head> and L<layer>.mlp.N<neuron>")
    return comp

