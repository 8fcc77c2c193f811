"""The LightningModule: teacher forward under no_grad, student forward, distillation loss, AdamW + cosine LR."""

from __future__ import annotations

import math
import time
import warnings

import lightning as L
import torch

from mindset.errors import MindsetError
from mindset.train.losses import distill_loss


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to min_ratio at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def frozen_checksum(model: torch.nn.Module, trainable: set[str]) -> float:
    """A cheap fingerprint of the weights that do not train: a resumed run must start from the same ones."""
    with torch.no_grad():
        return float(sum(p.double().sum() for n, p in model.named_parameters() if n not in trainable))


def scaled_groups(named: list, lr: float, scales: dict[str, float]) -> list[dict]:
    """Optimizer groups: parameters whose name matches a glob of `scales` (first match) get lr x its factor
    and no weight decay (decay would pull e.g. a gate's logit back to 0); the rest form the plain group."""
    import fnmatch

    groups: dict[str | None, list] = {}
    for name, param in named:
        glob = next((g for g in scales if fnmatch.fnmatchcase(name, g)), None)
        groups.setdefault(glob, []).append(param)
    out = [{"params": groups.pop(None)}] if None in groups else []
    out += [{"params": ps, "lr": lr * scales[g], "weight_decay": 0.0} for g, ps in groups.items()]
    return out


class DistillModule(L.LightningModule):
    def __init__(self, student: torch.nn.Module, teacher: torch.nn.Module | None, config, trainable: set[str], protection=None):
        super().__init__()
        self.student = student
        self._teacher = [teacher]  # a list hides it from Lightning: never saved, never optimized, never moved by it
        self.config = config
        self.trainable = trainable
        self.protection = protection  # a train.protection.Protection: LR per component, L2 pull
        self.strict_loading = False  # checkpoints hold only the trainable weights
        self.bad_steps = 0
        self.tokens_seen = 0
        self._batch_started = 0.0
        self._frozen_checksum = frozen_checksum(student, trainable)

    @property
    def teacher(self) -> torch.nn.Module:
        return self._teacher[0]

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device).eval().requires_grad_(False)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self._batch_started = time.perf_counter()

    def training_step(self, batch: torch.Tensor, batch_idx: int):
        ids = batch.to(self.device)
        wants_hidden = bool(self.config.gamma)
        with torch.no_grad():
            teacher_out = self.teacher(input_ids=ids, output_hidden_states=wants_hidden) if self.teacher is not None else None
        student_out = self.student(input_ids=ids, output_hidden_states=wants_hidden)
        loss, parts = distill_loss(student_out, teacher_out, ids, self.config)
        pull = self.protection.penalty() if self.protection is not None else None
        if pull is not None:
            parts["l2_pull"] = pull
            loss = loss + pull
        if not torch.isfinite(loss):
            return self._skip(loss)
        self.bad_steps = 0
        self.tokens_seen += ids.numel()
        elapsed = time.perf_counter() - self._batch_started
        self.log("train/loss", loss, prog_bar=True)
        for name, value in parts.items():
            self.log(f"train/{name}", value)
        self.log("train/tokens_per_s", ids.numel() / max(elapsed, 1e-9), prog_bar=True)
        return loss

    def _skip(self, loss: torch.Tensor) -> None:
        self.bad_steps += 1
        warnings.warn(f"step {self.global_step}: the loss is {loss.item()}; skipping this step ({self.bad_steps} in a row)", stacklevel=2)
        if self.bad_steps >= self.config.max_bad_steps:
            raise MindsetError(
                f"{self.bad_steps} non-finite losses in a row at step {self.global_step}; stopping. "
                "The last good checkpoint is kept; lower the learning rate before resuming"
            )
        return None  # Lightning skips backward for this batch (and warns that training_step returned None)

    def on_before_optimizer_step(self, optimizer) -> None:
        grads = [p.grad.detach().float().norm() for p in self.student.parameters() if p.grad is not None]
        if grads:
            self.log("train/grad_norm", torch.stack(grads).norm())

    def configure_optimizers(self):
        if self.protection is not None:
            params = self.protection.param_groups()  # one group per component, each with its LR scale
        else:
            params = scaled_groups([(n, p) for n, p in self.student.named_parameters() if n in self.trainable], self.config.lr, self.config.lr_multipliers)
        optimizer = torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        c = self.config
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, c.warmup_steps, c.steps, c.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        prefix = "student."
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k.removeprefix(prefix) in self.trainable}
        checkpoint["mindset"] = {"frozen_checksum": self._frozen_checksum, "tokens_seen": self.tokens_seen}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("mindset", {})
        if not math.isclose(saved.get("frozen_checksum", math.nan), self._frozen_checksum, rel_tol=1e-9):
            raise MindsetError("the student's frozen weights differ from those of the run being resumed; resume with the same student")
        self.tokens_seen = saved.get("tokens_seen", 0)
