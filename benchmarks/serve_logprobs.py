"""Log-probabilities from `mindset serve` against mindset.evaluate, and what asking for them costs, SmolLM2-135M.

    python benchmarks/serve_logprobs.py [--new-tokens 64]

(1) For a few context/continuation pairs, the continuation's log-likelihood from /v1/completions with
`echo: true, max_tokens: 0, logprobs: 0` (token-id prompts split as lm-eval splits them) against
`mindset.evaluate.loglikelihood.loglikelihoods`: the largest difference, in nats (the tests require 1e-4).
(2) Greedy chat decode speed without log-probabilities and with `top_logprobs: 20`, the most OpenAI allows.
The server runs in this process (BackgroundServer): both speeds share that setting.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

PAIRS = [
    ("The capital of France is", " Paris, a café town"),
    ("Question: 2+2=?\nAnswer:", " 4"),
    ("Once upon a time", " there was a princess who lived in a castle by the sea."),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    import openai

    from mindset.evaluate.loglikelihood import encode_request, loglikelihoods
    from mindset.models import load
    from mindset.serve import BackgroundServer, create_app

    loaded = load("smollm2-135m", device="cpu", dtype="float32")
    expected = [s.logprob for s in loglikelihoods(loaded, PAIRS)]
    rows = []
    with BackgroundServer(create_app(loaded, model_name="m")) as server:
        api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=600)
        worst = 0.0
        for (context, continuation), want in zip(PAIRS, expected):
            ctx, cont = encode_request(loaded.tokenizer, context, continuation)
            lp = api.completions.create(model="m", prompt=ctx + cont, max_tokens=0, echo=True, logprobs=0).choices[0].logprobs
            worst = max(worst, abs(sum(lp.token_logprobs[len(ctx) :]) - want))
        rows.append(["max |echo - evaluate| (nats)", f"{worst:.2e}"])
        speeds = {}
        for label, extra in (("no logprobs", {}), ("top_logprobs 20", {"logprobs": True, "top_logprobs": 20})):
            messages = [{"role": "user", "content": "Tell me a story."}]
            api.chat.completions.create(model="m", messages=messages, max_tokens=4, temperature=0)  # warm-up
            start = time.perf_counter()
            reply = api.chat.completions.create(model="m", messages=messages, max_tokens=args.new_tokens, temperature=0, **extra)
            speeds[label] = reply.usage.completion_tokens / (time.perf_counter() - start)
            rows.append([f"greedy tok/s, {label}", f"{speeds[label]:.1f}"])
    publish(__file__, "serve: log-probabilities vs evaluate, and their cost", ["measure", "value"], rows, {"max_abs_diff": worst, "tokens_per_s": speeds})


if __name__ == "__main__":
    main()
