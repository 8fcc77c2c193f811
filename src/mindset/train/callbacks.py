"""Lightning callbacks: perplexity on the shipped valid split during training."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from mindset.data import corpus_text
from mindset.evaluate.perplexity import perplexity_of_ids


class ValidPerplexity(L.Callback):
    """Every `every` optimizer steps, the student's perplexity on the first `tokens` of the valid split."""

    def __init__(self, tokenizer, every: int, tokens: int, window: int):
        self.ids = tokenizer(corpus_text("valid"), add_special_tokens=False, verbose=False)["input_ids"][:tokens]
        self.every, self.window = every, window

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == 0 or step % self.every or getattr(self, "_last", None) == step:
            return
        self._last = step
        model = module.student
        model.eval()
        result = perplexity_of_ids(model, self.ids, context=self.window, stride=self.window // 2)
        model.train()
        module.log("valid/ppl", result.perplexity, prog_bar=True)


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, counting optimizer steps (`step 12/100`). Distillation trains by steps with
    max_epochs=-1, so Lightning's own bar read `Epoch 0/-2` and counted micro-batches (grad_accum of them per step)."""

    @property
    def total_train_batches(self) -> int:
        return self.trainer.max_steps

    def _get_train_description(self, current_epoch: int) -> str:
        return f"step {self.trainer.global_step}/{self.trainer.max_steps}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, completed=trainer.global_step, description=self._get_train_description(0))
            self.refresh()
