import pytest
import torch

from mindset.errors import MindsetError
from mindset.evaluate.loglikelihood import Request, encode_request, loglikelihoods, score_tokens

CONTEXT = "Question: What is the capital of France?\nAnswer:"
CHOICES = [" Paris", " Berlin, the capital of Germany", " Rome", " x"]


def reference(model, ctx_ids, cont_ids):
    """Plain transformers: one pass over context+continuation, log-softmax, the continuation's tokens."""
    ids = torch.tensor([ctx_ids + cont_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    positions = range(len(ctx_ids) - 1, len(ctx_ids) + len(cont_ids) - 1)
    picked = [logprobs[p, t] for p, t in zip(positions, cont_ids)]
    greedy = all(int(logprobs[p].argmax()) == t for p, t in zip(positions, cont_ids))
    return float(sum(picked)), greedy


def test_shared_context_equals_one_pass_per_choice(tiny):
    requests = [Request(CONTEXT, c) for c in CHOICES] + [Request("", " hello"), Request("Two words ", "follow")]
    shared = loglikelihoods(tiny, requests)
    whole = loglikelihoods(tiny, requests, share_context=False)
    for r, a, b in zip(requests, shared, whole):
        ctx, cont = encode_request(tiny.tokenizer, r.context, r.continuation)
        expected, greedy = reference(tiny.model, ctx, cont)
        assert a.logprob == pytest.approx(expected, abs=1e-4) and b.logprob == pytest.approx(expected, abs=1e-4)
        assert a.is_greedy == b.is_greedy == greedy
        assert a.tokens == len(cont) and a.truncated == 0


def test_encoding_splits_as_lm_eval_does(tiny_llama):
    tok = tiny_llama.tokenizer
    ctx, cont = encode_request(tok, "Answer: ", "Paris")  # the trailing space moves to the continuation
    assert ctx == tok.encode("Answer:") and cont == tok.encode("Answer: Paris")[len(ctx) :]
    ctx, cont = encode_request(tok, "", "Paris")  # no context: the BOS token stands in for it
    assert ctx == [tok.bos_token_id] and cont == tok.encode("Paris", add_special_tokens=False)


def test_greedy_flag_is_true_for_the_models_own_next_token(tiny_llama):
    ctx = tiny_llama.tokenizer.encode(CONTEXT)
    with torch.no_grad():
        nxt = int(tiny_llama.model(torch.tensor([ctx])).logits[0, -1].argmax())
    (scored,) = score_tokens(tiny_llama.model, [(ctx, [nxt])], max_length=256)
    assert scored.is_greedy


def test_long_prompts_lose_their_oldest_tokens(tiny_llama):
    ctx = [3 + i % 200 for i in range(297)]  # longer than the tiny model's 256 positions
    cont = [5, 6, 7]
    (scored,) = score_tokens(tiny_llama.model, [(ctx, cont)], max_length=256)
    assert scored.truncated == len(ctx) + len(cont) - 257
    kept = (ctx + cont)[-257:]
    expected, _ = reference(tiny_llama.model, kept[: -len(cont)], cont)
    assert scored.logprob == pytest.approx(expected, abs=1e-4)


def test_bad_continuations(tiny_llama):
    with pytest.raises(MindsetError, match="no tokens"):
        score_tokens(tiny_llama.model, [([1, 2], [])], max_length=256)
    with pytest.raises(MindsetError, match="does not fit"):
        score_tokens(tiny_llama.model, [([1, 2], list(range(300)))], max_length=256)


def test_an_evaluation_says_when_prompts_were_cut(tiny_llama, tmp_path):
    from mindset.evaluate.runner import evaluate_task
    from mindset.evaluate.suites import write_task
    from mindset.evaluate.taskfile import load_task
    from mindset.evaluate.tasks import Task

    warnings = []
    task = Task(load_task(write_task("counting", tmp_path, n_test=5)))  # 3-shot prompts: ~500 bytes, 256 positions
    result = evaluate_task(tiny_llama, task, limit=2, warn=warnings.append)
    assert result.truncated_docs == 2 and all(s["truncated"] > 0 for s in result.samples)
    assert len(warnings) == 1 and "cut from the left, as lm-eval does" in warnings[0]


def test_generation_keeps_the_newest_prompt_tokens_and_room_to_answer(tiny_llama):
    from mindset.evaluate.generation import generate_until

    long_prompt = "word " * 100  # 500 bytes: longer than the tiny model's 256 positions
    result = generate_until(tiny_llama, long_prompt, ["\n"], max_gen_toks=16)
    assert result.truncated == 500 - (256 - 16) and result.tokens <= 16
    with pytest.raises(MindsetError, match="must be less than the model's context"):
        generate_until(tiny_llama, "hi", ["\n"], max_gen_toks=256)


@pytest.mark.parametrize("stop", [["e"], [" t", "\n"], []])
def test_generation_equals_transformers_greedy_cut_at_the_first_stop(tiny, stop):
    from mindset.evaluate.generation import cut_at_stops, generate_until

    prompt = "It is a truth universally acknowledged, that"
    ids = torch.tensor([tiny.tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        out = tiny.model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=tiny.tokenizer.pad_token_id)
    expected = cut_at_stops(tiny.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True), stop + [tiny.tokenizer.eos_token])
    assert generate_until(tiny, prompt, stop, max_gen_toks=20).text == expected
