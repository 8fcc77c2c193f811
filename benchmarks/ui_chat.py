"""Claim: the workbench's Chat view gets its first token as fast as `mindset chat` does (issue 16).

    python benchmarks/ui_chat.py [--model smollm2-135m] [--reps 3] [--tokens 32]

Over real HTTP to a `mindset ui` server in this process (uvicorn on loopback), the official openai client streams
a greedy reply with logprobs (top 5), as the page asks, from `original` and from `current` after an edit (a
function-preserving random widening); time to first token (TTFT) and decode tokens/s per request. The baseline
is `mindset chat`'s own decode loop (chat.generation.stream_steps) on the same prompt ids, in the same process.
The three run alternately, --reps times, medians kept. "after an edit" is the first `current` request after
each edit: it includes swapping in an engine for the edited model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

TOKEN = "bench"
MESSAGES = [{"role": "user", "content": "Tell me about the history of Paris in a few sentences."}]


def over_http(client, model: str, tokens: int) -> tuple[float, float]:
    """(TTFT s, decode tokens/s) of one streamed reply."""
    start = time.perf_counter()
    first, count = None, 0
    chunks = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=tokens, temperature=0, stream=True,
                                            logprobs=True, top_logprobs=5)
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            first = first or time.perf_counter()
            count += len(chunk.choices[0].logprobs.content)
    end = time.perf_counter()
    return first - start, (count - 1) / max(end - first, 1e-9)


def chat_loop(loaded, tokens: int) -> tuple[float, float]:
    """The same numbers from `mindset chat`'s decode loop."""
    from mindset.chat.generation import encode_prompt, stop_token_ids, stream_steps
    from mindset.chat.sampling import SamplingParams

    start = time.perf_counter()
    ids = encode_prompt(loaded.tokenizer, MESSAGES)
    first, count = None, 0
    for _ in stream_steps(loaded.model, ids, SamplingParams(max_new_tokens=tokens, temperature=0), stop_token_ids(loaded.model, loaded.tokenizer), tokens):
        first = first or time.perf_counter()
        count += 1
    end = time.perf_counter()
    return first - start, (count - 1) / max(end - first, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()

    from openai import OpenAI

    from mindset.models import load
    from mindset.ui import Workbench
    from mindset.ui.browser import serving

    loaded = load(args.model, device="cpu", dtype="float32")
    runs: dict[str, list[tuple[float, float]]] = {"mindset chat (stream_steps)": [], "ui /v1 original": [], "ui /v1 current": [], "ui /v1 current, after an edit": []}
    with tempfile.TemporaryDirectory() as work:
        bench = Workbench(loaded, Path(work) / "root", autosave=False)
        with serving(bench, TOKEN) as url:
            client = OpenAI(base_url=url.split("/?")[0] + "/v1", api_key=TOKEN, max_retries=0)
            over_http(client, "current", 4)  # warm both paths once
            chat_loop(loaded, 4)
            for rep in range(args.reps):
                runs["mindset chat (stream_steps)"].append(chat_loop(bench.original, args.tokens))
                runs["ui /v1 original"].append(over_http(client, "original", args.tokens))
                bench.apply("widen_ffn", {"layers": [rep % 4], "add": 64, "init": "random", "seed": rep})
                runs["ui /v1 current, after an edit"].append(over_http(client, "current", args.tokens))
                runs["ui /v1 current"].append(over_http(client, "current", args.tokens))
    rows = [[name, round(1000 * statistics.median(t for t, _ in r)), round(statistics.median(s for _, s in r), 1)] for name, r in runs.items()]
    publish(__file__, f"Chat in the workbench vs mindset chat: {args.model}, {args.tokens} greedy tokens, median of {args.reps}",
            ["path", "TTFT ms", "decode tok/s"], rows, {"model": args.model, "tokens": args.tokens, "reps": args.reps,
                                                        "runs": {k: [list(x) for x in v] for k, v in runs.items()}})


if __name__ == "__main__":
    main()
