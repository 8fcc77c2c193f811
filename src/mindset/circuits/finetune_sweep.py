"""Sweep 4: pretrain once per seed, then fine-tune that model once per variant (protected or not), compare.

    mindset experiment run recipes/experiments/protected-finetune.yaml

The experiment file is train.sweep's (base, seeds, variants) plus `finetune:`, a
mindset.circuits.finetune.FinetuneStage every variant runs; a variant's own `finetune:` key is merged into
it, its other keys into base (variants that change base get their own pretraining runs). Runs:
OUT/pretrained-s<seed>/ (pretraining, kept or resumed as in any sweep), OUT/<variant>-s<seed>/ (fine-tuning,
kept when finetune.json exists, else started again), OUT/compare/ (val loss = the original text's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindset.circuits.finetune import RECORD, FinetuneStage, run_finetune
from mindset.configfile import load_yaml, validate
from mindset.errors import MindsetError
from mindset.train.pretrain_config import PretrainConfig
from mindset.train.sweep import Experiment, ensure_pretrained, merged, read_experiment


@dataclass
class FinetuneRun:
    name: str
    variant: str
    seed: int
    pretrain: PretrainConfig  # the run it starts from
    stage: FinetuneStage


def read_finetune_experiment(path: str | Path, seeds: list[int] | None = None, only: list[str] | None = None,
                             train: dict[str, Any] | None = None) -> tuple[Experiment, list[FinetuneRun]]:
    """Every fine-tuning run of the experiment with the pretraining run it starts from, all validated first;
    `train` (tokens, eval_every) overrides both stages' settings."""
    experiment, configs = read_experiment(path, seeds, only, train)
    if experiment.finetune is None:
        raise MindsetError(f"{path} has no finetune stage; run it as a plain pretraining sweep")
    doc = load_yaml(path)
    stages: dict[str, FinetuneStage] = {}
    pretrain_names: dict[str, str] = {}
    runs = []
    for config in configs:
        change = experiment.variants[config.variant].get("finetune")
        if config.variant not in stages:
            data = merged(merged(experiment.finetune, change or {}), {"train": train or {}})
            stages[config.variant] = validate(FinetuneStage, data, doc, ("variants", config.variant, "finetune") if change else ("finetune",))
        key = json.dumps(config.model_dump(mode="json", exclude={"name", "variant", "seed"}), sort_keys=True)
        prefix = pretrain_names.setdefault(key, f"pretrained{len(pretrain_names) or ''}")
        pretrain = config.model_copy(update={"name": f"{prefix}-s{config.seed}", "variant": prefix})
        runs.append(FinetuneRun(config.name, config.variant, config.seed, pretrain, stages[config.variant]))
    return experiment, runs


def run_finetune_experiment(path: str | Path, out: str | Path, *, seeds: list[int] | None = None, only: list[str] | None = None,
                            train: dict[str, Any] | None = None, progress: bool = True, say=print) -> dict:
    """Pretrain what is missing, fine-tune every run not finished, compare the fine-tuned runs."""
    from mindset.train.compare import compare_runs

    experiment, runs = read_finetune_experiment(path, seeds, only, train)
    out = Path(out)
    pretrained = {}
    for run in runs:
        if run.pretrain.name not in pretrained:
            pretrained[run.pretrain.name] = ensure_pretrained(run.pretrain, out, "[pretrain]", progress, say)
    for number, run in enumerate(runs, 1):
        label = f"[{number}/{len(runs)}] {run.name}"
        if (out / run.name / RECORD).is_file():
            say(f"{label}: finished earlier, kept")
            continue
        protect = "protected" if run.stage.protect is not None else "unprotected"
        say(f"{label}: fine-tuning {run.pretrain.name} ({protect}, {run.stage.train.steps} steps)")
        run_finetune(pretrained[run.pretrain.name] / "model", run.pretrain.data, run.stage, out, name=run.name, variant=run.variant,
                     seed=run.seed, progress=progress)
    return compare_runs([out / r.name for r in runs], out / "compare", experiment.question)
