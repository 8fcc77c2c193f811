"""Recipe step `inspect`: the model's architecture and where its parameters are."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from mindset.models.summary import summarize, summary_tables
from mindset.runcontext import RunContext
from mindset.tables import rich_table


class InspectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def inspect_step(ctx: RunContext, params: InspectParams) -> dict:
    """The summary tables in the report (a per-layer table when layers differ); the metrics always carry
    `layer_shapes`, one row per layer, so a recipe's later steps and readers need not re-derive them."""
    from mindset.models.diff import layer_rows

    loaded = ctx.loaded
    summary = summarize(loaded.model)
    tables = summary_tables(summary)
    ctx.add_section(f"Model: {loaded.name}", f"{summary['total_parameters']:,} parameters, {loaded.device}.")
    for title, headers, rows in tables:
        ctx.console.print(rich_table(title, headers, rows))
        ctx.add_table(title, headers, rows)
    return {**summary, "layer_shapes": summary.get("layers") or layer_rows(loaded.model)}
