"""The pretraining LightningModule and its validation callback.

The module is distillation's (DistillModule: non-finite-loss skipping, gradient-norm logging, the warm-up +
cosine schedule, checkpoint hooks) with the next-token loss alone and no teacher. The validation rows
(step, tokens, FLOPs, loss, throughput) travel inside each checkpoint, so a run resumed after kill -9 has
exactly the rows it had at its checkpoint and appends the same ones an uninterrupted run would.
"""

from __future__ import annotations

import fnmatch
import math
import time
from pathlib import Path

import lightning as L
import torch

from mindset.fileio import atomic_write_json
from mindset.train.losses import next_token_ce
from mindset.train.module import DistillModule, lr_factor, scaled_groups

NO_DECAY_NDIM = 2  # vectors (norms, biases, head-gate logits, a memory gate) take no weight decay


class PretrainModule(DistillModule):
    def __init__(self, model: torch.nn.Module, settings, flops_per_token: float, peak_flops: float | None):
        super().__init__(model, None, settings, trainable={n for n, _ in model.named_parameters()})
        self.flops_per_token, self.peak = flops_per_token, peak_flops
        self.rows: list[dict] = []
        self.applied: list[dict] = []  # scheduled edits done: {at, edits, structure}
        self.lr_offset = 0  # the step the current optimizer was built at (a scheduled edit rebuilds it)
        self.flops_seen = 0.0  # summed per step: a scheduled edit changes the FLOPs per token
        self.train_seconds = 0.0  # wall time training, validation excluded, summed over sessions
        self._mark = (time.perf_counter(), 0)  # (time, tokens_seen) at the start of the current interval

    def on_train_start(self) -> None:
        self._mark = (time.perf_counter(), self.tokens_seen)

    def training_step(self, batch: torch.Tensor, batch_idx: int):
        ids = batch.to(self.device)  # (B, T)
        loss = next_token_ce(self.student(input_ids=ids).logits, ids)
        if not torch.isfinite(loss):
            return self._skip(loss)
        self.bad_steps = 0
        self.tokens_seen += ids.numel()
        self.flops_seen += ids.numel() * self.flops_per_token
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        s = self.config
        fused = {"fused": True} if self.device.type == "cuda" else {}
        optimizer = torch.optim.AdamW(self.param_groups(), lr=s.lr, betas=tuple(s.betas), **fused)
        offset = self.lr_offset
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step + offset, s.warmup_steps, s.steps, s.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def param_groups(self) -> list[dict]:
        """Matrices with weight decay, vectors without; a parameter matching an lr_multipliers glob gets
        lr x its factor and no decay (distillation's scaled_groups), so gate logits can move fast."""
        s = self.config
        named = list(self.student.named_parameters())
        scaled = [(n, p) for n, p in named if any(fnmatch.fnmatchcase(n, g) for g in s.lr_multipliers)]
        names = {n for n, _ in scaled}
        groups = scaled_groups(scaled, s.lr, s.lr_multipliers) if scaled else []
        decay = [p for n, p in named if n not in names and p.ndim >= NO_DECAY_NDIM]
        plain = [p for n, p in named if n not in names and p.ndim < NO_DECAY_NDIM]
        groups += [{"params": decay, "weight_decay": s.weight_decay}, {"params": plain, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def adopt(self, model: torch.nn.Module, seq_len: int) -> None:
        """Train `model` from now on (a scheduled edit's result): its parameters, its FLOPs per token."""
        from mindset.train.flops import flops_per_token

        self.student = model
        self.trainable = {n for n, _ in model.named_parameters()}
        self.flops_per_token = flops_per_token(model, seq_len)

    def throughput(self) -> tuple[float, float]:
        """(seconds, tokens) of training since the interval began, and starts the next interval."""
        now, (started, tokens) = time.perf_counter(), self._mark
        self.train_seconds += now - started
        self._mark = (now, self.tokens_seen)
        return now - started, self.tokens_seen - tokens

    def restart_interval(self) -> None:
        self._mark = (time.perf_counter(), self.tokens_seen)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mindset"].update({"rows": self.rows, "train_seconds": self.train_seconds, "applied": self.applied,
                                      "lr_offset": self.lr_offset, "flops_seen": self.flops_seen})

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """The run's state at its checkpoint; after scheduled edits, the structure they left comes first
        (Lightning loads the weights into self.student next, then builds the optimizer over them)."""
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("mindset", {})
        self.rows = list(saved.get("rows", []))
        self.train_seconds = float(saved.get("train_seconds", 0.0))
        self.applied, self.lr_offset = list(saved.get("applied", [])), int(saved.get("lr_offset", 0))
        self.flops_seen = float(saved.get("flops_seen", 0.0))
        if self.applied:
            from mindset.train.schedule import load_structure

            self.adopt(load_structure(self.applied[-1]["structure"], self.device).train(), self.config.seq_len)


class ValidLoss(L.Callback):
    """Mean next-token loss on fixed valid blocks at step 0, every `every` steps and at the last; each row
    also goes to metrics.json (written whole, atomically), the file `mindset experiment compare` reads."""

    def __init__(self, blocks: torch.Tensor, every: int, batch_size: int, metrics_path: Path, header: dict):
        self.blocks, self.every, self.batch_size = blocks, every, batch_size
        self.path, self.header = metrics_path, header

    def on_train_start(self, trainer, module) -> None:
        if not module.rows:
            self._evaluate(trainer, module, log=False)  # Lightning allows no self.log in on_train_start

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if module.rows and module.rows[-1]["step"] >= step:
            return  # a micro-batch of the step already evaluated (grad_accum > 1), or the resumed checkpoint's step
        if step % self.every == 0 or step >= trainer.max_steps:
            self._evaluate(trainer, module)

    @torch.no_grad()
    def valid_loss(self, trainer, module) -> float:
        model = module.student
        model.eval()
        total, count = 0.0, 0
        with trainer.precision_plugin.forward_context():
            for start in range(0, len(self.blocks), self.batch_size):
                ids = self.blocks[start : start + self.batch_size].to(module.device)
                total += next_token_ce(model(input_ids=ids).logits, ids).item() * ids.shape[0]
                count += ids.shape[0]
        model.train()
        return total / count

    def _evaluate(self, trainer, module, log: bool = True) -> None:
        seconds, tokens = module.throughput()
        loss = self.valid_loss(trainer, module)
        speed = tokens / seconds if tokens and seconds > 0 else None
        train_loss = trainer.callback_metrics.get("train/loss")
        row = {
            "step": trainer.global_step,
            "tokens": module.tokens_seen,
            "flops": module.flops_seen,
            "parameters": sum(p.numel() for p in module.student.parameters()),
            "val_loss": loss,
            "val_ppl": math.exp(min(loss, 50.0)),
            "train_loss": float(train_loss) if train_loss is not None and module.rows else None,
            "tokens_per_s": speed,
            "mfu": speed * module.flops_per_token / module.peak if speed and module.peak else None,
            "train_seconds": module.train_seconds,
        }
        module.rows.append(row)
        if log:  # TensorBoard: the same numbers against the step
            module.log("valid/loss", loss, prog_bar=True)
            for key in ("tokens_per_s", "mfu"):
                if row[key] is not None:
                    module.log(f"train/{key}", row[key])
        atomic_write_json(self.path, {**self.header, "rows": module.rows})
        module.restart_interval()  # validation time is not training time
