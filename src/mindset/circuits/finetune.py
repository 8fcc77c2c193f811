"""A fine-tuning stage after pretraining, with or without circuit protection, that measures what the
pretrained model keeps: sweep 4 of the pretraining experiments (recipes/experiments/protected-finetune.yaml).

The stage starts from a finished pretraining run's model and trains hard on another text (the fine-tune
data) with distillation's loop as a plain fine-tune (next-token loss, no teacher). With `protect`, the
canaries are mapped for importance on the pretrained model first and mindset's Protection runs during
training (protected units at lr × lr_scale, canary checks, rollbacks), as `mindset distill --protect-*`
does. Every `eval_every` steps (and at step 0 and the last) a row goes to metrics.json:

- val_loss: next-token loss on the ORIGINAL text's valid split (what fine-tuning forgets);
- finetune_loss: the same on the fine-tune text's valid split (what it learns);
- canary accuracy per suite and their mean (mindset.circuits.corpus_canaries: the original corpus's
  proper-noun spellings and next words, contexts from its valid split).

metrics.json has the pretraining runs' shape, so `mindset experiment compare` reads fine-tune runs too;
finetune.json is the record (final row, protection summary, tokens/s). An interrupted stage starts again
from the pretrained model: Protection's rollback state is not in the checkpoints.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import lightning as L
import torch
from pydantic import BaseModel, ConfigDict, Field

from mindset.circuits.protect import ProtectionConfig
from mindset.circuits.protect_options import Granularity
from mindset.fileio import atomic_write_json, atomic_write_text
from mindset.train.pretrain_config import DataSettings

RECORD = "finetune.json"


class FinetuneTrain(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: int = Field(262_144, ge=1, description="fine-tuning token budget")
    batch_size: int = Field(16, ge=1)
    seq_len: int = Field(256, ge=8)
    lr: float = Field(3e-3, gt=0, description="peak learning rate (a hard fine-tune: as high as pretraining's)")
    warmup_steps: int = Field(10, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    eval_every: int = Field(16, ge=1, description="a metrics row (both losses, the canaries) every N steps")
    eval_tokens: int = Field(16384, ge=16, description="tokens of each valid split read for its loss")
    precision: str = Field("auto")
    device: str = Field("auto")

    @property
    def steps(self) -> int:
        return math.ceil(self.tokens / (self.batch_size * self.seq_len))


class CanaryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: int = Field(64, ge=4, description="documents per canary suite (names, words)")
    seed: int = Field(0, ge=0, description="which valid-text spots and distractors: the same canaries for every run")


class ProtectStage(ProtectionConfig):
    """ProtectionConfig's fields; the suites are the stage's corpus canaries."""

    granularity: list[Granularity] = Field(["attn", "mlp"], min_length=1, description="importance maps per canary suite")


class FinetuneStage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: DataSettings = Field(..., description="the fine-tune text: {corpus: a .txt file} (its last paragraphs are its valid split) or with valid")
    train: FinetuneTrain = Field(default_factory=FinetuneTrain)
    canaries: CanaryOptions = Field(default_factory=CanaryOptions)
    protect: ProtectStage | None = Field(None, description="null: unprotected; a mapping: protected fine-tuning with these settings")


def canaries_for(original: DataSettings, options: CanaryOptions) -> list:
    from mindset.circuits.corpus_canaries import corpus_canaries
    from mindset.train.tokens import split_texts

    train, valid = split_texts(original)
    name = "austen" if original.corpus == "austen" else Path(original.corpus).stem
    return corpus_canaries(train, valid, options.documents, options.seed, name)


def _valid_blocks(text: str, tokenizer, settings: FinetuneTrain) -> torch.Tensor:
    from mindset.train.tokens import TokenBlocks, token_file

    return TokenBlocks(token_file(text, tokenizer), settings.seq_len, None, "valid").first(settings.eval_tokens)


@torch.no_grad()
def mean_loss(model, blocks: torch.Tensor, batch_size: int, device) -> float:
    from mindset.train.losses import next_token_ce

    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(blocks), batch_size):
        ids = blocks[start : start + batch_size].to(device)
        total += next_token_ce(model(input_ids=ids).logits, ids).item() * ids.shape[0]
    model.train(was_training)
    return total / len(blocks)


class RetentionProbe(L.Callback):
    """The metrics rows: both losses and the canaries at step 0, every `every` steps and at the last."""

    def __init__(self, original: torch.Tensor, new: torch.Tensor, suites: list, tokenizer, settings: FinetuneTrain, path: Path, header: dict):
        self.original, self.new, self.suites, self.tokenizer = original, new, suites, tokenizer
        self.settings, self.path, self.header = settings, path, header
        self.rows: list[dict] = []
        self.seconds, self._since = 0.0, None

    def on_train_start(self, trainer, module) -> None:
        self._row(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.rows and self.rows[-1]["step"] >= step:
            return
        if step % self.settings.eval_every == 0 or step >= trainer.max_steps:
            self._row(trainer, module)

    def _row(self, trainer, module) -> None:
        import time

        from mindset.circuits.suite import score_suite

        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
        model = module.student
        accuracy = {s.name: score_suite(model, s, self.tokenizer).accuracy for s in self.suites}
        tokens = module.tokens_seen
        self.rows.append({
            "step": trainer.global_step, "tokens": tokens, "flops": tokens * self.header["flops_per_token"],
            "parameters": self.header["parameters"],
            "val_loss": mean_loss(model, self.original, self.settings.batch_size, module.device),
            "finetune_loss": mean_loss(model, self.new, self.settings.batch_size, module.device),
            "canaries": accuracy, "canary_accuracy": sum(accuracy.values()) / len(accuracy),
            "tokens_per_s": tokens / self.seconds if self.seconds else None, "train_seconds": self.seconds,
        })  # fmt: skip
        atomic_write_json(self.path, {**self.header, "rows": self.rows})
        self._since = time.perf_counter()


def build_protection(loaded, suites: list, options: ProtectStage):
    """Importance maps of the pretrained model on each canary suite, and the Protection they give."""
    import warnings

    from mindset.circuits.importance import ChanceWarning, importance
    from mindset.circuits.protect import Protection

    maps = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ChanceWarning)
        for suite in suites:
            for granularity in dict.fromkeys(options.granularity):
                maps.append(importance(loaded, suite, granularity))
    config = ProtectionConfig(**options.model_dump(exclude={"granularity"}))
    protection = Protection(config, importances=maps, canaries=suites)
    protection.notes = list(dict.fromkeys(str(w.message) for w in caught))
    return protection


def run_finetune(pretrained_model: str | Path, original: DataSettings, stage: FinetuneStage, out: str | Path, *, name: str, variant: str,
                 seed: int, progress: bool = False) -> dict:
    """Fine-tune the pretrained model as the stage says, into out/<name>/; returns finetune.json's content."""
    from mindset.models import load
    from mindset.train.config import DistillConfig
    from mindset.train.distill import distill
    from mindset.train.flops import flops_per_token
    from mindset.train.tokens import split_texts

    s = stage.train
    loaded = load(pretrained_model, device=s.device)
    suites = canaries_for(original, stage.canaries)
    train_new, valid_new = split_texts(stage.data)
    data_file = Path(out) / "finetune-data" / f"{hashlib.sha256(train_new.encode()).hexdigest()[:16]}.txt"
    if not data_file.is_file():
        atomic_write_text(data_file, train_new)
    protection = build_protection(loaded, suites, stage.protect) if stage.protect is not None else None
    header = {"name": name, "variant": variant, "seed": seed, "stage": "finetune", "pretrained": str(pretrained_model),
              "parameters": sum(p.numel() for p in loaded.model.parameters()), "flops_per_token": flops_per_token(loaded.model, s.seq_len),
              "canary_suites": [x.name for x in suites], "protected": None}
    run_dir = Path(out) / name
    probe = RetentionProbe(_valid_blocks(split_texts(original)[1], loaded.tokenizer, s), _valid_blocks(valid_new, loaded.tokenizer, s),
                           suites, loaded.tokenizer, s, run_dir / "metrics.json", header)
    config = DistillConfig(name=name, steps=s.steps, batch_size=s.batch_size, seq_len=s.seq_len, lr=s.lr, weight_decay=s.weight_decay,
                           warmup_steps=s.warmup_steps, min_lr_ratio=s.min_lr_ratio, alpha=0.0, beta=1.0, gamma=0.0, data=str(data_file),
                           checkpoint_every=s.steps, keep_checkpoints=1, seed=seed, precision=s.precision, device=s.device)
    result = distill(loaded, None, config, runs_dir=out, overwrite=True, callbacks=[probe], progress=progress, protection=protection)
    final = probe.rows[-1]
    record = {**header, "steps": result.steps, "seconds": result.seconds, "final": final, "val_loss": final["val_loss"],
              "finetune_loss": final["finetune_loss"], "canary_accuracy": final["canary_accuracy"], "canaries": final["canaries"],
              "tokens_per_s": final["tokens_per_s"], "start": probe.rows[0]}
    if protection is not None:
        record["protected"] = {"units": protection.protected, "of": len(protection.scales), "rollbacks": len(protection.events),
                               "scales": {u: x for u, x in protection.scales.items() if x != 1.0}, "notes": protection.notes}
    atomic_write_json(run_dir / RECORD, record)
    return record
