"""Claim: batched exact ablation gives one-at-a-time's importance map faster, and attribution patching
estimates it in seconds; how far the estimate can be trusted is measured, not assumed.

    python benchmarks/circuit_speed.py [--docs 5] [--granularities head] [--batch 30] [--method zero] [--graddrop]
    python benchmarks/circuit_speed.py --granularities neuron --neuron-layers 0,15 [--model tiny-llama]
    python benchmarks/circuit_speed.py --docs 20 --granularities head,attn,mlp,layer --sample 10   # the issue's table
    python benchmarks/circuit_speed.py --patch [--pairs france,eiffel] [--directions denoise,noise] [--kinds resid,heads] [--sample N]

On SmolLM2-135M and the first --docs capitals documents, per granularity: wall time of one-at-a-time
exact ablation (today's `importance`), batched exact ablation (--batch components per pass) and attribution
(first-order estimate, all documents in one forward+backward pass); max |batched - one-at-a-time| over the
components' log-prob drops (with --steps K, also integrated-gradients attribution's ρ and time; with --sample N: one-at-a-time runs on N components spread over the list, its
time is extrapolated to all of them and labelled so, and the difference is over those N); Spearman ρ and top-10 overlap of attribution against exact. With
--graddrop, also the magnitudes' agreement: ρ of |attribution| and of AtP*'s GradDrop estimate (a
magnitude, L backward passes) against |exact drop|. `neuron` maps the FFN neurons of --neuron-layers only
(SmolLM2 has 1536 per layer). --patch: `mindset.circuits.patch` one patch per pass (batch 1) against
batched (--batch patches per pass), per prompt pair, direction and state (resid and attn/mlp per layer x
position, heads per layer x head), with the max |batched - one| of the normalized scores and a total row
per pair; with --sample N one-at-a-time runs on N cells per state and its time is extrapolated (labelled so).
Results in circuit_speed.patch.json.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402


def spearman(a, b) -> float:
    """Pearson correlation of the ranks (drops are continuous: no ties to average)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def drops(result) -> np.ndarray:
    return np.array([s.drop_logprob for s in result.scores])


def without_prefix(fn, *args, **kwargs):
    """fn run with batched ablation's prefix reuse switched off (every replica runs every layer, as before it)."""
    import contextlib
    import importlib

    module = importlib.import_module("mindset.circuits.importance")
    saved, module.shared_prefix = module.shared_prefix, lambda *a, **k: contextlib.nullcontext()
    try:
        return fn(*args, **kwargs)
    finally:
        module.shared_prefix = saved


def sampled(names: list[str], n: int | None) -> list[int]:
    """n indices spread evenly over the components (all of them without --sample): one-at-a-time is timed on
    these and its total extrapolated, and batched is compared with it on these."""
    if not n or n >= len(names):
        return list(range(len(names)))
    return sorted({int(round(i)) for i in np.linspace(0, len(names) - 1, n)})


def magnitude_rho(estimate, exact) -> float:
    return spearman(np.abs(estimate), np.abs(exact))


HEADERS = ["granularity", "components", "one-at-a-time s", "batched s", "speed-up", "attribution s", "speed-up", "max |batched − one|",
           "Spearman ρ (attr vs exact)", "top-10 overlap"]


def graddrop_drops(loaded, suite, comps, method: str) -> np.ndarray:
    """GradDrop's per-component estimate, averaged over documents (attribution.attribute(graddrop=True))."""
    from mindset.circuits.ablation import collect_stats
    from mindset.circuits.attribution import attribute
    from mindset.circuits.suite import gold_batches
    from mindset.evaluate.loglikelihood import model_max_length

    max_length = model_max_length(loaded.model, loaded.tokenizer)
    stats = collect_stats(loaded.model, comps, suite.sequences(loaded.tokenizer, max_length)) if method == "mean" else None
    batches = gold_batches(suite, loaded.tokenizer, max_length, len(suite.items), loaded.device)
    return attribute(loaded.model, comps, batches, method, stats, graddrop=True).numpy().mean(0)


def speed_table(args, loaded, suite) -> None:
    from mindset.circuits import importance, list_components

    rows, data = [], {"model": args.model, "docs": len(suite.items), "batch": args.batch, "coarse_batch": args.coarse_batch, "method": args.method, "results": {}}
    with_steps = set(args.steps_on.split(",")) if args.steps > 1 else set()
    headers = HEADERS + ([f"ρ integrated ({args.steps} steps) vs exact", "integrated s"] if with_steps else [])
    headers += ["ρ |attr| vs |exact|", "ρ GradDrop vs |exact|", "GradDrop s"] if args.graddrop else []
    for g in args.granularities.split(","):
        components = None
        if g == "neuron":
            layers = {int(i) for i in args.neuron_layers.split(",")}
            components = [c.name for c in list_components(loaded.model, "neuron") if c.layer in layers]
        kwargs = {"components": components} if components else {}
        batch = args.batch if g in ("head", "neuron") else args.coarse_batch
        batched, t_batched = timed(importance, loaded, suite, g, args.method, batch=batch, **kwargs)
        if args.compare_prefix:
            plain, t_plain = timed(without_prefix, importance, loaded, suite, g, args.method, batch=batch, **kwargs)
            data.setdefault("batched_without_prefix_s", {})[g] = t_plain
            data.setdefault("prefix_max_abs_diff", {})[g] = float(np.abs(drops(plain) - drops(batched)).max())
            print(f"{g}: batched without prefix reuse {t_plain:.1f} s, with {t_batched:.1f} s", flush=True)
        names = [sc.name for sc in batched.scores]
        sample = sampled(names, args.sample)
        one_names = {"components": [names[i] for i in sample]} if args.sample else kwargs
        one, t_one = (None, float("nan")) if args.skip_one else timed(importance, loaded, suite, g, args.method, **one_names)
        t_one_measured = t_one
        if one is not None and args.sample:
            t_one *= len(names) / len(sample)  # each one-at-a-time run costs the same: a full pass per component
        attr, t_attr = timed(importance, loaded, suite, g, args.method, estimate="attribution", batch=len(suite.items), **kwargs)
        exact = drops(batched)  # the exact reference: tested equal to one-at-a-time, and compared below
        diff = float(np.abs(exact[sample] - drops(one)).max()) if one is not None else float("nan")
        rho = spearman(drops(attr), exact)
        k = min(10, len(exact))
        top = len(set(np.argsort(-exact)[:k]) & set(np.argsort(-drops(attr))[:k]))
        result = {
            "components": len(exact), "one_at_a_time_s": t_one, "batched_s": t_batched, "attribution_s": t_attr,
            "one_at_a_time_sampled": [names[i] for i in sample] if args.sample else None, "one_at_a_time_measured_s": t_one_measured,
            "max_abs_batched_minus_one": diff, "spearman_attribution_vs_exact": rho, f"top{k}_overlap": top,
            "baseline_accuracy": batched.baseline_accuracy,
        }
        one_cell = f"{t_one:.1f}" + (f" (extrapolated from {len(sample)})" if args.sample and one is not None else "")
        row = [g, len(exact), one_cell, f"{t_batched:.1f}", f"{t_one / t_batched:.1f}x", f"{t_attr:.1f}", f"{t_one / t_attr:.0f}x",
               f"{diff:.1e}", f"{rho:.3f}", f"{top}/{k}"]
        if g in with_steps:
            ig, t_ig = timed(importance, loaded, suite, g, args.method, estimate="attribution", batch=len(suite.items), steps=args.steps, **kwargs)
            result.update({"integrated_steps": args.steps, "spearman_integrated_vs_exact": spearman(drops(ig), exact), "integrated_s": t_ig})
            row += [f"{result['spearman_integrated_vs_exact']:.3f}", f"{t_ig:.1f}"]
        elif with_steps:
            row += ["—", "—"]
        if args.graddrop:
            comps = [next(c for c in list_components(loaded.model, g) if c.name == s.name) for s in batched.scores]
            gd, t_gd = timed(graddrop_drops, loaded, suite, comps, args.method)
            result.update({"spearman_abs_attribution_vs_abs_exact": magnitude_rho(drops(attr), exact),
                           "spearman_graddrop_vs_abs_exact": spearman(gd, np.abs(exact)), "graddrop_s": t_gd})
            row += [f"{result['spearman_abs_attribution_vs_abs_exact']:.3f}", f"{result['spearman_graddrop_vs_abs_exact']:.3f}", f"{t_gd:.1f}"]
        data["results"][g] = result
        print(f"{g}: one-at-a-time {t_one:.1f} s, batched {t_batched:.1f} s, attribution {t_attr:.1f} s, ρ {rho:.3f}", flush=True)
        rows.append(row)
        stem = args.out or (__file__ if args.method == "zero" else str(Path(__file__).with_suffix(f".{args.method}.py")))
        title = (f"Circuit importance speed: {args.model}, {len(suite.items)} capitals documents, {args.method} ablation, batch {args.batch} (attn/mlp/layer {args.coarse_batch})"
                 + (f", one-at-a-time extrapolated from {args.sample} components per granularity" if args.sample else ""))
        publish(stem, title, headers, rows + total_row(data["results"], len(headers)), data)  # after each granularity, so a long run's finished rows are kept


def total_row(results: dict, width: int) -> list[list]:
    """All granularities together (the issue's 270 heads + 30 MLPs + 30 layers is one map-everything run)."""
    if len(results) < 2:
        return []
    t = {key: sum(r[key] for r in results.values()) for key in ("one_at_a_time_s", "batched_s", "attribution_s")}
    row = ["total", sum(r["components"] for r in results.values()), f"{t['one_at_a_time_s']:.1f}", f"{t['batched_s']:.1f}",
           f"{t['one_at_a_time_s'] / t['batched_s']:.1f}x", f"{t['attribution_s']:.1f}", f"{t['one_at_a_time_s'] / t['attribution_s']:.0f}x"]
    return [row + [""] * (width - len(row))]


PATCH_PAIRS = {  # name -> (clean, corrupted, answer, wrong); each pair's two prompts tokenize to the same length on SmolLM2
    "france": ("The capital of France is", "The capital of Italy is", " Paris", " Rome"),
    # a different relation (landmark -> city) with a three-token subject on both sides (E|iffel|Tower, Col|osse|um):
    # three changed positions instead of one, six tokens, so it costs what France/Italy costs
    "eiffel": ("The Eiffel Tower is in", "The Colosseum is in", " Paris", " Rome"),
    "ioi": ("When Mary and John went to the store, John gave a drink to", "When Mary and John went to the store, Mary gave a drink to", " Mary", " John"),
    # tiny models' byte tokenizer: letters of equal count, one-byte answers
    "spain": ("The capital of Spain is", "The capital of Italy is", "x", "y"),
    "count": ("one two three four", "one two thrxx four", "a", "b"),
}
DEFAULT_PAIRS = {"smollm2-135m": "france,eiffel", "tiny": "spain,count"}
LOAD_NOTE = "one thread, machine shared (2 cores, other engineers' runs alongside)"


def one_at_a_time(loaded, pair, kind: str, direction: str, cells: list | None) -> tuple[np.ndarray, float, float]:
    """Raw logit differences of `cells` (all of the kind's grid when None: `patch(..., batch=1)` itself), one patch per
    forward pass, and the seconds it took: (the two recorded runs, the patched passes; all in the second when None). A sample runs the same two recorded runs and `run_patches` with one
    group per pass, which is what `patch` does at batch 1, on those cells only."""
    from mindset.circuits.patching import _tokens, patch, record, run_patches

    if cells is None:
        one, seconds = timed(patch, loaded, *pair, direction=direction, what=(kind,), batch=1)
        return np.asarray(one.logit_diffs[kind]), 0.0, seconds
    start = time.perf_counter()
    clean_ids, corrupted_ids, a, w = _tokens(loaded, *pair)
    x_clean, x_corrupted = torch.tensor([clean_ids]), torch.tensor([corrupted_ids])
    source, target = (record(loaded.model, x_clean, (kind,))[1], x_corrupted) if direction == "denoise" else (record(loaded.model, x_corrupted, (kind,))[1], x_clean)
    record(loaded.model, target, (kind,))  # patch records both runs; so does the sample, to time the same work
    setup = time.perf_counter() - start
    lds = np.array([float(run_patches(loaded.model, target, source, [[p]], a, w)[0]) for p in cells])
    return lds, setup, time.perf_counter() - start - setup


def patch_row(args, loaded, name: str, direction: str, kind: str) -> tuple[list, dict]:
    """One (pair, direction, state): batched `patch` against one patch per pass, on every cell or a --sample of them."""
    from mindset.circuits.patching import all_patches, patch

    pair = PATCH_PAIRS[name]
    batched, t_batched = timed(patch, loaded, *pair, direction=direction, what=(kind,), batch=args.batch)
    raw = np.asarray(batched.logit_diffs[kind])
    cells = all_patches(loaded.model, kind, len(batched.tokens))
    picked = [cells[i] for i in sampled([str(c) for c in cells], args.sample)] if args.sample else None
    one, t_setup, t_passes = one_at_a_time(loaded, pair, kind, direction, picked)
    t_measured = t_setup + t_passes
    if picked is None:
        diff_raw = float(np.nanmax(np.abs(one - raw)))
        t_one = t_measured
    else:
        diff_raw = float(np.abs(one - np.array([raw[p.layer, p.index] for p in picked])).max())
        t_one = t_setup + t_passes * len(cells) / len(picked)  # every patched pass costs the same: one forward of the target prompt
    span = batched.logit_diff_clean - batched.logit_diff_corrupted
    (layer, index, score), = batched.strongest(kind, 1)
    where = f"L{layer}.H{index}" if kind == "heads" else f"L{layer} at {batched.tokens[index]!r}"
    one_cell = f"{t_one:.1f}" + (f" (extrapolated from {len(picked)})" if picked else "")
    row = [name, direction, kind, len(cells), one_cell, f"{t_batched:.1f}", f"{t_one / t_batched:.1f}x", f"{diff_raw / abs(span):.1e}", f"{where} ({score:.2f})"]
    result = {"pair": name, "clean": pair[0], "corrupted": pair[1], "answer": pair[2], "wrong": pair[3], "direction": direction, "kind": kind,
              "cells": len(cells), "one_at_a_time_s": t_one, "one_at_a_time_measured_s": t_measured,
              "one_at_a_time_sampled": len(picked) if picked else None, "batched_s": t_batched,
              "max_abs_diff_normalized": diff_raw / abs(span), "max_abs_diff_logit_diff": diff_raw,
              "logit_diff_clean": batched.logit_diff_clean, "logit_diff_corrupted": batched.logit_diff_corrupted, "strongest": [layer, index, score]}
    return row, result


def patch_total(name: str, results: list[dict]) -> list:
    """Every direction and state of one pair together: what mapping the whole pair costs."""
    t_one, t_batched = sum(r["one_at_a_time_s"] for r in results), sum(r["batched_s"] for r in results)
    worst = max(r["max_abs_diff_normalized"] for r in results)
    one_cell = f"{t_one:.1f}" + (" (extrapolated)" if any(r["one_at_a_time_sampled"] for r in results) else "")
    return [name, "all", "all", sum(r["cells"] for r in results), one_cell, f"{t_batched:.1f}", f"{t_one / t_batched:.1f}x", f"{worst:.1e}", ""]


def patch_table(args, loaded) -> None:
    from mindset.circuits.patching import KINDS

    names = (args.pairs or DEFAULT_PAIRS["tiny" if args.model.startswith("tiny") else "smollm2-135m"]).split(",")
    unknown = [n for n in names if n not in PATCH_PAIRS]
    if unknown:
        sys.exit(f"unknown prompt pair {unknown[0]!r}; choose from {', '.join(PATCH_PAIRS)}")
    directions, kinds = args.directions.split(","), args.kinds.split(",") if args.kinds else list(KINDS)
    rows, data = [], {"model": args.model, "batch": args.batch, "threads": torch.get_num_threads(), "load": LOAD_NOTE, "sample": args.sample, "results": []}
    headers = ["pair", "direction", "state", "cells", "one-at-a-time s", "batched s", "speed-up", "max |batched − one| (normalized)", "strongest cell"]
    title = (f"Activation patching speed: {args.model}, batch {args.batch}, {LOAD_NOTE}"
             + (f"; one-at-a-time extrapolated from {args.sample} cells per state" if args.sample else ""))
    for name in names:
        mine = []
        for direction in directions:
            for kind in kinds:
                row, result = patch_row(args, loaded, name, direction, kind)
                rows.append(row)
                mine.append(result)
                print(row, flush=True)
        rows.append(patch_total(name, mine))
        data["results"] += mine
        publish(args.out or str(Path(__file__).with_suffix(".patch.py")), title, headers, rows, data)  # after each pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--docs", type=int, default=5)
    parser.add_argument("--granularities", default="head", help="comma-separated: head,attn,mlp,layer,neuron")
    parser.add_argument("--neuron-layers", default="0", help="with neuron: the layers whose neurons are mapped")
    parser.add_argument("--batch", type=int, default=30, help="components (patches) per pass for batched exact ablation (patching)")
    parser.add_argument("--coarse-batch", type=int, default=10,
                        help="components per pass for attn, mlp, layer (one per layer: smaller passes start higher, see circuits/prefix.py)")
    parser.add_argument("--method", default="zero", choices=["zero", "mean"])
    parser.add_argument("--graddrop", action="store_true", help="also AtP*'s GradDrop and the magnitudes' ρ")
    parser.add_argument("--sample", type=int, default=None,
                        help="time one-at-a-time on N components per granularity (--patch: cells per state), spread evenly, and extrapolate; batched is compared on those N")
    parser.add_argument("--steps", type=int, default=1, help="also integrated-gradients attribution with this many steps (circuits/integrated.py)")
    parser.add_argument("--steps-on", default="attn,mlp,layer",
                        help="the granularities --steps applies to: it costs steps passes per hook point, so on heads (one point per layer) "
                             "30 x steps forward+backward passes on SmolLM2, against one for plain attribution")
    parser.add_argument("--compare-prefix", action="store_true", help="also time batched ablation without prefix reuse (before/after)")
    parser.add_argument("--skip-one", action="store_true", help="no one-at-a-time run (batched is the exact reference; tested equal)")
    parser.add_argument("--patch", action="store_true", help="the activation-patching table instead")
    parser.add_argument("--pairs", default=None, help=f"with --patch: comma-separated prompt pairs ({', '.join(PATCH_PAIRS)}); default france,eiffel (tiny: spain,count)")
    parser.add_argument("--directions", default="denoise,noise", help="with --patch: denoise, noise or both")
    parser.add_argument("--kinds", default=None, help="with --patch: states to patch (default resid,attn,mlp,heads)")
    parser.add_argument("--out", default=None, help="write the JSON beside this path instead (e.g. a scratch run)")
    args = parser.parse_args()

    from mindset.circuits import ChanceWarning, build_suite
    from mindset.models import load

    warnings.simplefilter("ignore", ChanceWarning)
    loaded = load(args.model, device="cpu", dtype="float32")
    if args.patch:
        patch_table(args, loaded)
    else:
        speed_table(args, loaded, build_suite("capitals", limit=args.docs))


if __name__ == "__main__":
    main()
