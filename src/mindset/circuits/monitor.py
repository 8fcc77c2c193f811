"""The canary monitor: a Lightning callback that scores canary suites during training and rolls back."""

from __future__ import annotations

import lightning as L
import torch


class CanaryMonitor(L.Callback):
    def __init__(self, protection):
        self.p = protection
        self.baseline: dict[str, float] = {}
        self.rollbacks = 0
        self._last_step = -1

    # the last state that passed: trainable weights and optimizer state, in memory
    def _keep(self, trainer) -> None:
        self.good = self.p.snapshot()
        self.good_optimizer = _clone(trainer.optimizers[0].state_dict()) if trainer.optimizers else None
        self.good_step = trainer.global_step

    def on_train_start(self, trainer, module) -> None:
        self.baseline = self.p.score()
        self.p.history.append({"step": 0, "accuracy": dict(self.baseline), "event": "baseline"})
        self._log(trainer, module, self.baseline)
        self._keep(trainer)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == 0 or step % self.p.config.check_every or step == self._last_step:
            return
        self.check(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        if trainer.global_step != self._last_step and trainer.global_step > 0:
            self.check(trainer, module)

    def check(self, trainer, module) -> None:
        step = self._last_step = trainer.global_step
        accuracy = self.p.score()
        self._log(trainer, module, accuracy)
        noise = self.p.watched_only()
        failed = {n: a for n, a in accuracy.items() if a < self.baseline[n] - self.p.config.max_drop and n not in noise}
        if not failed or not self.p.config.rollback:
            self.p.history.append({"step": step, "accuracy": accuracy, "event": "pass" if not failed else "fail"})
            self._keep(trainer)
            return
        moved = self.p.implicated(self.good)
        self._restore(trainer)
        self.p.tighten(list(moved))
        self._apply_scales(trainer)
        self.rollbacks += 1
        event = {
            "step": step, "failed": failed, "baseline": {n: self.baseline[n] for n in failed}, "rolled_back_to": self.good_step,
            "implicated": {u: round(m, 5) for u, m in moved.items()}, "scales": {u: self.p.scales[u] for u in moved},
        }
        self.p.events.append(event)
        self.p.history.append({"step": step, "accuracy": accuracy, "event": "rollback", "rolled_back_to": self.good_step})
        text = (f"step {step}: {', '.join(f'{n} {a:.3f} (baseline {self.baseline[n]:.3f})' for n, a in failed.items())}; "
                f"rolled back to step {self.good_step}; tightened {', '.join(f'{u} → ×{self.p.scales[u]:g}' for u in moved)}")
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_text"):
            experiment.add_text("canary/rollback", text, step)
            experiment.add_scalar("canary/rollbacks", float(self.rollbacks), step)

    def _restore(self, trainer) -> None:
        with torch.no_grad():
            for ps in self.p.params.values():
                for name, param in ps:
                    param.copy_(self.good[name])
        if self.good_optimizer is not None:
            trainer.optimizers[0].load_state_dict(_clone(self.good_optimizer))

    def _apply_scales(self, trainer) -> None:
        """Set each group's base LR to lr × its unit's scale, and its current LR by the schedule."""
        optimizer = trainer.optimizers[0]
        schedulers = [c.scheduler for c in trainer.lr_scheduler_configs]
        for i, group in enumerate(optimizer.param_groups):
            base = self.p.lr * self.p.scales[group["unit"]]
            group["initial_lr"] = base
            factor = 1.0
            for scheduler in schedulers:
                scheduler.base_lrs[i] = base
                if hasattr(scheduler, "lr_lambdas"):
                    factor = scheduler.lr_lambdas[i](scheduler.last_epoch)
            group["lr"] = base * factor

    def _log(self, trainer, module, accuracy: dict[str, float]) -> None:
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_scalar"):
            for name, value in accuracy.items():
                experiment.add_scalar(f"canary/{name}", value, trainer.global_step)


def _clone(state):
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _clone(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_clone(v) for v in state]
    return state
