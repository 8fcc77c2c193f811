"""Recipe step `ppl`: perplexity on the shipped corpus or a text file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mindset.errors import MindsetError
from mindset.evaluate.perplexity import perplexity
from mindset.runcontext import RunContext


class PplParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: Literal["train", "valid"] = Field("valid", description="split of the shipped Austen corpus")
    text_file: Path | None = Field(None, description="a UTF-8 text file to use instead of the corpus")
    context: int | None = Field(None, ge=2, description="window length in tokens (default: model context, at most 1024)")
    stride: int | None = Field(None, ge=1, description="tokens between window starts (default: half the window)")
    batch_size: int = Field(1, ge=1, description="windows per forward pass")
    max_tokens: int | None = Field(None, ge=2, description="score only the first N tokens")
    label: str | None = Field(None, description="what this measurement is, for the report (e.g. 'after surgery')")


def read_text(params: PplParams) -> tuple[str, str]:
    """(text, where it came from)."""
    if params.text_file is None:
        from mindset.data import corpus_text

        return corpus_text(params.split), f"austen/{params.split}"
    if not params.text_file.is_file():
        raise MindsetError(f"{params.text_file}: no such file")
    try:
        return params.text_file.read_text(encoding="utf-8"), str(params.text_file)
    except UnicodeDecodeError as err:
        raise MindsetError(f"{params.text_file} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def ppl_step(ctx: RunContext, params: PplParams) -> dict:
    text, source = read_text(params)
    result = perplexity(
        ctx.loaded,
        text,
        context=params.context,
        stride=params.stride,
        batch_size=params.batch_size,
        max_tokens=params.max_tokens,
        progress=ctx.progress,
    )
    line = (
        f"perplexity **{result.perplexity:.3f}** on `{source}` ({result.tokens:,} tokens scored, "
        f"window {result.context}, stride {result.stride}, {result.windows} windows)"
    )
    ctx.console.print(line.replace("**", "").replace("`", ""))
    ctx.add_section(f"Perplexity {params.label}" if params.label else f"Perplexity on {source}", line)
    return {**result.as_dict(), "text": source, **({"label": params.label} if params.label else {})}


class EvalParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(["capitals", "arithmetic", "canaries"], min_length=1, description="suites, task names or lm-eval task .yaml files")
    limit: int | None = Field(40, ge=1, description="documents per task (null: all)")
    num_fewshot: int | None = Field(None, ge=0, description="override each task's num_fewshot")
    seed: int = Field(0, description="seed of the generated suites")
    size: int = Field(200, ge=1, description="generated test documents per shipped task")


def eval_step(ctx: RunContext, params: EvalParams) -> dict:
    """Score the current model; results in <run>/eval/ (what `mindset compare RUNDIR...` reads)."""
    from mindset.evaluate.compare import comparison, table
    from mindset.evaluate.evaluation import evaluate_model, resolve_tasks, save_run

    folder = ctx.run_dir / "eval"
    files = resolve_tasks(params.tasks, folder / "tasks", seed=params.seed, n_test=params.size)
    loaded = ctx.loaded
    run = evaluate_model(loaded, files, limit=params.limit, num_fewshot=params.num_fewshot, progress=ctx.progress, warn=lambda m: ctx.console.print(f"warning: {m}"))
    save_run(run, folder)
    headers, rows = table(comparison([{**run.as_dict(), "label": loaded.name}]))
    ctx.add_table(f"Evaluation of {loaded.name}", headers, rows)
    for row in rows:
        ctx.console.print("  ".join(str(v) for v in row))
    return {
        t.task: {**{k: v["value"] for k, v in t.metrics.items()}, **{f"{k}_stderr": v["stderr"] for k, v in t.metrics.items()}, "n": t.n}
        for t in run.tasks
    }
