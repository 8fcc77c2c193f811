"""Layer stitching: the list of output tensors, each with its inputs and parameters, and the output config.

Output layers are numbered in slice order; within a slice of n layers, layer k reads layer start + k
of every source, and gradients see t = k / (n - 1) (t = 1 for a one-layer slice). Tensors before the
layers (embeddings) are merged from the first slice's sources, tensors after them (final norm, head)
from the last slice's, with t = 0. A tied head is not written when the output ties it.
"""

from __future__ import annotations

import copy
from functools import reduce
from typing import TYPE_CHECKING, Any

import torch

from mindset.merge.parameters import MISSING, resolve

if TYPE_CHECKING:
    from mindset.merge.plan import MergePlan, PlannedSlice


def plan_tensors(plan: MergePlan, seed: int, fail) -> None:
    donor = plan.models[plan.donor]
    layout = donor.layout
    before, after = [], []
    for name in layout.order:
        if layout.layer_of(name) is not None or (donor.tied and name in layout.tied) or donor.find(name) is None:
            continue
        (before if layout.is_before_layers(name) else after).append(name)
    suffixes = [s for s in layout.layer_suffixes if donor.find(layout.layer_name(0, s)) is not None]
    plan.ignored = sorted(name for name in donor.tensors if name not in layout.order)
    add = _TensorAdder(plan, seed, fail)
    first, last = plan.slices[0], plan.slices[-1]
    for name in before:
        add(name, [name] * len(first.sources), first, 0.0, "before layers", layout.vocab_axes.get(name))
    out_layer = 0
    for piece in plan.slices:
        for offset in range(piece.length):
            t = offset / (piece.length - 1) if piece.length > 1 else 1
            for suffix in suffixes:
                names = [plan.models[s.model].layout.layer_name(s.start + offset, suffix) for s in piece.sources]
                add(layout.layer_name(out_layer, suffix), names, piece, t, f"layer {out_layer}", None)
            out_layer += 1
    for name in after:
        add(name, [name] * len(last.sources), last, 0.0, "after layers", layout.vocab_axes.get(name))


class _TensorAdder:
    def __init__(self, plan: MergePlan, seed: int, fail):
        self.plan, self.seed, self.fail = plan, seed, fail
        config = plan.loaded.config
        self.global_params = config.parameters
        from mindset.merge.plan import DTYPES

        self.out_dtype = DTYPES.get(config.out_dtype or "")

    def __call__(self, out_name: str, names: list[str], piece: PlannedSlice, t: float, where: str, vocab_axis: int | None) -> None:
        from mindset.merge.plan import OutputTensor, TensorInput, tensor_seed

        plan, method = self.plan, self.plan.method
        inputs, infos = [], []
        for name, source in zip(names, piece.sources):
            model = plan.models[source.model]
            stored = model.find(name)
            if stored is None:
                raise self.fail(source.loc, f"model {model.ref!r} has no tensor {name}")
            infos.append(model.tensors[stored])
            inputs.append(TensorInput(source.model, name, stored, {}))
        shape = self._shape(out_name, infos, piece, vocab_axis)
        dtype = reduce(torch.promote_types, [self.plan.dtype or info.dtype for info in infos])
        shared = {}
        for param in method.shared:
            value = resolve(param, [piece.parameters, self.global_params], out_name, t)
            if value is MISSING:
                raise self.fail(piece.loc, f"{method.name} needs {param.name!r} (tensor {out_name}); set it in the slice's or the top-level parameters")
            shared[param.name] = value
        base = next((i for i, s in enumerate(piece.sources) if s.model == piece.base), None) if method.base == "required" else None
        for tensor_input, source in zip(inputs, piece.sources):
            for param in method.per_input:
                if param.scope == "non_base" and source.model == piece.base:
                    continue
                value = resolve(param, [source.parameters, piece.parameters, self.global_params], tensor_input.name, t)
                if value is MISSING:
                    ref = plan.models[source.model].ref
                    raise self.fail(source.loc, f"{method.name} needs {param.name!r} for {ref!r} (tensor {tensor_input.name}); set it in this model's, the slice's or the top-level parameters")
                tensor_input.params[param.name] = value
        if method.name == "linear" and shared["normalize"] and sum(i.params["weight"] for i in inputs) == 0:
            raise self.fail(piece.loc, f"the weights of {out_name} sum to 0 and normalize is on: the merge would divide by zero")
        seed = tensor_seed(self.seed, out_name) if method.random else None
        plan.tensors.append(OutputTensor(out_name, shape, self.out_dtype or dtype, inputs, base, shared, vocab_axis if plan.vocabulary else None, seed, where))

    def _shape(self, out_name: str, infos: list, piece: PlannedSlice, vocab_axis: int | None) -> tuple[int, ...]:
        shapes = [info.shape for info in infos]
        if vocab_axis is not None and self.plan.vocabulary is not None:
            rest = {s[:vocab_axis] + s[vocab_axis + 1 :] for s in shapes}
            if len(rest) == 1:
                shape = list(shapes[0])
                shape[vocab_axis] = self.plan.vocabulary.rows
                return tuple(shape)
        elif len(set(shapes)) == 1:
            return shapes[0]
        described = ", ".join(f"{self.plan.models[s.model].ref!r} {list(shape)}" for s, shape in zip(piece.sources, shapes))
        hint = ""
        if vocab_axis is not None and self.plan.vocabulary is None:
            hint = "; the vocabularies differ: set tokenizer_source (base, union or a model) to re-index the embeddings"
        raise self.fail(piece.loc, f"mismatched shapes for {out_name}: {described}{hint}")


def output_config(plan: MergePlan) -> dict[str, Any]:
    """The donor's config.json with the merged layer count, per-layer lists, dtype and vocabulary size."""
    donor = plan.models[plan.donor]
    config = copy.deepcopy(donor.config)
    key = donor.layout.num_layers_key
    old_layers = donor.num_layers
    config[key] = plan.num_layers
    for name, value in list(config.items()):  # e.g. layer_types: one entry per layer, taken from each layer's source
        if isinstance(value, list) and len(value) == old_layers and old_layers > 1 and name != "architectures":
            config[name] = [_layer_value(plan, name, value, piece, offset) for piece in plan.slices for offset in range(piece.length)]
    dtype = plan.loaded.config.out_dtype or plan.loaded.config.dtype
    if dtype:
        config.pop("torch_dtype", None)
        config["dtype"] = dtype
    if plan.vocabulary is not None:
        config["vocab_size"] = plan.vocabulary.rows
    return config


def output_layer_shapes(plan: MergePlan) -> dict[str, dict[str, int]]:
    """Per-layer shapes (a mindset surgery record's `layer_shapes`) of the merged layers whose source layer
    has one: a heterogeneous model's layers keep their head counts and FFN widths, renumbered. The tensors'
    shapes were already checked to agree across the sources of each slice."""
    from mindset.models.custom import recorded_shapes

    shapes, index = {}, 0
    for piece in plan.slices:
        source = piece.sources[0]
        recorded = recorded_shapes(plan.models[source.model].folder)
        for offset in range(piece.length):
            shape = recorded.get(str(source.start + offset))
            if shape is not None:
                shapes[str(index)] = shape
            index += 1
    return shapes


def _layer_value(plan: MergePlan, name: str, donor_value: list, piece: PlannedSlice, offset: int) -> Any:
    source = piece.sources[0]
    values = plan.models[source.model].config.get(name)
    index = source.start + offset
    return values[index] if isinstance(values, list) and index < len(values) else donor_value[min(index, len(donor_value) - 1)]
