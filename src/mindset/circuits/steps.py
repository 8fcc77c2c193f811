"""Recipe steps `circuits` (an importance map of the current model, optionally a causal trace) and
`circuits_patch` (activation patching of a clean/corrupted prompt pair), into the report."""

from __future__ import annotations

import warnings

from pydantic import BaseModel, ConfigDict, Field

from mindset.runcontext import RunContext


class TraceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, description="the prompt, e.g. 'The capital of France is'")
    subject: str = Field(..., min_length=1, description="the part of the prompt to corrupt, e.g. France")
    answer: str = Field(..., min_length=1, description="the expected continuation, e.g. ' Paris' (its first token is traced)")
    samples: int = Field(10, ge=1, description="noise draws")
    window: int = Field(10, ge=1, description="layers restored together for mlp/attn (ROME's 10)")


class CircuitsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str = Field("capitals", description="a shipped task (capitals, ordering, modus_ponens, ...) or an lm-eval task .yaml")
    granularity: str = Field("layer", pattern="^(head|attn|mlp|layer|neuron)$",
                             description="ablate each: layer, mlp, attn, head or neuron (FFN neurons: thousands; use --batch or --estimate attribution)")
    method: str = Field("zero", pattern="^(zero|mean|resample|attribution)$",
                        description="zero, mean or resample ablation; attribution: short for --estimate attribution with the zero baseline")
    estimate: str = Field("exact", pattern="^(exact|attribution)$",
                          description="exact: score the suite ablated; attribution: first-order estimate from one forward+backward pass (zero/mean only, no accuracy)")
    batch: int = Field(1, ge=1, description="exact: components ablated per pass (same numbers, fewer weight reads); attribution: documents per pass")
    components: list[str] | None = Field(None, description="measure only these (L3, L3.attn, L3.mlp, L3.H2, L3.mlp.N17)")
    limit: int = Field(20, ge=1, description="documents of the suite")
    top: int = Field(15, ge=1, description="rows in the report's table")
    seed: int = Field(0, description="seed of the generated suite and of mean/resample ablation statistics")
    trace: TraceParams | None = Field(None, description="also run a causal trace")


def circuits_step(ctx: RunContext, params: CircuitsParams) -> dict:
    from mindset.circuits import ChanceWarning, importance

    loaded = ctx.loaded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ChanceWarning)
        result = importance(loaded, params.suite, params.granularity, params.method, components=params.components,
                            limit=params.limit, seed=params.seed, estimate=params.estimate, batch=params.batch, progress=ctx.progress)
    notes = [str(w.message) for w in caught if issubclass(w.category, ChanceWarning)]
    for note in notes:
        ctx.console.print(f"warning: {note}")
    folder = ctx.run_dir / "circuits"
    name = f"{result.suite}-{result.granularity}-{result.method}" + ("-attribution" if result.estimate == "attribution" else "")
    paths = result.save(folder / name)
    headers, rows = result.table(params.top)
    body = result.summary() + "\n\n" + "".join(f"**Warning:** {n}\n\n" for n in notes) + f"![importance heatmap](circuits/{name}/importance.png)"
    ctx.add_section(f"Circuits: {result.suite}, {result.method} ablation by {result.granularity}", body)
    ctx.add_table(f"Most important components for {result.suite}", headers, rows)
    metrics = {
        "suite": result.suite, "baseline_accuracy": result.baseline_accuracy, "at_chance": result.at_chance,
        "top": [[s.name, s.drop_logprob] for s in result.ranked()[: params.top]], "map": str(paths["json"]),
    }
    if params.trace is not None:
        from mindset.circuits.trace import causal_trace

        t = params.trace
        trace = causal_trace(loaded, t.prompt, t.subject, t.answer, samples=t.samples, window=t.window, seed=params.seed)
        trace.save(folder / "trace")
        ctx.add_section(f"Causal trace: {t.prompt!r} → {t.answer!r}", trace.describe().replace("\n", "\n\n") + "\n\n![causal trace](circuits/trace/trace.png)")
        metrics["trace"] = {"p_clean": trace.p_clean, "p_corrupted": trace.p_corrupted}
    return metrics


class PatchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clean: str = Field(..., min_length=1, description="the clean prompt, e.g. 'The capital of France is'")
    corrupted: str = Field(..., min_length=1, description="the same prompt with one part changed, of the same token length, e.g. 'The capital of Italy is'")
    answer: str = Field(..., min_length=1, description="the clean prompt's answer, e.g. ' Paris' (its first token is scored)")
    wrong: str = Field(..., min_length=1, description="the corrupted prompt's answer, e.g. ' Rome'; the metric is logit(answer) − logit(wrong)")
    direction: str = Field("denoise", pattern="^(denoise|noise)$", description="denoise: clean states into the corrupted run; noise: the reverse")
    what: list[str] = Field(["resid", "heads"], min_length=1, description="states to patch: resid, attn, mlp, heads")
    batch: int = Field(32, ge=1, description="patches per forward pass (one per batch row; same numbers)")


def circuits_patch_step(ctx: RunContext, params: PatchParams) -> dict:
    from mindset.circuits.patching import patch

    result = patch(ctx.loaded, params.clean, params.corrupted, params.answer, params.wrong, direction=params.direction, what=params.what,
                   batch=params.batch)
    folder = ctx.run_dir / "circuits" / f"patch-{params.direction}"
    result.save(folder)
    ctx.add_section(f"Activation patching ({params.direction}): {params.clean!r} vs {params.corrupted!r}",
                    result.describe().replace("\n", "\n\n") + f"\n\n![activation patching](circuits/patch-{params.direction}/patch.png)")
    return {"logit_diff_clean": result.logit_diff_clean, "logit_diff_corrupted": result.logit_diff_corrupted,
            "strongest": {k: result.strongest(k) for k in result.grids}, "map": str(folder / "patch.json")}
