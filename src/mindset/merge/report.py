"""What a plan will do, in words and tables: the `--dry-run` output and the merged model's card."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mindset.models.summary import human_bytes, human_count
from mindset.tables import markdown_table

if TYPE_CHECKING:
    from mindset.merge.plan import MergePlan

LAYER_HEADERS = ["output layers", "from", "input layers", "parameters"]


def layer_rows(plan: MergePlan) -> list[list[str]]:
    """One row per slice: which output layers it makes and from which models' layers."""
    rows = []
    out = 0
    for piece in plan.slices:
        for k, source in enumerate(piece.sources):
            first = f"{out}–{out + piece.length - 1}" if piece.length > 1 else str(out)
            params = ", ".join(f"{name}={_short(value)}" for name, value in (source.parameters or {}).items())
            rows.append([first if k == 0 else "", plan.models[source.model].ref, f"{source.start}–{source.end - 1}" if piece.length > 1 else str(source.start), params])
        out += piece.length
    return rows


def summary_rows(plan: MergePlan) -> list[list[str]]:
    config = plan.loaded.config
    donor = plan.models[plan.donor]
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in plan.tensors})
    rows = [
        ["method", plan.method.name + (f" (base: {plan.models[plan.slices[0].base].ref})" if plan.slices[0].base is not None and plan.method.base == "required" else "")],
        ["layers", f"{plan.num_layers} (from {', '.join(sorted({plan.models[s.model].ref for p in plan.slices for s in p.sources}))})"],
        ["before / after the layers", f"{_edge(plan, 'before layers')} / {_edge(plan, 'after layers')}"],
        ["tensors", str(len(plan.tensors))],
        ["parameters", f"{human_count(plan.parameter_count)} ({plan.parameter_count:,})"],
        ["bytes", f"{human_bytes(plan.total_bytes)} ({', '.join(dtypes)})"],
        ["config and tokenizer from", donor.ref],
    ]
    if plan.vocabulary is not None:
        rows.append(["vocabulary", f"{config.tokenizer_choice}: {plan.vocabulary.size:,} tokens, {plan.vocabulary.rows:,} rows"])
    if plan.method.random:
        rows.append(["random masks", "seeded per tensor (--seed)"])
    if plan.ignored:
        rows.append(["ignored tensors", f"{len(plan.ignored)} not in the architecture, e.g. {plan.ignored[0]}"])
    return rows


def _edge(plan: MergePlan, where: str) -> str:
    names = [t.name for t in plan.tensors if t.where == where]
    if not names:
        return "none"
    sources = {plan.models[i.model].ref for t in plan.tensors if t.where == where for i in t.inputs}
    return f"{', '.join(names)} from {', '.join(sorted(sources))}"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def model_card(plan: MergePlan, name: str) -> str:
    refs = []
    for piece in plan.slices:
        for source in piece.sources:
            ref = plan.models[source.model].ref
            if ref not in refs:
                refs.append(ref)
    front = "---\nbase_model:\n" + "".join(f"- {r}\n" for r in refs) + "library_name: transformers\ntags:\n- mindset\n- merge\n- mergekit\n---\n"
    method = plan.method
    reference = f" ({method.reference})" if method.reference.startswith("http") else ""
    text = [
        front,
        f"# {name}\n",
        "This model was made by merging pre-trained language models with mindset (`mindset merge`), "
        "from a mergekit-compatible configuration.\n",
        f"## Merge method\n\n`{method.name}`{reference}: {method.description}.\n",
        "## Summary\n\n" + markdown_table(["", ""], summary_rows(plan)) + "\n",
        "## Layers\n\n" + markdown_table(LAYER_HEADERS, layer_rows(plan)) + "\n",
        "## Configuration\n\nThe following YAML configuration was used to produce this model:\n\n```yaml\n" + plan.loaded.text.rstrip() + "\n```\n",
    ]
    return "\n".join(text)
