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
