"""/metrics: Prometheus text that a scraper parses, counters that move by what the requests did, one registry per app."""

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families
from serve_helpers import LiveServer

from mindset.serve import create_app

MESSAGES = [{"role": "user", "content": "Tell me about Mr. Darcy."}]


def scrape(server) -> dict:
    """{(sample name, sorted label items): value} from a live /metrics."""
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def requests(samples, endpoint, status):
    return samples.get(("mindset_requests_total", (("endpoint", endpoint), ("status", status))), 0.0)


def test_two_requests_move_the_counters_by_what_they_did(served):
    server, _ = served
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)
    before = scrape(server)
    chat = api.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=7, temperature=0)
    text = api.completions.create(model="tiny-llama", prompt="Once upon a time", max_tokens=5, temperature=0)
    after = scrape(server)

    def moved(name, labels=()):
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert requests(after, "/v1/chat/completions", "200") - requests(before, "/v1/chat/completions", "200") == 1
    assert requests(after, "/v1/completions", "200") - requests(before, "/v1/completions", "200") == 1
    assert requests(after, "/metrics", "200") - requests(before, "/metrics", "200") == 1  # the first scrape
    assert moved("mindset_prompt_tokens_total") == chat.usage.prompt_tokens + text.usage.prompt_tokens
    out = chat.usage.completion_tokens + text.usage.completion_tokens
    assert moved("mindset_completion_tokens_total") == out
    assert moved("mindset_time_to_first_token_seconds_count") == 2
    assert moved("mindset_time_per_output_token_seconds_count") == out - 2
    assert moved("mindset_time_to_first_token_seconds_sum") > 0
    assert after[("mindset_queue_depth", ())] == 0 and after[("mindset_requests_running", ())] == 0


def test_errors_and_unknown_paths_are_counted_by_status(served):
    server, _ = served
    httpx.post(f"{server.url}/v1/chat/completions", json={"model": "tiny-llama", "messages": []})
    httpx.post(f"{server.url}/v1/embeddings", json={"model": "nope", "input": "hi"})
    for path in ("/wp-admin", "/v1/secret", "/x"):
        httpx.get(f"{server.url}{path}")
    samples = scrape(server)
    assert requests(samples, "/v1/chat/completions", "400") == 1
    assert requests(samples, "/v1/embeddings", "404") == 1
    assert requests(samples, "other", "404") == 3  # random paths share one label
    assert not any(dict(labels).get("endpoint", "").startswith("/wp") for _, labels in samples)


def test_every_app_counts_alone(tiny_llama):
    first, second = create_app(tiny_llama), create_app(tiny_llama)
    with LiveServer(first) as a, LiveServer(second) as b:
        httpx.post(f"{a.url}/v1/completions", json={"model": "tiny-llama", "prompt": "hi", "max_tokens": 2})
        assert requests(scrape(a), "/v1/completions", "200") == 1
        assert requests(scrape(b), "/v1/completions", "200") == 0
        assert scrape(b)[("mindset_completion_tokens_total", ())] == 0


def test_metrics_stay_open_when_an_api_key_is_set(tiny_llama):
    """Like /health: scrapers rarely hold API keys, and the server is on loopback unless told otherwise."""
    with LiveServer(create_app(tiny_llama, api_key="s3cret")) as server:
        assert httpx.get(f"{server.url}/v1/models").status_code == 401
        assert requests(scrape(server), "/v1/models", "401") == 1
