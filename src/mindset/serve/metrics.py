"""/metrics in Prometheus' text format, through prometheus-client.

Each app has its own CollectorRegistry (not the process-wide default), so several servers in one process
(tests, notebooks) count separately. Requests are counted by an ASGI middleware that reads the status a
response starts with: it leaves streaming and disconnect detection alone (Starlette's BaseHTTPMiddleware
would wrap both). Paths outside the API are counted as "other", so a scan of random URLs cannot grow the
label set without bound.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health", "/metrics")
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, pending: Callable[[], int], running: Callable[[], int], loaded: Callable[[], int] = lambda: 1):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mindset_requests", "HTTP requests answered, by endpoint and status code", ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("mindset_prompt_tokens", "prompt (input) tokens of accepted requests, embeddings included", registry=r)
        self.completion_tokens = Counter("mindset_completion_tokens", "tokens generated", registry=r)
        queue = Gauge("mindset_queue_depth", "requests accepted and not finished (what --max-pending bounds)", registry=r)
        queue.set_function(pending)
        running_gauge = Gauge("mindset_requests_running", "generations being decoded now", registry=r)
        running_gauge.set_function(running)
        loaded_gauge = Gauge("mindset_models_loaded", "models loaded now (the others load on their first request)", registry=r)
        loaded_gauge.set_function(loaded)
        self.model_loads = Counter("mindset_model_loads", "times each model was loaded (a reload after an unload counts again)", ["model"], registry=r)
        self.ttft = Histogram("mindset_time_to_first_token_seconds", "from accepting a request to its first new token", buckets=TTFT_BUCKETS, registry=r)
        self.per_token = Histogram("mindset_time_per_output_token_seconds", "between consecutive new tokens of a request", buckets=TOKEN_BUCKETS, registry=r)

    def token(self, seconds: float, *, first: bool) -> None:
        """One new token, `seconds` after the request was accepted (first) or after its previous token."""
        self.completion_tokens.inc()
        (self.ttft if first else self.per_token).observe(seconds)

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


class RequestCounter:
    """ASGI middleware counting each HTTP response by endpoint and status (`app.add_middleware(RequestCounter, metrics=...)`)."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        seen = False

        async def send_counted(message):
            nonlocal seen
            if message["type"] == "http.response.start" and not seen:
                seen = True
                self.metrics.requests.labels(endpoint, str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except Exception:
            if not seen:  # the app failed before answering: the server answers 500
                self.metrics.requests.labels(endpoint, "500").inc()
            raise
