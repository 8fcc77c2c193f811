"""The server on the real model: the same greedy answer as `mindset chat --temperature 0`."""

import openai
import pytest

from mindset.serve import BackgroundServer, create_app

pytestmark = pytest.mark.slow


def test_server_answers_like_the_chat_command(smollm2, cli):
    question = "What is the capital of France?"
    code, out, _ = cli("chat", "smollm2-135m", "--prompt", question, "--temperature", "0", "--max-new-tokens", "40", "--device", "cpu", "--dtype", "float32")
    assert code == 0
    with BackgroundServer(create_app(smollm2, model_name="smollm2-135m")) as server:
        api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        reply = api.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": question}], max_tokens=40, temperature=0)
        stream = api.chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": question}], max_tokens=40, temperature=0, stream=True
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert reply.choices[0].message.content + "\n" == out == streamed + "\n"
    assert "Paris" in out


def test_real_model_logprobs_and_embeddings_are_evaluates_and_the_maps(smollm2):
    """SmolLM2's byte-level tokens: echoed log-probs are evaluate's log-likelihood, embeddings the map's vectors."""
    import numpy as np

    from mindset.evaluate.loglikelihood import encode_request, loglikelihoods
    from mindset.map.encode import encode_items, resolve_layer, tokenize_item

    context, continuation = "The capital of France is", " Paris, a café town"
    with BackgroundServer(create_app(smollm2, model_name="smollm2-135m")) as server:
        api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        ctx, cont = encode_request(smollm2.tokenizer, context, continuation)
        echoed = api.completions.create(model="smollm2-135m", prompt=ctx + cont, max_tokens=0, echo=True, logprobs=1).choices[0]
        text = api.completions.create(model="smollm2-135m", prompt=context + continuation, max_tokens=0, echo=True, logprobs=0).choices[0]
        texts = [context, context + continuation]
        vectors = np.array([d.embedding for d in api.embeddings.create(model="smollm2-135m", input=texts).data], dtype=np.float32)
    expected = loglikelihoods(smollm2, [(context, continuation)])[0].logprob
    assert sum(echoed.logprobs.token_logprobs[len(ctx) :]) == pytest.approx(expected, abs=1e-4)
    assert "".join(text.logprobs.tokens) == context + continuation  # "é" and "Ġ" turned back into their bytes
    tokenized = [tokenize_item(smollm2.tokenizer, t) for t in texts]
    np.testing.assert_array_equal(vectors, encode_items(smollm2, tokenized, resolve_layer(smollm2.model, None))[0])
