"""`distill(student, teacher, config)`: Lightning trains the student to match the teacher, resumably."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mindset.errors import MindsetError
from mindset.fileio import atomic_write_json, check_output
from mindset.models.anatomy import text_config
from mindset.models.int8 import refuse_int8
from mindset.models.names import select_parameters
from mindset.train.checkpoint_io import TREE, SafetensorsCheckpointIO, is_complete
from mindset.train.config import DistillConfig
from mindset.train.data import StepBatches, read_training_text, token_blocks
from mindset.train.protection import Protection


@dataclass
class DistillResult:
    run_dir: Path
    student_dir: Path
    steps: int
    trainable_params: int
    total_params: int
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)


def select_trainable(model: torch.nn.Module, patterns: Sequence[str]) -> set[str]:
    """Names of the parameters chosen by component names (L3.mlp, L0.attn, embed...) or parameter-name globs;
    every pattern must choose something. The rest are frozen (requires_grad False)."""
    chosen = select_parameters(model, patterns)
    for name, param in model.named_parameters():
        param.requires_grad_(name in chosen)
    return chosen


def check_compatible(student, teacher) -> None:
    if student.tokenizer.get_vocab() != teacher.tokenizer.get_vocab() or student.model.config.vocab_size != teacher.model.config.vocab_size:
        raise MindsetError(
            "the teacher and the student have different vocabularies; distillation compares their next-token "
            "distributions token by token, so both must use the same tokenizer"
        )


def check_memory(student, config: DistillConfig) -> None:
    """A rough lower bound of what one micro-batch needs, against what the device has free.

    Per token: teacher and student logits plus their log-softmaxes in fp32 (4 x vocab floats), and the
    student's saved activations (~16 x hidden floats per layer). Catches configurations that cannot fit
    before minutes of set-up, instead of an allocator error mid-run.
    """
    model_config = text_config(student.model.config)
    tokens = config.batch_size * config.seq_len
    per_token = 4 * model_config.vocab_size + 16 * model_config.hidden_size * model_config.num_hidden_layers
    need = tokens * per_token * 4
    free = _free_memory(student.device)
    if free is not None and need > free:
        raise MindsetError(
            f"batch_size {config.batch_size} x seq_len {config.seq_len} needs at least {need / 2**30:.1f} GiB "
            f"for activations, but {free / 2**30:.1f} GiB is free; lower them and raise grad_accum instead"
        )


def _free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step (folders named step=NNNNNN.ckpt)."""
    done = [p for p in folder.glob("step=*.ckpt") if is_complete(p)] if folder.is_dir() else []
    return max(done, key=lambda p: int(p.stem.split("=")[1]), default=None)


def claim_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from (None: a fresh run), after the existing-output rule.

    A fresh run refuses a run folder that holds anything unless `overwrite`, which deletes it first (its
    old checkpoints would otherwise mix with the new run's); `resume` needs a complete checkpoint.
    """
    resume_from = latest_checkpoint(run_dir / "checkpoints")
    if resume:
        if resume_from is None:
            raise MindsetError(f"nothing to resume: {run_dir / 'checkpoints'} holds no complete checkpoint; start again with --overwrite")
        return resume_from
    if resume_from is not None and not overwrite:
        raise MindsetError(f"{run_dir} already holds checkpoints; resume it (--resume), choose another name or pass --overwrite")
    check_output(run_dir, overwrite)
    shutil.rmtree(run_dir, ignore_errors=True)
    return None


def _checkpoint_step(path: Path) -> int:
    tree = json.loads((path / TREE).read_text())
    return next(v for k, v in tree["__dict__"] if k == "global_step")


@dataclass
class _Run:
    """Where a run writes, and where it resumes from."""

    run_dir: Path
    checkpoints: Path
    resume_from: Path | None
    start_step: int


EXTRA_CALLBACKS: ContextVar[tuple] = ContextVar("mindset_distill_callbacks", default=())


@contextmanager
def extra_callbacks(*callbacks):
    """Lightning callbacks that every `distill` run in this context adds to its own. A caller that reaches
    distill through a recipe step (the UI's heal job) watches its progress and cancels it this way."""
    token = EXTRA_CALLBACKS.set((*EXTRA_CALLBACKS.get(), *callbacks))
    try:
        yield
    finally:
        EXTRA_CALLBACKS.reset(token)


def distill(
    student,
    teacher,
    config: DistillConfig | None = None,
    *,
    runs_dir: str | Path = "runs",
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    protection: Protection | None = None,
    overwrite: bool = False,
) -> DistillResult:
    """Distill `teacher` (a LoadedModel) into `student` (a LoadedModel, trained in place).

    Writes runs/<name>/: tb/ (TensorBoard), checkpoints/ (safetensors + JSON), student/ (the final model,
    loadable with mindset.models.load) and distill.json (counts and final metrics).
    teacher=None is a plain fine-tune on the data (only with alpha = gamma = 0).
    protection: anything with train.protection.Protection's methods (mindset.circuits.Protection is one):
    protected components train slower, canaries are watched and failures rolled back; its checks and
    rollbacks also go to protection.json.
    """
    config = config or DistillConfig()
    refuse_int8(student, "training")
    if protection is not None and config.lr_multipliers:
        raise MindsetError("lr_multipliers cannot be combined with protection yet (protection sets each component's learning rate); drop one")
    run = prepare_run(student, teacher, config, Path(runs_dir), resume, overwrite)
    trainable = select_trainable(student.model, config.trainable)
    check_multipliers(trainable, config.lr_multipliers)
    loader = training_batches(student, config, run.start_step)
    module = build_module(student, teacher, config, trainable, protection)
    callbacks = [*run_callbacks(student, config, run, progress, protection), *callbacks, *EXTRA_CALLBACKS.get()]
    trainer = build_trainer(student, config, run, callbacks, progress)
    seconds = fit(trainer, module, loader, run, config)
    return record_run(student, config, run, trainer, module, trainable, seconds, protection)


def check_multipliers(trainable: set[str], multipliers: dict[str, float]) -> None:
    """A learning-rate glob that names no trainable parameter is a typo, not a silent no-op."""
    import fnmatch

    for glob in multipliers:
        if not any(fnmatch.fnmatchcase(name, glob) for name in trainable):
            raise MindsetError(f"lr_multipliers: {glob!r} matches no trainable parameter (e.g. {min(trainable)!r}); check the glob and trainable")


def prepare_run(student, teacher, config: DistillConfig, runs_dir: Path, resume: bool, overwrite: bool = False) -> _Run:
    """Every check that can fail before training starts: teacher, memory, and the run folder's checkpoints."""
    if teacher is None:
        if config.alpha or config.gamma:
            raise MindsetError("without a teacher only the data's cross-entropy can train the model; set alpha and gamma to 0")
    else:
        check_compatible(student, teacher)
    check_memory(student, config)
    run_dir = runs_dir / config.name
    checkpoints = run_dir / "checkpoints"
    resume_from = claim_run_dir(run_dir, resume, overwrite)
    return _Run(run_dir, checkpoints, resume_from, _checkpoint_step(resume_from) if resume_from else 0)


def training_batches(student, config: DistillConfig, start_step: int) -> torch.utils.data.DataLoader:
    """The data as blocks of seq_len tokens, in a seeded order that a resumed run continues."""
    blocks = token_blocks(student.tokenizer, read_training_text(config.data), config.seq_len, config.max_train_tokens)
    batches = StepBatches(blocks, config.batch_size, config.seed, start=start_step * config.grad_accum)
    return torch.utils.data.DataLoader(batches, batch_size=None)


def build_module(student, teacher, config: DistillConfig, trainable: set[str], protection: Protection | None):
    """The LightningModule, seeded; protection is bound to the student before it sees the optimizer."""
    import lightning as L

    from mindset.train.module import DistillModule

    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.compile:
        student.model.forward = torch.compile(student.model.forward)
    if protection is not None:
        protection.setup(student.model, student.tokenizer, trainable, config.lr)
    return DistillModule(student.model.train(), teacher.model if teacher is not None else None, config, trainable, protection)


def run_callbacks(student, config: DistillConfig, run: _Run, progress: bool, protection: Protection | None) -> list:
    """Checkpoints, LR logging, the step progress bar, protection's monitor and validation perplexity."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from mindset.train.callbacks import ValidPerplexity
    from mindset.train.progress_bar import progress_bar

    saver = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="step={step:06d}",
        auto_insert_metric_name=False,
        every_n_train_steps=config.checkpoint_every,
        save_top_k=config.keep_checkpoints,
        monitor="step",
        mode="max",
    )
    out = [saver, LearningRateMonitor(logging_interval="step")]
    if progress:
        out.append(progress_bar())  # rich, counting steps, on a terminal; plain lines in a pipe
    if protection is not None:
        out.append(protection.callback())
    if config.valid_every:
        out.append(ValidPerplexity(student.tokenizer, config.valid_every, config.valid_tokens, config.seq_len))
    return out


def build_trainer(student, config: DistillConfig, run: _Run, callbacks: list, progress: bool):
    """A Lightning Trainer that trains by optimizer steps, logs to TensorBoard and saves safetensors checkpoints."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # its GPU/TPU/tip banners
    precision = config.precision if config.precision != "auto" else ("bf16-mixed" if student.device.type == "cuda" else "32")
    return L.Trainer(
        accelerator="gpu" if student.device.type == "cuda" else "cpu",
        devices=1,
        max_steps=config.steps,
        accumulate_grad_batches=config.grad_accum,
        gradient_clip_val=config.grad_clip,
        precision=precision,
        logger=TensorBoardLogger(str(run.run_dir), name="tb", version=""),
        callbacks=callbacks,
        plugins=[SafetensorsCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=str(run.run_dir),
    )


def fit(trainer, module, loader, run: _Run, config: DistillConfig) -> float:
    """Run `trainer.fit` (resuming from the run's checkpoint if any); returns the seconds it took.
    Running out of memory is a user error: the batch is too large."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|IterableDataset|infinite|LeafSpec|exists and is not empty).*")
        try:
            trainer.fit(module, train_dataloaders=loader, ckpt_path=str(run.resume_from) if run.resume_from else None)
        except SystemExit:  # Lightning answers Ctrl-C with a graceful shutdown and sys.exit(1): make it Ctrl-C again
            if not trainer.interrupted:
                raise
            signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores Ctrl-C from then on
            raise KeyboardInterrupt from None
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not isinstance(err, torch.OutOfMemoryError) and "allocate memory" not in str(err):
                raise
            raise MindsetError(f"out of memory with batch_size {config.batch_size} x seq_len {config.seq_len}; lower them or use grad_accum") from None
    return time.perf_counter() - started


def record_run(student, config: DistillConfig, run: _Run, trainer, module, trainable: set[str], seconds: float,
               protection: Protection | None) -> DistillResult:
    """Save the student, then distill.json (and protection.json): the records of what the run did."""
    from mindset.models import save

    student.model.requires_grad_(True).eval()
    student_dir = save(student, run.run_dir / "student", overwrite=True)
    total = sum(p.numel() for p in student.model.parameters())
    n_trainable = sum(p.numel() for n, p in student.model.named_parameters() if n in trainable)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    result = DistillResult(run.run_dir, student_dir, trainer.global_step, n_trainable, total, seconds, metrics)
    atomic_write_json(
        run.run_dir / "distill.json",
        {"config": config.model_dump(), "steps": result.steps, "trainable_params": n_trainable, "total_params": total,
         "seconds": seconds, "tokens_seen": module.tokens_seen, "resumed_from_step": run.start_step, "metrics": metrics},
    )
    if protection is not None:
        atomic_write_json(run.run_dir / "protection.json", {"protected": protection.protected, "scales": protection.scales,
                                                            "history": protection.history, "events": protection.events})
    return result
