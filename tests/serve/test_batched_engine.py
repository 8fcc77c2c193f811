"""The batched engine: one forward per step for all requests, answers identical to batch-1 decoding."""

import asyncio

import pytest
import torch

from mindset.chat.cpu_decode import fast_cpu_decode
from mindset.chat.generation import stop_token_ids, stream_steps
from mindset.chat.sampling import SamplingParams
from mindset.evaluate.loglikelihood import score_tokens
from mindset.serve import batching
from mindset.serve.batching import KVBatch, batchable, prefill
from mindset.serve.engine import Engine, Job
from mindset.serve.logprobs import step_logprob

# (prompt length, max new tokens): very different lengths; the later ones join while the first decode
SHAPES = [(2, 40), (61, 6), (17, 30), (33, 12), (5, 24)]


def prompt(loaded, n: int, salt: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(1000 * salt + n)
    return torch.randint(3, min(loaded.tokenizer.vocab_size, 250), (n,), generator=g).tolist()


def batch1(loaded, ids, params):
    """Batch-1 decoding through chat.stream_steps, as the round-robin engine runs it: (token ids without the end
    token, their logprob entries, token count with it)."""
    stop = stop_token_ids(loaded.model, loaded.tokenizer)
    tokens, entries = [], []
    with fast_cpu_decode(loaded.model):
        for token, logits in stream_steps(loaded.model, ids, params, stop, params.max_new_tokens, fast_cpu=False):
            tokens.append(token)
            entries.append(step_logprob(logits, token, 3))
    kept = [i for i, t in enumerate(tokens) if t not in stop]
    return [tokens[i] for i in kept], [entries[i] for i in kept], len(tokens)


def record_batch_sizes(loaded) -> tuple[list[int], callable]:
    """Record the batch size of every decode forward (one new token per row); returns (sizes, restore)."""
    sizes, model = [], loaded.model
    original = model.forward

    def forward(*args, **kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1:
            sizes.append(ids.shape[0])
        return original(*args, **kwargs)

    model.forward = forward
    return sizes, lambda: setattr(model, "forward", original)


async def answer(job: Job) -> dict:
    """Read a job's events to the end: its tokens' ids and log-probabilities, finish reason or error."""
    got = {"ids": [], "logprobs": [], "reason": None, "error": None, "n": 0}
    while True:
        event = await job.events.get()
        if event[0] in ("text", "done"):
            entries = event[2] if event[0] == "text" else event[3]
            got["ids"] += [e.id for e in entries]
            got["logprobs"] += [e.logprob for e in entries]
        if event[0] == "done":
            got["reason"], got["n"] = event[1], event[2]
            return got
        if event[0] == "error":
            got["error"] = event[1]
            return got


async def after_steps(sizes: list[int], n: int, timeout: float = 60) -> None:
    """Wait until the engine has run `n` decode steps."""
    for _ in range(int(timeout / 0.002)):
        if len(sizes) >= n:
            return
        await asyncio.sleep(0.002)
    raise TimeoutError(f"the engine ran {len(sizes)} decode steps, not {n}")


def run_engine(engine: Engine, plan) -> tuple[list[dict], list[int]]:
    """plan: [(Job kwargs, submit after this many decode steps)], in order; returns (answers, decode batch sizes)."""
    sizes, restore = record_batch_sizes(engine.loaded)

    async def main():
        loop = asyncio.get_running_loop()
        jobs = [Job(loop=loop, logprobs=3, **kwargs) for kwargs, _ in plan]
        answers = [asyncio.create_task(answer(job)) for job in jobs]
        for job, (_, at) in zip(jobs, plan):
            await after_steps(sizes, at)
            engine.submit(job)
        return [await a for a in answers]

    engine.start()
    try:
        return asyncio.run(asyncio.wait_for(main(), timeout=120)), sizes
    finally:
        engine.stop()
        restore()


def job(loaded, n: int, params: SamplingParams, salt: int = 0) -> dict:
    return {"prompt_ids": prompt(loaded, n, salt), "params": params, "stop": []}


def assert_batch1(loaded, got: dict, kwargs: dict, tol: float = 1e-5) -> None:
    """The answer is batch-1 decoding's: the same tokens, as many, the same log-probabilities (to `tol`)."""
    tokens, entries, n = batch1(loaded, kwargs["prompt_ids"], kwargs["params"])
    assert got["error"] is None and got["ids"] == tokens and got["n"] == n
    assert got["logprobs"] == pytest.approx([e.logprob for e in entries], abs=tol)


def test_batched_greedy_is_batch1_token_for_token_with_requests_joining_mid_stream(tiny):
    plan = [(job(tiny, n, SamplingParams(max_new_tokens=m)), at) for (n, m), at in zip(SHAPES, [0, 0, 3, 3, 9])]
    engine = Engine(tiny)
    assert engine.batching and batchable(tiny.model)
    answers, sizes = run_engine(engine, plan)
    for got, (kwargs, _) in zip(answers, plan):
        assert_batch1(tiny, got, kwargs)
    assert max(sizes) >= 3, sizes  # several requests did share forward passes
    assert any(b > a for a, b in zip(sizes, sizes[1:])) and sizes[-1] == 1, sizes  # rows joined mid-stream, and left


def test_round_robin_engine_stays_available_and_agrees(tiny_llama):
    plan = [(job(tiny_llama, n, SamplingParams(max_new_tokens=m)), 0) for n, m in SHAPES[:3]]
    engine = Engine(tiny_llama, batching=False)
    assert not engine.batching
    answers, sizes = run_engine(engine, plan)
    for got, (kwargs, _) in zip(answers, plan):
        assert_batch1(tiny_llama, got, kwargs)
    assert set(sizes) == {1}


def test_sampled_rows_keep_their_own_seeded_sampler(tiny_gpt2):
    """A sampled request in a batch draws the same tokens as alone: its own generator, its own logits."""
    params = [SamplingParams(max_new_tokens=20, temperature=t, seed=s) for t, s in ((1.3, 1), (0.0, 0), (0.8, 2))]
    plan = [(job(tiny_gpt2, 9 + 11 * i, p), 0) for i, p in enumerate(params)]
    answers, sizes = run_engine(Engine(tiny_gpt2), plan)
    for got, (kwargs, _) in zip(answers, plan):
        assert_batch1(tiny_gpt2, got, kwargs)
    assert max(sizes) == 3


def test_batched_logprobs_are_evaluates_loglikelihoods(tiny):
    plan = [(job(tiny, n, SamplingParams(max_new_tokens=8), salt=3), 0) for n, _ in SHAPES]
    answers, sizes = run_engine(Engine(tiny), plan)
    assert max(sizes) == len(plan)
    for got, (kwargs, _) in zip(answers, plan):
        ids = kwargs["prompt_ids"]
        pairs = [(ids + got["ids"][:i], [got["ids"][i]]) for i in range(len(got["ids"]))]
        scores = [s.logprob for s in score_tokens(tiny.model, pairs, max_length=tiny.context_length)]
        assert got["logprobs"] == pytest.approx(scores, abs=1e-4)


def test_a_request_with_nan_logits_fails_alone(tiny_llama):
    """The victim's logits turn NaN at its 13th new token, inside a batch; the other two finish intact."""
    victim_position = 10 + 11  # a prompt of 10 tokens: its 13th new token is chosen by the step at position 21
    plan = [
        (job(tiny_llama, 30, SamplingParams(max_new_tokens=20)), 0),
        (job(tiny_llama, 10, SamplingParams(max_new_tokens=20, temperature=0.9)), 0),
        (job(tiny_llama, 50, SamplingParams(max_new_tokens=12)), 2),
    ]
    model, hits = tiny_llama.model, []
    original = model.forward

    def poisoned(*args, **kwargs):
        out = original(*args, **kwargs)
        positions = kwargs.get("position_ids")
        if positions is not None and (victim := positions[:, -1] == victim_position).any():
            out.logits[victim] = float("nan")
            hits.append(len(positions))
        return out

    model.forward = poisoned
    engine = Engine(tiny_llama)
    (first, victim, last), sizes = run_engine(engine, plan)
    model.forward = original
    assert victim["error"] and "NaN" in victim["error"] and len(victim["ids"]) <= 12
    assert hits and hits[0] >= 2, hits  # it failed inside a batch
    assert_batch1(tiny_llama, first, plan[0][0])
    assert_batch1(tiny_llama, last, plan[2][0])
    assert engine.pending == 0


def test_a_cancelled_request_frees_its_slot(tiny_llama):
    """With room for one row, the second request starts only when the first is cancelled mid-generation."""
    engine = Engine(tiny_llama, max_batch=1)
    first, second = job(tiny_llama, 7, SamplingParams(max_new_tokens=200)), job(tiny_llama, 23, SamplingParams(max_new_tokens=10))
    sizes, restore = record_batch_sizes(tiny_llama)

    async def main():
        loop = asyncio.get_running_loop()
        a, b = Job(loop=loop, logprobs=3, **first), Job(loop=loop, logprobs=3, **second)
        engine.submit(a)
        engine.submit(b)
        await after_steps(sizes, 5)
        assert b.events.empty()  # b waits: the one row is a's
        a.cancel()  # the client went away
        return await answer(b), a

    engine.start()
    try:
        got_b, a = asyncio.run(asyncio.wait_for(main(), timeout=60))
    finally:
        engine.stop()
        restore()
    assert_batch1(tiny_llama, got_b, second)
    assert all(e[0] == "text" for e in a.events._queue)  # a never finished: it was dropped
    assert engine.pending == 0 and engine.running == 0 and engine.served == 1


def test_identical_prompts_share_one_prefill(tiny_llama):
    """n samples of one prompt: one prefill, copied into each row; each row still samples with its own seed."""
    plan = [(job(tiny_llama, 40, SamplingParams(max_new_tokens=6, temperature=1.0, seed=s)), 0) for s in (1, 2, 3)]
    prefills, original = [], tiny_llama.model.forward

    def forward(*args, **kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            prefills.append(kwargs["input_ids"].shape)
        return original(*args, **kwargs)

    tiny_llama.model.forward = forward
    answers, sizes = run_engine(Engine(tiny_llama), plan)
    tiny_llama.model.forward = original
    assert len(prefills) == 1 and max(sizes) == 3
    for got, (kwargs, _) in zip(answers, plan):
        assert_batch1(tiny_llama, got, kwargs)


def test_kv_batch_logits_match_batch1_and_padding_is_cut_when_rows_leave(tiny, monkeypatch):
    monkeypatch.setattr(batching, "SPARE", 2)  # the slabs fill up and grow within a few steps
    model, lengths = tiny.model, [3, 40, 11]
    prompts = [prompt(tiny, n, salt=7) for n in lengths]
    batch, fed = KVBatch(model), [list(ids) for ids in prompts]
    for ids in prompts:
        cache, logits = prefill(model, ids)
        batch.join([cache], [len(ids)])
        fed[len(batch) - 1].append(int(logits.argmax()))
    assert batch.width == 40 and batch.mask.sum(dim=1).tolist() == lengths
    for step in range(5):
        if step == 3:  # the longest row leaves: its padding goes with it
            batch.keep([0, 2])
            fed = [fed[0], fed[2]]
            assert batch.width == 11 + 3 and batch.lengths == [3 + 3, 11 + 3] and batch.cache.layers[0].keys.shape[2] == 14
        logits = batch.step([ids[-1] for ids in fed])
        for row, ids in enumerate(fed):
            alone = model(input_ids=torch.tensor([ids])).logits[0, -1]
            assert torch.allclose(logits[row], alone, atol=1e-5), (step, row)
            ids.append(int(logits[row].argmax()))


@pytest.mark.gpu
def test_batched_greedy_is_batch1_on_cuda():
    """The same engine code on the GPU: batched rows, batch-1 answers."""
    from mindset.models import load

    loaded = load("tiny-llama", device="cuda", dtype="float32")
    plan = [(job(loaded, n, SamplingParams(max_new_tokens=m)), at) for (n, m), at in zip(SHAPES, [0, 0, 3, 3, 9])]
    answers, sizes = run_engine(Engine(loaded), plan)
    for got, (kwargs, _) in zip(answers, plan):
        assert_batch1(loaded, got, kwargs, tol=1e-4)
    assert max(sizes) >= 3


@pytest.mark.slow
def test_smollm2_batched_greedy_is_batch1(smollm2):
    """SmolLM2 fp32, chat prompts of 20 to 70 tokens joining mid-stream: the same greedy tokens as batch 1."""
    from mindset.chat import encode_prompt

    texts = ["Hi!", "Why is the sky blue?", "Write a haiku about autumn leaves falling on a quiet lake.",
             "List the planets of the solar system in order from the Sun, with one fact about each, and say which ones have rings."]
    plan = [({"prompt_ids": encode_prompt(smollm2.tokenizer, t), "params": SamplingParams(max_new_tokens=24), "stop": []}, at)
            for t, at in zip(texts, [0, 0, 4, 8])]
    answers, sizes = run_engine(Engine(smollm2), plan)
    for got, (kwargs, _) in zip(answers, plan):
        assert_batch1(smollm2, got, kwargs, tol=1e-4)
    assert max(sizes) >= 3
