"""One model, many requests: a worker thread that advances every active generation one token per step.

Two ways to step (`batching`): batched (the default, serve/batched.py), where each step is ONE forward
pass for all active requests over a left-padded batch of their KV caches, new requests joining between
steps after their prompt's prefill; or round-robin, where each request has its own cache and the model
runs batch 1, one request's token after another. Either way a long answer never blocks a short one, and
cancelled requests (a client that went away) are dropped at their next step, freeing their cache.

Other work on the model (embeddings) is a `Task`: the worker runs it between decode steps, with the fast
CPU decode path switched off, so its numbers are those of the plain model (the map's, evaluate's).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mindset.chat.completion import CompletionText
from mindset.chat.cpu_decode import fast_cpu_decode, pays
from mindset.chat.generation import stop_token_ids, stream_steps
from mindset.chat.sampling import SamplingParams
from mindset.serve.logprobs import TokenLogprob, prompt_logprobs, step_logprob


class EngineBusy(Exception):
    """More requests are waiting than the engine accepts."""


@dataclass
class Job:
    """A generation. Events: ("prompt", entries) when the prompt is scored, ("text", str, entries) ... then
    ("done", reason, n_tokens, entries) or ("error", msg); entries are TokenLogprobs (empty without logprobs)."""

    prompt_ids: list[int]
    params: SamplingParams  # max_new_tokens: max_tokens, or what the context leaves
    stop: list[str]
    loop: asyncio.AbstractEventLoop
    logprobs: int | None = None  # alternatives per token to report; None: no log-probabilities
    score_prompt: bool = False  # report the prompt tokens' log-probabilities first (echo)
    generate: bool = True  # False: only score the prompt (max_tokens 0)
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)

    def emit(self, *event: Any) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def cancel(self) -> None:
        self.cancelled.set()


@dataclass
class Task:
    """A function of the model to run on the worker thread; its result (or exception) lands in `future`."""

    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        def set_() -> None:
            if self.future.done():  # the awaiting request went away
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(set_)


@dataclass
class Active:
    job: Job
    stream: Any
    completion: CompletionText
    logprobs: list[TokenLogprob] = field(default_factory=list)  # not yet sent
    last_token: float | None = None


class Engine:
    """batching: one forward per step for all requests (models whose cache batches, see batching.py; others
    run round-robin); False: round-robin at batch 1. max_batch: requests decoded together; more wait."""

    def __init__(self, loaded, *, max_pending: int = 64, fast_cpu: bool = True, metrics=None, batching: bool = True, max_batch: int = 32):
        from mindset.serve.batching import batchable

        self.loaded = loaded
        self.max_pending = max_pending
        self.fast_cpu = fast_cpu
        self.batching = batching and batchable(loaded.model)
        self.max_batch = max_batch
        self.metrics = metrics  # a ServerMetrics, told of every token
        self.stop_ids = stop_token_ids(loaded.model, loaded.tokenizer)
        self._inbox: queue.Queue[Job | Task | list[Job]] = queue.Queue()
        self._pending = 0  # submitted and not finished, guarded by _lock
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop = None  # the BatchedLoop, while batching
        self.served = 0
        self.running = 0  # generations in progress

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._work, name="mindset-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread:
            self._thread.join(timeout=30)

    def submit(self, item: Job | Task) -> None:
        self.submit_all([item])

    def submit_all(self, items: list[Job | Task]) -> None:
        """Submit several items at once, all or none (EngineBusy). Jobs arrive together: the batched loop
        sees them between the same two steps, so n samples of one prompt share its prefill."""
        with self._lock:
            if self._pending + len(items) > self.max_pending:
                raise EngineBusy(f"{self._pending} requests are already waiting")
            self._pending += len(items)
        if len(items) == 1 or not all(isinstance(item, Job) for item in items):
            for item in items:
                self._inbox.put(item)
        else:
            self._inbox.put(list(items))

    def state(self) -> dict[str, int]:
        """What the engine holds now (all 0 when idle): requests pending and running, and the batched loop's
        rows, waiting jobs, kept prefills and cache columns (see BatchedLoop.state)."""
        loop = self._loop
        return {"pending": self._pending, "running": self.running, "inbox": self._inbox.qsize(), **(loop.state() if loop else {})}

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn() on the worker thread (between decode steps) and return its result; EngineBusy when full."""
        loop = asyncio.get_running_loop()
        task = Task(fn, loop, loop.create_future())
        self.submit(task)
        return await task.future

    def _work(self) -> None:
        if self.batching:
            from mindset.serve.batched import BatchedLoop

            self._loop = BatchedLoop(self)
            self._loop.run()
        else:
            self._round_robin()

    def _round_robin(self) -> None:
        active: list[Active] = []
        tasks: list[Task] = []
        while self._running.is_set():
            # the decode loop runs with the fast CPU path on: per-request patching would interleave badly
            with fast_cpu_decode(self.loaded.model, enabled=self.fast_cpu and pays(self.loaded.model)):
                while self._running.is_set() and not tasks:
                    self._admit(active, tasks, block=not active)
                    for entry in list(active):
                        if self._step(entry):
                            entry.stream.close()
                            active.remove(entry)
                            self._finished()
                    self.running = len(active)
            for task in tasks:  # outside the fast path: the plain model's numbers
                self._run(task)
            tasks.clear()
        for entry in active:
            entry.stream.close()
            entry.job.emit("error", "the server is shutting down")

    def _admit(self, active: list[Active], tasks: list[Task], block: bool) -> None:
        try:
            item = self._inbox.get(timeout=0.1) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            for one in item if isinstance(item, list) else [item]:  # a list: n samples (round-robin prefills each)
                if isinstance(one, Task):
                    tasks.append(one)
                elif one.cancelled.is_set():
                    self._finished()
                elif entry := self._begin(one):
                    active.append(entry)
                else:
                    self._finished()
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _opening(self, job: Job) -> bool:
        """Score the prompt if asked; False when the job is already over (it failed, or asked for no tokens)."""
        try:
            if job.score_prompt:
                job.emit("prompt", prompt_logprobs(self.loaded.model, job.prompt_ids, job.logprobs or 0))
        except Exception as err:  # a failing request must not take the server down with it
            job.emit("error", f"{type(err).__name__}: {err}")
            return False
        if not job.generate:
            job.emit("done", "length", 0, [])
            self.served += 1
            return False
        return True

    def _begin(self, job: Job) -> Active | None:
        """Score the prompt if asked, then start the generation; None when the job is already over."""
        if not self._opening(job):
            return None
        stream = stream_steps(self.loaded.model, job.prompt_ids, job.params, self.stop_ids, job.params.max_new_tokens, fast_cpu=False)
        return Active(job, stream, CompletionText(self.loaded.tokenizer, self.stop_ids, job.stop))

    def _run(self, task: Task) -> None:
        try:
            task.settle(task.fn())
        except Exception as err:  # the request gets the error; the server goes on
            task.settle(error=err)
        self._finished()

    def _step(self, entry: Active) -> bool:
        """Advance one request by one token; True when it is finished."""
        if entry.job.cancelled.is_set():
            return True
        try:
            token, logits = next(entry.stream)
        except StopIteration:
            return self._close(entry, "length")
        except Exception as err:  # a failing request must not take the server down with it
            return self._fail(entry, err)
        try:
            return self._deliver(entry, token, logits)
        except Exception as err:
            return self._fail(entry, err)

    def _deliver(self, entry: Active, token: int, logits) -> bool:
        """Report a new token chosen from `logits` (V,): its log-probability, the metrics, its text.
        True when it ended the generation (the job has its "done")."""
        job, completion = entry.job, entry.completion
        if job.logprobs is not None and token not in self.stop_ids:  # an end token has no text to score
            entry.logprobs.append(step_logprob(logits, token, job.logprobs))
        self._timed(entry)
        delta = completion.push(token)
        if delta:
            job.emit("text", delta, entry.logprobs)
            entry.logprobs = []
        if not completion.finish_reason:
            return False
        return self._close(entry, completion.finish_reason)

    def _close(self, entry: Active, reason: str) -> bool:
        """End a generation that ran out (or stopped): the text still held back, then "done"."""
        job, completion = entry.job, entry.completion
        tail = completion.close(reason)
        if tail:
            job.emit("text", tail, entry.logprobs)
            entry.logprobs = []
        job.emit("done", completion.finish_reason, len(completion.tokens), entry.logprobs)
        self.served += 1
        return True

    @staticmethod
    def _fail(entry: Active, err: BaseException) -> bool:
        entry.job.emit("error", f"{type(err).__name__}: {err}")
        return True

    def _timed(self, entry: Active) -> None:
        """Tell the metrics a token was made: time to first token, or since the previous one."""
        now = time.perf_counter()
        if self.metrics is not None:
            self.metrics.token(now - (entry.last_token or entry.job.submitted), first=entry.last_token is None)
        entry.last_token = now

    def _finished(self) -> None:
        with self._lock:
            self._pending -= 1
