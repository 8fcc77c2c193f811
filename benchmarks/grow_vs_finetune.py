"""Claim (issue 15): growing a model (LLaMA Pro block expansion) teaches it something new while forgetting far
less than full fine-tuning. Goal: at equal new-skill gain, growth forgets at most a quarter of what full FT forgets.

SmolLM2-135M learns made-up facts ("The capital of Vopurstan is Ronthel.", benchmarks/facts.py) from the same
sentences, the same batches and the same number of steps, four ways:
  full FT      every parameter trains;
  LoRA         peft adapters (rank --lora-rank) on every attention and FFN projection, merged afterwards;
  grow         mindset.surgery.insert_layers(init="identity") 4 times, spread through depth as LLaMA Pro does;
               only the 4 new blocks train;
  grow+protect the same, under mindset's canary protection (mindset.circuits.Protection: the canary monitor
               scores held-apart canary documents every --check-every steps and rolls back and slows the blocks
               that moved when one drops more than --max-drop).
Each method tries the same number of learning rates (its own grid: full FT needs far smaller ones) and keeps the
one with the largest held-out gain (facts.choose). Measured after training:
  new skill   exact match (greedy) and answer log-prob on phrasings never trained on (facts.HELDOUT_TEMPLATES);
  forgetting  rise of valid perplexity (the shipped Austen valid text) and drop of canary accuracy (shipped
              suites; documents disjoint from those the protection watches);
  cost        trainable parameters, training wall time.

    python benchmarks/grow_vs_finetune.py                         # --preset quick: CPU; 44 min on the shared, busy 2 cores
    python benchmarks/grow_vs_finetune.py --preset full --device cuda   # bf16, 32 facts, 200 steps, 3 lrs
    python benchmarks/grow_vs_finetune.py --preset smoke          # a minute: does everything run
LoRA needs peft: pip install 'mindset-lab[bench]'.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402
from facts import (  # noqa: E402
    HELDOUT_TEMPLATES,
    TRAIN_TEMPLATES,
    choose,
    expansion_points,
    fact_suite,
    forgetting,
    goal,
    make_facts,
    matched,
    ratio,
    training_sentences,
)

METHODS = ["full FT", "LoRA", "grow", "grow+protect"]
PRESETS = {  # grids: learning rates per method; each preset tries as many for every method
    "smoke": dict(facts=2, steps=3, batch=2, canaries=["capitals"], canary_limit=2, valid_tokens=128, check_every=2,
                  grids={"full FT": [1e-4], "LoRA": [2e-3], "grow": [1e-3]}),
    "quick": dict(facts=8, steps=24, batch=8, canaries=["capitals", "copying"], canary_limit=10, valid_tokens=512, check_every=8,
                  grids={"full FT": [5e-5, 2e-4], "LoRA": [1e-3, 4e-3], "grow": [5e-4, 2e-3]}),
    "full": dict(facts=32, steps=200, batch=16, canaries=["capitals", "copying", "ordering", "arithmetic"], canary_limit=40,
                 valid_tokens=16384, check_every=25, grids={"full FT": [1e-5, 3e-5, 1e-4], "LoRA": [3e-4, 1e-3, 3e-3], "grow": [1e-4, 3e-4, 1e-3]}),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=list(PRESETS), default="quick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="default: float32 on cpu, bfloat16 on cuda")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of: {', '.join(METHODS)}")
    for name in ("facts", "steps", "batch", "canary_limit", "valid_tokens", "check_every"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None, help="overrides the preset")
    parser.add_argument("--new-blocks", type=int, default=4)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--max-drop", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reprint", action="store_true", help="re-print the table and the verdict from the JSON beside this script; trains nothing")
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    args.methods = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    return args


def make_batches(tokenizer, sentences: list[str], steps: int, batch: int, seed: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The one data order every run sees: epochs of shuffled sentences, cut into batches, right-padded."""
    rnd, order = random.Random(seed), []
    while len(order) < steps * batch:
        epoch = list(range(len(sentences)))
        rnd.shuffle(epoch)
        order += epoch
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = []
    for s in range(steps):
        enc = tokenizer([sentences[i] for i in order[s * batch : (s + 1) * batch]], padding=True, return_tensors="pt")
        out.append((enc["input_ids"].to(device), enc["attention_mask"].to(device)))
    return out


def build_suites(facts, args) -> dict:
    """New-skill suites (held-out phrasings; the first training phrasing, for memorization) and canaries:
    each shipped canary's first documents are scored for forgetting, the next ones watched by the protection."""
    from mindset.circuits.suite import build_suite

    canaries, watched = {}, {}
    for name in args.canaries:
        scored, watch = build_suite(name, limit=2 * args.canary_limit, seed=args.seed).split(args.canary_limit)
        canaries[name], watched[name] = scored, watch
    return {"heldout": fact_suite(facts, HELDOUT_TEMPLATES, "facts_heldout"), "seen": fact_suite(facts, TRAIN_TEMPLATES[:1], "facts_seen"),
            "canaries": canaries, "watched": list(watched.values())}


def measure(model, tokenizer, suites: dict, valid_ids: list[int]) -> dict:
    from mindset.circuits.suite import score_suite
    from mindset.evaluate.perplexity import perplexity_of_ids

    out = {}
    for key in ("heldout", "seen"):
        score = score_suite(model, suites[key], tokenizer)
        out[key + "_em"], out[key + "_logprob"] = score.accuracy, score.logprob
    out["canaries"] = {name: score_suite(model, suite, tokenizer).accuracy for name, suite in suites["canaries"].items()}
    out["ppl"] = perplexity_of_ids(model, valid_ids, context=min(512, len(valid_ids)), stride=min(512, len(valid_ids))).perplexity
    return out


# --- the four ways to teach ---------------------------------------------------------------------------

def projection_names(model) -> list[str]:
    """Module names LoRA targets: every attention and FFN projection, as the anatomy finds them."""
    from mindset.models.anatomy import blocks

    b = blocks(model)[0]
    wanted = {id(m) for m in (b.attention.q, b.attention.k, b.attention.v, b.attention.qkv, b.attention.o, b.ffn.up, b.ffn.gate, b.ffn.down) if m is not None}
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if id(m) in wanted})


def prepare(method: str, base, args):
    """(model to train, names of its trainable parameters)."""
    if method == "full FT":
        model = copy.deepcopy(base)
        return model, {n for n, _ in model.named_parameters()}
    if method == "LoRA":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank, lora_dropout=0.0, target_modules=projection_names(base))
        model = get_peft_model(copy.deepcopy(base), config)
        return model, {n for n, p in model.named_parameters() if p.requires_grad}
    from mindset.models.anatomy import blocks, n_layers
    from mindset.surgery import insert_layers

    after, new = expansion_points(n_layers(base), args.new_blocks)
    model = base
    for a in sorted(after, reverse=True):  # deepest first: the shallower indices stay valid
        model = insert_layers(model, after=a, n=1, init="identity")
    prefixes = tuple(blocks(model)[i].path + "." for i in new)
    trainable = {n for n, _ in model.named_parameters() if n.startswith(prefixes)}
    return model, trainable


def train(model, tokenizer, trainable: set[str], lr: float, batches, protection=None) -> float:
    """A plain AdamW loop (constant lr, grad-norm clip 1) over `batches`; returns wall seconds. With a protection,
    its param groups are the optimizer's and mindset's CanaryMonitor runs at each step, as under Lightning."""
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    params = [p for n, p in model.named_parameters() if n in trainable]
    monitor, trainer = None, None
    if protection is not None:
        protection.setup(model, tokenizer, trainable, lr)
        groups = protection.param_groups()
    else:
        groups = [{"params": params, "lr": lr}]
    fused = {"fused": True} if params[0].device.type == "cpu" else {}
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0, **fused)
    if protection is not None:  # the monitor reads these four attributes of a Lightning trainer
        trainer = SimpleNamespace(optimizers=[optimizer], global_step=0, lr_scheduler_configs=[], logger=None)
        monitor = protection.callback()
        monitor.on_train_start(trainer, None)
    model.train()
    start = time.perf_counter()
    for step, (ids, mask) in enumerate(batches, 1):
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if monitor is not None:
            trainer.global_step = step
            monitor.on_train_batch_end(trainer, None, None, None, step - 1)
    if monitor is not None:
        monitor.on_train_end(trainer, None)
    model.eval()
    return time.perf_counter() - start


def run(method: str, lr: float, base, tokenizer, batches, suites, valid_ids, before, args) -> dict:
    from mindset.circuits import Protection, ProtectionConfig

    model, trainable = prepare(method, base, args)
    n_trainable = sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    protection = None
    if method == "grow+protect":
        config = ProtectionConfig(check_every=args.check_every, max_drop=args.max_drop)
        protection = Protection(config, canaries=suites["watched"])
    seconds = train(model, tokenizer, trainable, lr, batches, protection)
    if method == "LoRA":
        model = model.merge_and_unload()
    after = measure(model, tokenizer, suites, valid_ids)
    out = {"method": method, "lr": lr, "trainable": n_trainable, "train_seconds": seconds, "after": after,
           "gain_em": after["heldout_em"] - before["heldout_em"], "gain_logprob": after["heldout_logprob"] - before["heldout_logprob"],
           "forgetting": forgetting(before, after), "rollbacks": len(protection.events) if protection else None}
    if protection is not None:
        out["protection"] = {"history": protection.history, "events": protection.events}
    print(f"  {method} lr {lr:g}: held-out EM {after['heldout_em']:.3f}, seen EM {after['seen_em']:.3f}, ppl {after['ppl']:.2f}, "
          f"canaries {after['canaries']}, {seconds:.0f} s", flush=True)
    del model
    return out


# --- the report -----------------------------------------------------------------------------------------

def fmt_ratio(value) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def report(args, before, runs, chosen, total) -> None:
    from rich.console import Console

    from mindset.tables import rich_table

    Console().print(rich_table("Learning-rate search (every run)", ["method", "lr", "held-out EM", "held-out logprob", "seen EM", "valid ppl", "canary acc", "train s"],
                               [[r["method"], f"{r['lr']:g}", f"{r['after']['heldout_em']:.3f}", f"{r['after']['heldout_logprob']:.2f}", f"{r['after']['seen_em']:.3f}",
                                 f"{r['after']['ppl']:.2f}", " ".join(f"{v:.2f}" for v in r["after"]["canaries"].values()), f"{r['train_seconds']:.0f}"] for r in runs]))
    ref = chosen.get("full FT")
    rows = []
    for method, r in chosen.items():
        f = r["forgetting"]
        rows.append([method, f"{r['lr']:g}", f"{r['trainable'] / 1e6:.2f} M", f"{before['heldout_em']:.2f} → {r['after']['heldout_em']:.2f}",
                     f"{r['gain_logprob']:+.2f}", f"{r['after']['seen_em']:.2f}", f"{100 * f['ppl_rise']:+.1f}%",
                     fmt_ratio(ratio(f["ppl_rise"], ref["forgetting"]["ppl_rise"]) if ref else None),
                     f"{100 * f['canary_drop']:+.1f}", fmt_ratio(ratio(f["canary_drop"], ref["forgetting"]["canary_drop"]) if ref else None),
                     "-" if r["rollbacks"] is None else str(r["rollbacks"]), f"{r['train_seconds']:.0f}"])
    full_runs = [r for r in runs if r["method"] == "full FT"]
    against = {m: matched(full_runs, chosen[m]) for m in ("grow", "grow+protect") if ref and m in chosen}
    verdicts = {m: {**goal(against[m], chosen[m]), "full_ft_lr": against[m]["lr"]} for m in against}
    title = (f"SmolLM2-135M taught {args.facts} made-up capitals, {args.steps} steps x {args.batch} sentences, {args.device} {args.dtype} "
             f"(before: held-out EM {before['heldout_em']:.2f}, valid ppl {before['ppl']:.2f}, canaries "
             + ", ".join(f"{k} {v:.2f}" for k, v in before["canaries"].items()) + ")")
    headers = ["method", "lr", "trainable", "held-out EM", "Δ logprob", "seen EM", "Δ valid ppl", "ppl rise / FT", "canary drop (pts)",
               "drop / FT", "rollbacks", "train s"]
    publish(__file__, title, headers, rows,
            {"args": {k: v for k, v in vars(args).items()}, "before": before, "runs": runs, "chosen": {m: r["lr"] for m, r in chosen.items()},
             "goal": verdicts, "total_seconds": total,
             "facts": [f.__dict__ for f in make_facts(args.facts, args.seed)], "rule": choose.__doc__.split(":", 1)[1].strip()})
    for method, v in verdicts.items():
        g, r = chosen[method], against[method]
        quarter = ", ".join(f"{k}: {'n/a (full FT lost nothing)' if ok is None else ('within' if ok else 'over') + ' a quarter'}" for k, ok in v["quarter"].items())
        lost = ", ".join(f"{k} {g['forgetting'][k]:+.3f} vs {r['forgetting'][k]:+.3f}" for k in ("ppl_rise", "canary_drop"))
        print(f"goal ({method} lr {g['lr']:g} vs full FT lr {r['lr']:g}, the full-FT run matching its gain): {'HOLDS' if v['holds'] else 'DOES NOT HOLD'} — "
              f"held-out EM gain {g['gain_em']:+.2f} vs {r['gain_em']:+.2f} ({'equal' if v['equal_gain'] else 'not equal'} within 0.1); {lost}; {quarter}")
    print(f"total {total / 60:.1f} min")


def reprint() -> None:
    """The report again from the saved runs (after a change to the report, without hours of training)."""
    import json

    data = json.loads(Path(__file__).with_suffix(".json").read_text())
    runs = data["runs"]
    chosen = {m: choose([r for r in runs if r["method"] == m]) for m in dict.fromkeys(r["method"] for r in runs)}
    report(argparse.Namespace(**data["args"]), data["before"], runs, chosen, data["total_seconds"])


def main() -> None:
    args = parse_args()
    os.environ.setdefault("COLUMNS", "200")  # rich: the tables are wide
    if args.reprint:
        return reprint()
    if "LoRA" in args.methods:
        try:
            import peft  # noqa: F401
        except ImportError:
            print("LoRA skipped: peft is not installed (pip install 'mindset-lab[bench]')")
            args.methods.remove("LoRA")
    from mindset.data import corpus_text
    from mindset.models import load

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    loaded = load("smollm2-135m", device=args.device, dtype=args.dtype)
    base, tokenizer = loaded.model.eval(), loaded.tokenizer
    facts = make_facts(args.facts, args.seed)
    batches = make_batches(tokenizer, training_sentences(facts), args.steps, args.batch, args.seed, base.device)
    suites = build_suites(facts, args)
    valid_ids = tokenizer(corpus_text("valid"), add_special_tokens=False)["input_ids"][: args.valid_tokens]
    before = measure(base, tokenizer, suites, valid_ids)
    print(f"before: {before}", flush=True)
    runs, chosen = [], {}
    for method in args.methods:
        grid = args.grids["grow" if method.startswith("grow") else method]
        tried = [run(method, lr, base, tokenizer, batches, suites, valid_ids, before, args) for lr in grid]
        runs += tried
        chosen[method] = choose(tried)
    report(args, before, runs, chosen, time.perf_counter() - start)


if __name__ == "__main__":
    main()
