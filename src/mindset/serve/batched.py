"""The engine's batched worker loop: admit, prefill, one forward for all rows, deliver, compact.

Each turn: take what arrived (jobs wait in line while `max_batch` rows decode; Tasks run between steps),
prefill the newcomers together (those of similar lengths in one padded forward, so a burst of requests
waits for one prefill instead of a queue of them; a lone newcomer at batch 1), each distinct prompt once
(n samples of one prompt pay for it once, even when they join the batch over several turns), stack their
caches onto the batch, then run ONE decode step for every row.
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
from mindset.serve.batching import KVBatch, model_device, prefill, prefill_groups, prefill_together
from mindset.serve.engine import Active, Job, Task

PREFILL_TOKENS = 4096  # padded positions one prefill forward holds at most; a longer prompt is prefilled alone


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
        self.prefilled: dict[tuple[int, ...], tuple | BaseException] = {}  # prompt -> (cache, its row, logits (V,)), or the error
        self.prefills = 0  # prefill forward passes run (several prompts prefilled together count once)

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
                if isinstance(item, Task):
                    self.tasks.append(item)
                else:  # a Job, or a list of them (n samples of one prompt, arriving together)
                    self.waiting.extend(item if isinstance(item, list) else [item])
                item = inbox.get_nowait()
        except queue.Empty:
            return

    def _admit(self) -> None:
        """Start waiting jobs while the batch has room: prefill their prompts together, choose each one's
        first token, and stack the ones still generating onto the batch."""
        engine = self.engine
        newcomers: list[Row] = []
        while self.waiting and len(self.rows) + len(newcomers) < engine.max_batch:
            job = self.waiting.popleft()
            if job.cancelled.is_set() or not engine._opening(job):
                engine._finished()
                continue
            row = Row(job, None, CompletionText(engine.loaded.tokenizer, engine.stop_ids, job.stop))
            try:
                if not job.params.greedy:
                    row.generator = torch.Generator(device=model_device(self.model)).manual_seed(job.params.seed)
            except Exception as err:  # a failing request must not take the server down with it
                engine._fail(row, err)
                engine._finished()
                continue
            newcomers.append(row)
        self._prefill([row.job.prompt_ids for row in newcomers])
        caches, lengths, sources, rows = [], [], [], []
        for row in newcomers:
            key = tuple(row.job.prompt_ids)
            try:
                if isinstance(self.prefilled.get(key), BaseException):
                    raise self.prefilled[key]
                cache, source, logits = self.prefilled[key]
                finished = self._advance(row, logits, nan=bool(torch.isnan(logits).any()))
            except Exception as err:  # a failing request must not take the server down with it
                finished = engine._fail(row, err)
            if finished:
                engine._finished()
            else:
                caches.append(cache)
                lengths.append(len(key))
                sources.append(source)
                rows.append(row)
        self.batch.join(caches, lengths, sources)
        self.rows += rows
        if self.prefilled:  # n samples that did not all fit keep their prefill; the rest is dropped
            waiting = {tuple(job.prompt_ids) for job in self.waiting}
            self.prefilled = {key: value for key, value in self.prefilled.items() if key in waiting}

    def _prefill(self, prompts: list[list[int]]) -> None:
        """Prefill the prompts not yet in `self.prefilled`, each distinct prompt once: a prompt alone at batch 1
        (`prefill`, batch-1's numbers bit for bit), several of similar length in one padded forward. A failing
        forward is recorded for the prompts it held, which then fail alone."""
        todo = list(dict.fromkeys(tuple(p) for p in prompts if tuple(p) not in self.prefilled))
        for group in prefill_groups([len(p) for p in todo], PREFILL_TOKENS):
            keys = [todo[i] for i in group]
            try:
                if len(keys) == 1:
                    cache, logits = prefill(self.model, keys[0])
                    logits = logits.unsqueeze(0)
                else:
                    cache, logits = prefill_together(self.model, keys)
                self.prefills += 1
                self.prefilled.update({key: (cache, row, logits[row]) for row, key in enumerate(keys)})
            except Exception as err:  # e.g. out of memory: these requests fail, the server goes on
                self.prefilled.update(dict.fromkeys(keys, err))

    def state(self) -> dict[str, int]:
        """What the loop holds: rows decoding, jobs waiting, prefilled prompts kept for waiting jobs, cache columns."""
        return {"rows": len(self.rows), "waiting": len(self.waiting), "prefilled": len(self.prefilled), "width": self.batch.width,
                "cached_rows": len(self.batch), "tasks": len(self.tasks)}

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
