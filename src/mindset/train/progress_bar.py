"""Training progress in mindset's one style: a rich bar counting optimizer steps on a terminal, plain lines elsewhere.

Lightning's bars redraw in place, so in a pipe or a CI log a run of minutes shows nothing; there the
steps go through `mindset.progress` as `distill: 40/150 steps (27%) 61.0 s, loss 2.314` lines.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ProgressBar

from mindset.progress import Progress, stderr_is_terminal
from mindset.train.callbacks import StepProgressBar


def progress_bar(description: str = "distill") -> ProgressBar:
    return StepProgressBar(leave=True) if stderr_is_terminal() else PlainProgressBar(description)


class PlainProgressBar(ProgressBar):
    """Optimizer steps toward max_steps, with the last logged loss, as plain progress lines."""

    def __init__(self, description: str = "distill"):
        super().__init__()
        self.description = description
        self._enabled = True
        self._progress: Progress | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._progress = Progress(trainer.max_steps, self.description, unit="steps", enabled=self._enabled)
        self._progress.done = trainer.global_step  # a resumed run starts where its checkpoint was

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._progress is None:
            return
        loss = trainer.callback_metrics.get("train/loss")
        self._progress.note = f"loss {float(loss):.3f}" if loss is not None else ""
        if trainer.global_step > self._progress.done:
            self._progress.advance(trainer.global_step - self._progress.done)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._progress is not None:
            self._progress.close()
