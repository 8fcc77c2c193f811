"""Newcomers that arrive between the same two engine steps are prefilled together, in padded forwards,
and still answer what batch-1 decoding answers."""

import asyncio

import pytest
import torch
from test_batched_engine import answer, assert_batch1, job, prompt, record_batch_sizes
from test_choices import count_prefills

from mindset.chat.sampling import SamplingParams
from mindset.serve.batched import BatchedLoop
from mindset.serve.batching import KVBatch, prefill, prefill_groups, prefill_together
from mindset.serve.engine import Engine, Job


def run_waves(engine: Engine, waves: list[list[dict]], gap_steps: int) -> list[dict]:
    """Submit each wave's jobs together (submit_all), the next wave `gap_steps` decode steps after the previous."""
    sizes, restore = record_batch_sizes(engine.loaded)

    async def main():
        loop = asyncio.get_running_loop()
        jobs = [[Job(loop=loop, logprobs=3, **spec) for spec in wave] for wave in waves]
        answers = [asyncio.create_task(answer(j)) for wave in jobs for j in wave]
        for i, wave in enumerate(jobs):
            while len(sizes) < i * gap_steps:
                await asyncio.sleep(0.002)
            engine.submit_all(wave)
        return [await a for a in answers]

    engine.start()
    try:
        return asyncio.run(asyncio.wait_for(main(), timeout=120))
    finally:
        engine.stop()
        restore()


def test_prompts_of_different_lengths_joining_together_answer_batch1_greedy(tiny):
    """Two waves of three prompts each (lengths 9-31), the second while the first decodes: each wave is ONE
    padded prefill forward, and every answer is batch-1's token for token."""
    waves = [[job(tiny, n, SamplingParams(max_new_tokens=m), salt=1) for n, m in ((9, 30), (23, 14), (16, 20))],
             [job(tiny, n, SamplingParams(max_new_tokens=m), salt=2) for n, m in ((31, 10), (17, 18), (28, 6))]]
    prefills = count_prefills(tiny)
    answers = run_waves(Engine(tiny), waves, gap_steps=4)
    assert sorted(prefills) == [(3, 23), (3, 31)], prefills  # each wave padded to its longest prompt
    for got, spec in zip(answers, [spec for wave in waves for spec in wave]):
        assert_batch1(tiny, got, spec)


def test_sampled_newcomers_prefilled_together_sample_as_alone(tiny_llama):
    wave = [job(tiny_llama, n, SamplingParams(max_new_tokens=12, temperature=t, seed=s)) for n, t, s in ((14, 1.2, 5), (20, 0.7, 6), (11, 1.0, 7))]
    prefills = count_prefills(tiny_llama)
    answers = run_waves(Engine(tiny_llama), [wave], gap_steps=0)
    assert prefills == [(3, 20)]
    for got, spec in zip(answers, wave):
        assert_batch1(tiny_llama, got, spec)


def test_padded_prefill_logits_and_cache_are_batch1s(tiny):
    """prefill_together's last-position logits equal batch-1 prefill's, and after joining, decode steps give
    each row the logits of its whole sequence run alone."""
    model, lengths = tiny.model, [5, 29, 12]
    prompts = [prompt(tiny, n, salt=9) for n in lengths]
    cache, logits = prefill_together(model, prompts)
    for row, ids in enumerate(prompts):
        assert torch.allclose(logits[row], prefill(model, ids)[1], atol=1e-5), row
    batch = KVBatch(model)
    batch.join([cache] * 3, lengths, [0, 1, 2])
    assert batch.mask.sum(dim=1).tolist() == lengths and batch.width == 29
    padding = batch.cache.layers[0].keys[0, :, : 29 - 5]
    assert not padding.any()  # only real positions were copied: the padding stays zero
    fed = [ids + [int(logits[row].argmax())] for row, ids in enumerate(prompts)]
    for _ in range(3):
        step = batch.step([ids[-1] for ids in fed])
        for row, ids in enumerate(fed):
            assert torch.allclose(step[row], model(input_ids=torch.tensor([ids])).logits[0, -1], atol=1e-5), row
            ids.append(int(step[row].argmax()))


@pytest.mark.parametrize(
    "lengths,cap,groups",
    [
        ([10, 11, 12], 4096, [[0, 1, 2]]),
        ([2, 100, 3], 4096, [[0, 2], [1]]),  # 100 with 2 and 3 would be 300 padded positions for 105 real
        ([50, 50, 50, 50], 120, [[0, 1], [2, 3]]),  # the cap on padded positions per forward
        ([7], 4096, [[0]]),
        ([], 4096, []),
    ],
)
def test_prefill_groups_bound_the_padding(lengths, cap, groups):
    assert prefill_groups(lengths, cap) == groups
    for group in prefill_groups(lengths, cap):
        area = len(group) * max(lengths[i] for i in group)
        assert len(group) == 1 or area <= min(2 * sum(lengths[i] for i in group), cap)


def test_a_failing_padded_prefill_fails_only_its_requests(tiny_llama):
    """The wave's padded prefill raises (as out of memory would): its three requests get the error; a request
    already decoding finishes as batch-1 would, and the engine is left empty."""
    model, original = tiny_llama.model, tiny_llama.model.forward

    def forward(*args, **kwargs):
        ids = kwargs["input_ids"]
        if ids.shape[0] > 1 and ids.shape[1] > 1:
            raise RuntimeError("out of memory (simulated)")
        return original(*args, **kwargs)

    model.forward = forward
    first = job(tiny_llama, 8, SamplingParams(max_new_tokens=30))
    wave = [job(tiny_llama, n, SamplingParams(max_new_tokens=5), salt=4) for n in (12, 15, 18)]
    engine = Engine(tiny_llama)
    answers = run_waves(engine, [[first], wave], gap_steps=3)
    model.forward = original
    assert_batch1(tiny_llama, answers[0], first)
    assert all(got["error"] and "simulated" in got["error"] for got in answers[1:])
    assert engine.pending == 0 and engine.state()["prefilled"] == 0 and engine.state()["rows"] == 0


def test_loop_state_is_empty_before_it_runs(tiny_llama):
    state = BatchedLoop(Engine(tiny_llama)).state()
    assert set(state.values()) == {0}
