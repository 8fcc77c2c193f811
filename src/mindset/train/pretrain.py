"""`pretrain(config)`: train a Llama-style decoder from random initialization, resumably, on distillation's machinery.

A run folder holds: checkpoints/ (safetensors + JSON, every train.checkpoint_every steps), tb/ (TensorBoard),
metrics.json (validation loss against tokens and FLOPs, rewritten at each evaluation), model/ (the final
model, loadable with mindset.models.load) and pretrain.json (the config, parameter counts, the variant's
edits, the final numbers). The batch order depends only on the seed and the step, the model only on the
config, and the validation rows live in the checkpoints, so a run killed at any point and resumed ends
with the same weights and the same metrics as one never interrupted (timings aside).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mindset.configfile import load_yaml, validate
from mindset.fileio import atomic_write_json
from mindset.train.distill import _checkpoint_step, _Run, build_trainer, claim_run_dir, fit
from mindset.train.pretrain_config import PretrainConfig

RECORD, METRICS = "pretrain.json", "metrics.json"


@dataclass
class PretrainResult:
    run_dir: Path
    model_dir: Path
    steps: int
    parameters: int
    tokens: int
    seconds: float
    final: dict[str, Any] = field(default_factory=dict)  # the last validation row


def read_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """A pretraining YAML, validated whole (errors name the file and line); `overrides` replace top-level keys."""
    doc = load_yaml(path)
    data = {**(doc.data or {}), **(overrides or {})} if isinstance(doc.data, dict) or doc.data is None else doc.data
    return validate(PretrainConfig, data, doc)


def pretrain(config: PretrainConfig, *, runs_dir: str | Path = "runs", resume: bool = False, overwrite: bool = False,
             callbacks: Sequence[Any] = (), progress: bool = True) -> PretrainResult:
    """Build the config's model (random init + surgery), train it on its data, write the run folder."""
    import lightning as L

    from mindset.models.device import resolve_device
    from mindset.train.tokens import load_tokenizer
    from mindset.train.variants import build_model

    settings = config.train
    tokenizer = load_tokenizer(config.tokenizer)
    loaded, edits = build_model(config, tokenizer)  # the surgery checks its steps against the model here
    _check_multipliers(loaded.model, settings.lr_multipliers)
    train_blocks, valid_blocks = _data(config, tokenizer)
    run = _claim(Path(runs_dir) / config.name, resume, overwrite)  # only then is the run folder touched
    loaded.model.to(resolve_device(settings.device)).train()
    L.seed_everything(config.seed, workers=True, verbose=False)
    module, header = _module(config, loaded, edits)
    loader = _loader(train_blocks, config, run.start_step)
    own = _callbacks(config, run, valid_blocks, header, progress, tokenizer)
    trainer = build_trainer(loaded, settings, run, [*own, *callbacks], progress)
    seconds = fit(trainer, module, loader, run, settings)
    return _record(config, loaded, run, trainer, module, header, seconds)


def _check_multipliers(model, multipliers: dict[str, float]) -> None:
    from mindset.train.distill import check_multipliers

    if multipliers:
        check_multipliers({n for n, _ in model.named_parameters()}, multipliers)


def _claim(run_dir: Path, resume: bool, overwrite: bool) -> _Run:
    resume_from = claim_run_dir(run_dir, resume, overwrite)
    return _Run(run_dir, run_dir / "checkpoints", resume_from, _checkpoint_step(resume_from) if resume_from else 0)


def _data(config: PretrainConfig, tokenizer):
    """(train blocks, the fixed validation blocks) from the token cache."""
    from mindset.train.tokens import TokenBlocks, split_texts, token_file

    train_text, valid_text = split_texts(config.data)
    seq = config.train.seq_len
    train = TokenBlocks(token_file(train_text, tokenizer), seq, config.data.max_train_tokens, "train")
    valid = TokenBlocks(token_file(valid_text, tokenizer), seq, None, "valid").first(config.train.eval_tokens)
    return train, valid


def _module(config: PretrainConfig, loaded, edits: list[dict]):
    """The LightningModule, and the facts about the model every metrics file starts with."""
    from mindset.train.flops import flops_per_token, matmul_parameters, peak_flops
    from mindset.train.pretrain_module import PretrainModule

    model, settings = loaded.model, config.train
    if settings.compile:
        model.forward = torch.compile(model.forward)
    per_token = flops_per_token(model, settings.seq_len)
    peak = peak_flops(loaded.device, settings.peak_flops) if _precision(settings, loaded) == "bf16-mixed" or settings.peak_flops else None
    header = {
        "name": config.name, "variant": config.variant, "seed": config.seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "matmul_parameters": matmul_parameters(model),
        "flops_per_token": per_token, "peak_flops": peak,
        "device": _device_name(loaded.device), "precision": _precision(settings, loaded),
        "tokens_per_step": settings.tokens_per_step, "steps": settings.steps, "edits": edits,
    }  # fmt: skip
    return PretrainModule(model, settings, per_token, peak), header


def _precision(settings, loaded) -> str:
    return settings.precision if settings.precision != "auto" else ("bf16-mixed" if loaded.device.type == "cuda" else "32")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import os

    return f"cpu ({len(os.sched_getaffinity(0))} cores)" if hasattr(os, "sched_getaffinity") else "cpu"


def _loader(blocks, config: PretrainConfig, start_step: int):
    from mindset.train.data import StepBatches

    batches = StepBatches(blocks, config.train.batch_size, config.seed, start=start_step * config.train.grad_accum)
    return torch.utils.data.DataLoader(batches, batch_size=None)


def _callbacks(config: PretrainConfig, run: _Run, valid_blocks: torch.Tensor, header: dict, progress: bool, tokenizer) -> list:
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from mindset.train.pretrain_module import ValidLoss
    from mindset.train.progress_bar import progress_bar

    s = config.train
    saver = ModelCheckpoint(dirpath=run.checkpoints, filename="step={step:06d}", auto_insert_metric_name=False,
                            every_n_train_steps=s.checkpoint_every, save_top_k=s.keep_checkpoints, monitor="step", mode="max")
    out = [ValidLoss(valid_blocks, s.eval_every, s.batch_size, run.run_dir / METRICS, header), saver, LearningRateMonitor(logging_interval="step")]
    if config.schedule:
        from mindset.train.schedule import ScheduledSurgery

        out.insert(0, ScheduledSurgery(config.schedule, tokenizer, run.run_dir / "structure", config.seed, s.seq_len))  # before validation
    if progress:
        out.append(progress_bar("pretrain"))
    return out


def _record(config: PretrainConfig, loaded, run: _Run, trainer, module, header: dict, seconds: float) -> PretrainResult:
    """Save the model, then pretrain.json: what the run was and what it measured."""
    from mindset.models import save

    loaded.model = module.student.eval()  # a scheduled edit (or a resume after one) may have replaced it
    loaded.model.__dict__.pop("forward", None)  # torch.compile's wrapper is an instance attribute; the class's forward saves
    model_dir = save(loaded, run.run_dir / "model", overwrite=True)
    final = module.rows[-1] if module.rows else {}
    total_tokens = module.tokens_seen
    record = {
        **header, "config": config.model_dump(mode="json"), "resumed_from_step": run.start_step,
        "steps_done": trainer.global_step, "tokens": total_tokens, "seconds": seconds, "scheduled": module.applied,
        "parameters_final": sum(p.numel() for p in module.student.parameters()),
        "tokens_per_s": total_tokens / module.train_seconds if module.train_seconds else None,
        "final": final, "val_loss": final.get("val_loss"),
        "val_ppl": math.exp(final["val_loss"]) if final.get("val_loss") is not None else None,
    }  # fmt: skip
    if record["tokens_per_s"] and header["peak_flops"]:
        record["mfu"] = record["tokens_per_s"] * header["flops_per_token"] / header["peak_flops"]
    atomic_write_json(run.run_dir / RECORD, record)
    return PretrainResult(run.run_dir, model_dir, trainer.global_step, header["parameters"], module.tokens_seen, seconds, final)
