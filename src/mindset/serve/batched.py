"""The engine's batched worker loop: admit, prefill, one forward for all rows, deliver, compact.

Each turn: take what arrived (jobs wait in line while `max_batch` rows decode; Tasks run between steps),
prefill the newcomers one by one (batch 1; newcomers with the same prompt share one prefill, so n samples
of one prompt pay for it once), stack their caches onto the batch, then run ONE decode step for every row.
Each row's token is chosen from its own logits with its own sampler and seed, as batch-1 decoding would.

Failure stays with its request: a row whose logits hold NaN, or whose sampling or log-probabilities
raise, gets an error and leaves the batch; the others go on. Only a failing forward pass itself (the
whole batch's, e.g. out of memory) fails every row, since the cache is then half-updated.
"""

from __future__ import annotations

import queue
from collections import deque
from dataclasses import dataclass

import torch

from mindset.chat.completion import CompletionText
from mindset.chat.cpu_decode import fast_cpu_decode, pays
from mindset.chat.sampling import choose_token
from mindset.serve.batching import KVBatch, model_device, prefill
from mindset.serve.engine import Active, Job, Task


@dataclass
class Row(Active):
    """A generation in the batch: Active's bookkeeping plus its sampler and the token it feeds next."""

    generator: torch.Generator | None = None
    next_token: int = -1


class BatchedLoop:
    def __init__(self, engine):
        self.engine = engine
        self.model = engine.loaded.model
        self.batch = KVBatch(self.model)
        self.rows: list[Row] = []  # in the batch's row order
        self.waiting: deque[Job] = deque()
        self.tasks: list[Task] = []

    def run(self) -> None:
        engine = self.engine
        while engine._running.is_set():
            with fast_cpu_decode(self.model, enabled=engine.fast_cpu and pays(self.model)):  # only batch-1 steps take it (one row)
                while engine._running.is_set() and not self.tasks:
                    self._collect(block=not self.rows and not self.waiting)
                    self._admit()
                    if self.rows:
                        self._decode()
                    engine.running = len(self.rows)
            for task in self.tasks:  # outside the fast path: the plain model's numbers
                engine._run(task)
            self.tasks.clear()
        for job in [row.job for row in self.rows] + list(self.waiting):
            job.emit("error", "the server is shutting down")

    def _collect(self, block: bool) -> None:
        """Move everything in the inbox to the waiting line or the task list."""
        inbox = self.engine._inbox
        try:
            item = inbox.get(timeout=0.1) if block else inbox.get_nowait()
            while True:
                (self.tasks if isinstance(item, Task) else self.waiting).append(item)
                item = inbox.get_nowait()
        except queue.Empty:
            return

    def _admit(self) -> None:
        """Prefill waiting jobs while the batch has room, and stack the ones still generating onto it."""
        engine = self.engine
        shared: dict[tuple[int, ...], tuple] = {}  # prompt -> (cache, logits): n samples, one prefill
        caches, lengths, rows = [], [], []
        while self.waiting and len(self.rows) + len(rows) < engine.max_batch:
            job = self.waiting.popleft()
            if job.cancelled.is_set() or not engine._opening(job):
                engine._finished()
                continue
            row = Row(job, None, CompletionText(engine.loaded.tokenizer, engine.stop_ids, job.stop))
            if not job.params.greedy:
                row.generator = torch.Generator(device=model_device(self.model)).manual_seed(job.params.seed)
            try:
                key = tuple(job.prompt_ids)
                cache, logits = shared[key] if key in shared else shared.setdefault(key, prefill(self.model, job.prompt_ids))
                finished = self._advance(row, logits, nan=bool(torch.isnan(logits).any()))
            except Exception as err:  # a failing request must not take the server down with it
                finished = engine._fail(row, err)
            if finished:
                engine._finished()
            else:
                caches.append(cache)
                lengths.append(len(job.prompt_ids))
                rows.append(row)
        self.batch.join(caches, lengths)
        self.rows += rows

    def _advance(self, row: Row, logits: torch.Tensor, nan: bool, greedy_token: int | None = None) -> bool:
        """Choose and deliver the row's next token from its logits (V,); True when the row is finished."""
        job = row.job
        if nan:
            return self.engine._fail(row, ValueError("the model's logits for this request are NaN"))
        token = greedy_token if greedy_token is not None and job.params.greedy else choose_token(logits, job.params, row.generator)
        if self.engine._deliver(row, token, logits):
            return True
        if len(row.completion.tokens) >= job.params.max_new_tokens:
            return self.engine._close(row, "length")
        row.next_token = token
        return False

    def _decode(self) -> None:
        """One forward pass for every row; then each row's token; finished, failed and cancelled rows leave."""
        self._drop([i for i, row in enumerate(self.rows) if row.job.cancelled.is_set()])
        if not self.rows:
            return
        try:
            logits = self.batch.step([row.next_token for row in self.rows])
        except Exception as err:  # the cache is half-updated: every row fails, the server goes on
            for row in self.rows:
                self.engine._fail(row, err)
            self._drop(list(range(len(self.rows))))
            return
        greedy = logits.argmax(dim=-1).tolist()  # one device sync for the greedy rows, not one per row
        nan = torch.isnan(logits).any(dim=-1).tolist()
        done = []
        for i, row in enumerate(self.rows):
            try:
                finished = self._advance(row, logits[i], nan[i], greedy[i])
            except Exception as err:
                finished = self.engine._fail(row, err)
            if finished:
                done.append(i)
        self._drop(done)

    def _drop(self, gone: list[int]) -> None:
        """Remove rows (indices) from the batch, compacting it; each frees its slot."""
        if not gone:
            return
        leaving = set(gone)
        keep = [i for i in range(len(self.rows)) if i not in leaving]
        self.batch.keep(keep)
        self.rows = [self.rows[i] for i in keep]
        for _ in gone:
            self.engine._finished()
