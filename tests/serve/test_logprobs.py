"""Log-probabilities through the official openai client: the numbers are mindset.evaluate's log-likelihoods."""

import httpx
import openai
import pytest
from serve_helpers import api

from mindset.chat import SamplingParams, encode_prompt, generate
from mindset.evaluate.loglikelihood import encode_request, loglikelihoods, score_tokens
from mindset.serve.logprobs import TokenText

TOL = 1e-4
CONTEXT, CONTINUATION = "The capital of France is", " Paris, a city of light"


def per_token_scores(loaded, prompt_ids, tokens):
    """evaluate's log-probability of each token given the prompt and the tokens before it."""
    pairs = [(list(prompt_ids) + tokens[:i], [tokens[i]]) for i in range(len(tokens))]
    return [s.logprob for s in score_tokens(loaded.model, pairs, max_length=loaded.context_length)]


def test_echoed_prompt_logprobs_are_evaluates_loglikelihoods(tiny_served):
    server, loaded = tiny_served
    ctx, cont = encode_request(loaded.tokenizer, CONTEXT, CONTINUATION)
    reply = api(server).completions.create(model=loaded.name, prompt=ctx + cont, max_tokens=0, echo=True, logprobs=0)
    lp = reply.choices[0].logprobs
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing predicts the first token
    assert len(lp.token_logprobs) == len(ctx + cont) and reply.usage.completion_tokens == 0
    expected = loglikelihoods(loaded, [(CONTEXT, CONTINUATION)])[0].logprob
    assert sum(lp.token_logprobs[len(ctx) :]) == pytest.approx(expected, abs=TOL)
    ids = ctx + cont
    for split in (1, 3, len(ctx), len(ids) - 1):  # every suffix of the prompt, scored as a continuation
        scored = score_tokens(loaded.model, [(ids[:split], ids[split:])], max_length=loaded.context_length)[0].logprob
        assert sum(lp.token_logprobs[split:]) == pytest.approx(scored, abs=TOL)


def test_a_text_prompt_is_echoed_with_offsets_into_the_text(tiny_served):
    server, loaded = tiny_served
    reply = api(server).completions.create(model=loaded.name, prompt=CONTEXT, max_tokens=5, temperature=0, echo=True, logprobs=2)
    choice = reply.choices[0]
    choice_lp = choice.logprobs
    n_prompt = reply.usage.prompt_tokens
    assert choice.text.startswith(CONTEXT) and "".join(choice_lp.tokens[:n_prompt]) == CONTEXT
    assert len(choice_lp.tokens) == n_prompt + reply.usage.completion_tokens
    for token, offset in zip(choice_lp.tokens[:n_prompt], choice_lp.text_offset):
        assert choice.text[offset : offset + len(token)] == token
    assert all(len(top) <= 3 and token in top for token, top in zip(choice_lp.tokens[1:], choice_lp.top_logprobs[1:]))


@pytest.mark.parametrize("temperature", [0.0, 1.7])
def test_generated_logprobs_are_the_models_before_temperature(tiny_served, temperature):
    """At temperature 1.7 the reported numbers are still the model's own log-softmax, as OpenAI reports them."""
    server, loaded = tiny_served
    params = SamplingParams(max_new_tokens=12, temperature=temperature, seed=3)
    local = generate(loaded, CONTEXT, params, chat=False)
    reply = api(server).completions.create(model=loaded.name, prompt=CONTEXT, max_tokens=12, temperature=temperature, seed=3, logprobs=3)
    lp = reply.choices[0].logprobs
    tokens = [t for t in local.tokens if t not in local.stop_ids]
    text = TokenText(loaded.tokenizer)
    assert lp.tokens == [text.piece(t)[0] for t in tokens]  # the same tokens, in the same order
    prompt_ids = loaded.tokenizer(CONTEXT)["input_ids"]
    assert lp.token_logprobs == pytest.approx(per_token_scores(loaded, prompt_ids, tokens), abs=TOL)
    assert lp.text_offset[0] == len(CONTEXT)  # offsets count from the prompt's end when it is not echoed


def test_chat_logprobs_whole_and_streamed(tiny_served):
    server, loaded = tiny_served
    messages = [{"role": "user", "content": "Tell me about Mr. Darcy."}]
    reply = api(server).chat.completions.create(model=loaded.name, messages=messages, max_tokens=10, temperature=0, logprobs=True, top_logprobs=5)
    content = reply.choices[0].logprobs.content
    local = generate(loaded, messages[0]["content"], SamplingParams(max_new_tokens=10, temperature=0))
    tokens = [t for t in local.tokens if t not in local.stop_ids]
    expected = per_token_scores(loaded, encode_prompt(loaded.tokenizer, messages), tokens)
    assert [c.logprob for c in content] == pytest.approx(expected, abs=TOL)
    for entry in content:  # greedy: the chosen token is the best one, and the five come best first
        assert len(entry.top_logprobs) == 5 and entry.top_logprobs[0].logprob == entry.logprob
        assert [t.logprob for t in entry.top_logprobs] == sorted((t.logprob for t in entry.top_logprobs), reverse=True)
    if local.finish_reason == "length":
        assert b"".join(bytes(c.bytes) for c in content).decode("utf-8", errors="replace") == reply.choices[0].message.content
    chunks = list(api(server).chat.completions.create(model=loaded.name, messages=messages, max_tokens=10, temperature=0, logprobs=True, top_logprobs=5, stream=True))
    streamed = [c for chunk in chunks if chunk.choices and chunk.choices[0].logprobs for c in chunk.choices[0].logprobs.content]
    assert [(c.token, c.logprob) for c in streamed] == [(c.token, c.logprob) for c in content]


def test_streamed_completion_logprobs_equal_the_whole(tiny_served):
    server, loaded = tiny_served
    request = {"model": loaded.name, "prompt": CONTEXT, "max_tokens": 8, "temperature": 0, "logprobs": 2, "echo": True}
    whole = api(server).completions.create(**request).choices[0]
    chunks = [c.choices[0] for c in api(server).completions.create(**request, stream=True) if c.choices]
    assert "".join(c.text for c in chunks) == whole.text
    for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
        assert [v for c in chunks if c.logprobs for v in getattr(c.logprobs, key)] == getattr(whole.logprobs, key)


def test_without_logprobs_none_come_back(tiny_served):
    server, loaded = tiny_served
    chat = api(server).chat.completions.create(model=loaded.name, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    text = api(server).completions.create(model=loaded.name, prompt="hi", max_tokens=3, echo=True)
    assert chat.choices[0].logprobs is None and text.choices[0].logprobs is None and text.choices[0].text.startswith("hi")


@pytest.mark.parametrize(
    "path,fields,param",
    [
        ("chat", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("chat", {"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ("chat", {"top_logprobs": 3}, None),  # without logprobs: true
        ("completions", {"logprobs": 6}, "logprobs"),
        ("completions", {"logprobs": -1}, "logprobs"),
        ("completions", {"max_tokens": 0}, None),  # 0 only with echo
        ("completions", {"prompt": [5, 10**9]}, "prompt"),  # a token id beyond the vocabulary
        ("completions", {"prompt": []}, "prompt"),
    ],
)
def test_out_of_range_logprob_fields_are_openai_400s(served, path, fields, param):
    server, _ = served
    base = {"model": "tiny-llama", "max_tokens": 2}
    base.update({"messages": [{"role": "user", "content": "hi"}]} if path == "chat" else {"prompt": "hi"})
    response = httpx.post(f"{server.url}/v1/{'chat/completions' if path == 'chat' else 'completions'}", json={**base, **fields})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param:
        assert error["param"].startswith(param), error


def test_the_openai_client_sees_a_400_for_too_many_top_logprobs(served):
    server, _ = served
    with pytest.raises(openai.BadRequestError):
        api(server).chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=30)


def test_a_prompt_scored_in_chunks_scores_as_in_one_pass(tiny):
    """Long prompts run in chunks over one KV cache (bounded logits memory); the numbers do not change."""
    from mindset.serve.logprobs import prompt_logprobs

    ctx, cont = encode_request(tiny.tokenizer, CONTEXT, CONTINUATION)
    ids = ctx + cont
    whole, chunked = prompt_logprobs(tiny.model, ids, 3), prompt_logprobs(tiny.model, ids, 3, chunk=4)
    assert [e.id for e in chunked] == ids and chunked[0].logprob is None
    assert [e.logprob for e in chunked[1:]] == pytest.approx([e.logprob for e in whole[1:]], abs=1e-5)
    assert [[i for i, _ in e.top] for e in chunked] == [[i for i, _ in e.top] for e in whole]
    expected = loglikelihoods(tiny, [(CONTEXT, CONTINUATION)])[0].logprob
    assert sum(e.logprob for e in chunked[len(ctx) :]) == pytest.approx(expected, abs=TOL)
