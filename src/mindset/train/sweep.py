"""An experiment: one question, several variants, several seeds; every run a `pretrain` run, then one comparison.

    name: memory-vs-dense
    question: does featural memory match dense FFNs at equal parameters?
    seeds: [0, 1, 2]
    base: {model: {...}, train: {...}}              # a pretraining config without name, variant, seed
    variants:
      dense: {}
      memory: {surgery: [{ffn_to_memory: {k: 32}}]}  # merged into base: mappings key by key, lists replaced
      dense-half: {model: {d_ff: 256}}

Every (variant, seed) config is validated before the first run starts. Runs go to OUT/<variant>-s<seed>/;
a finished one (pretrain.json) is kept, an interrupted one (checkpoints) resumes, so running the
experiment again after a crash or Ctrl-C continues it. The comparison is written to OUT/compare/.

An experiment with a `finetune:` stage (protected-finetune.yaml) pretrains once per seed (OUT/pretrained-s<seed>/)
and fine-tunes that model once per variant; a variant's `finetune:` key changes the stage. The stage is
mindset.circuits.finetune's (it needs circuits' protection), run by `mindset experiment run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mindset.configfile import load_yaml, validate
from mindset.errors import MindsetError
from mindset.train.pretrain_config import NAME, PretrainConfig


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=NAME, description="the experiment's folder: runs/<name>")
    question: str = Field("", description="what the experiment asks, for the report")
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="seeds every variant runs with")
    base: dict[str, Any] = Field({}, description="the pretraining config every variant starts from")
    variants: dict[str, dict[str, Any]] = Field(..., min_length=1, description="variant name -> its changes to base")
    finetune: dict[str, Any] | None = Field(None, description="a fine-tuning stage after pretraining, every variant from its seed's pretrained model (mindset.circuits.finetune.FinetuneStage)")


def merged(base: dict, change: dict) -> dict:
    """`base` with `change` written over it: nested mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in change.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_experiment(path: str | Path, seeds: list[int] | None = None, only: list[str] | None = None,
                    train: dict[str, Any] | None = None) -> tuple[Experiment, list[PretrainConfig]]:
    """The experiment and the config of every run it makes (validated, each error naming the variant);
    `train` overrides the train settings of every run (a shorter budget for a quick look)."""
    doc = load_yaml(path)
    experiment = validate(Experiment, doc.data, doc)
    unknown = sorted(set(only or ()) - set(experiment.variants))
    if unknown:
        raise MindsetError(f"{path}: no variant {unknown[0]!r}; variants: {', '.join(experiment.variants)}")
    configs = []
    for variant, change in experiment.variants.items():
        if only and variant not in only:
            continue
        if "finetune" in change and experiment.finetune is None:
            raise MindsetError(f"{path}: variant {variant!r} changes finetune, but the experiment has no finetune stage; add one or drop the key")
        change = {k: v for k, v in change.items() if k != "finetune"}
        for seed in seeds if seeds is not None else experiment.seeds:
            data = merged(merged(experiment.base, change), {"train": train or {}}) | {"name": f"{variant}-s{seed}", "variant": variant, "seed": seed}
            configs.append(validate(PretrainConfig, data, doc, ("variants", variant)))
    return experiment, configs


def run_experiment(path: str | Path, out: str | Path, *, seeds: list[int] | None = None, only: list[str] | None = None,
                   train: dict[str, Any] | None = None, progress: bool = True, say=print) -> dict:
    """Run every (variant, seed) not already finished, then compare them all; returns compare.json's content."""
    from mindset.train.compare import compare_runs

    experiment, configs = read_experiment(path, seeds, only, train)
    if experiment.finetune is not None:
        raise MindsetError(f"{path} has a finetune stage: run it with `mindset experiment run` (mindset.circuits.finetune_sweep)")
    out = Path(out)
    for number, config in enumerate(configs, 1):
        ensure_pretrained(config, out, f"[{number}/{len(configs)}]", progress, say)
    return compare_runs([out / c.name for c in configs], out / "compare", experiment.question)


def ensure_pretrained(config: PretrainConfig, out: Path, label: str, progress: bool = True, say=print) -> Path:
    """out/<config.name>/ holding a finished pretraining run: kept if finished, resumed if interrupted, else trained."""
    from mindset.train.distill import latest_checkpoint
    from mindset.train.pretrain import RECORD, pretrain

    folder = out / config.name
    if (folder / RECORD).is_file():
        say(f"{label} {config.name}: finished earlier, kept")
        return folder
    resume = latest_checkpoint(folder / "checkpoints") is not None
    say(f"{label} {config.name}: {'resuming' if resume else 'training'} ({config.train.steps} steps)")
    pretrain(config, runs_dir=out, resume=resume, overwrite=not resume, progress=progress)
    return folder
