"""--backend URL: replies (and summaries, reflections) from any OpenAI-compatible server — Ollama, llama.cpp's
server, vLLM, `mindset serve` — while the memory, its embeddings and the context budget stay local.

Standard library only (urllib): one POST to /v1/chat/completions per completion, streamed as server-sent
events so the reply prints as it arrives. The local model's tokenizer measures the conversation, so
the oldest turns are dropped (and summarised) by the same rule as a local chat. A server that cannot be
reached, or that answers with an error, is one MindsetError naming the URL; the turn is then not stored,
so the memory is as it was before the message.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from mindset.chat import ChatSession, SamplingParams
from mindset.errors import MindsetError

TIMEOUT_S = 300.0  # a slow CPU server may take minutes for a long answer


@dataclass
class BackendReply:
    """What ChatSession.reply's Generation offers the agent: the text (and why it stopped)."""

    text: str
    finish_reason: str | None = None


class Backend:
    """An OpenAI-compatible server. `model=None` asks /v1/models and takes the first it lists."""

    def __init__(self, url: str, model: str | None = None, key: str | None = None, timeout: float = TIMEOUT_S):
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise MindsetError(f"--backend {url!r} is not an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1")
        for tail in ("/chat/completions", "/v1"):
            url = url.removesuffix(tail)
        self.base = url + "/v1"
        self.key, self.timeout = key, timeout
        self.model = model or self._first_model()

    def chat(self, messages: list[dict[str, str]], params: SamplingParams, on_text: Callable[[str], None] | None = None) -> BackendReply:
        """One streamed chat completion of `messages` (the system message first, when there is one)."""
        body = {"model": self.model, "messages": messages, "stream": True, "max_tokens": params.max_new_tokens,
                "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed}
        parts, finish, other = [], None, []
        try:
            with self._open("/chat/completions", body) as response:
                for line in response:
                    line = line.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        other.append(line)  # a server that ignores stream=true answers with one JSON body
                        continue
                    if line == "data: [DONE]":
                        continue
                    choice = (json.loads(line[5:]).get("choices") or [{}])[0]
                    text = (choice.get("delta") or {}).get("content") or ""
                    finish = choice.get("finish_reason") or finish
                    if text:
                        parts.append(text)
                        if on_text is not None:
                            on_text(text)
        except (OSError, http.client.HTTPException, json.JSONDecodeError) as err:
            raise MindsetError(f"the backend {self.base} broke off its answer ({type(err).__name__}: {err}); the turn was not stored") from None
        if not parts and "".join(other).strip().startswith("{"):
            choice = (json.loads("".join(other)).get("choices") or [{}])[0]
            text = (choice.get("message") or {}).get("content") or ""
            if on_text is not None and text:
                on_text(text)
            return BackendReply(text, choice.get("finish_reason"))
        return BackendReply("".join(parts), finish)

    def complete(self, prompt: str, max_tokens: int) -> str:
        """A greedy answer to one user message: what summaries and reflections ask."""
        return self.chat([{"role": "user", "content": prompt}], SamplingParams(max_new_tokens=max_tokens)).text.strip()

    def _first_model(self) -> str:
        with self._open("/models") as response:
            listed = json.loads(response.read()).get("data") or []
        if not listed:
            raise MindsetError(f"the backend {self.base} lists no models; name one with --backend-model")
        return str(listed[0]["id"])

    def _open(self, path: str, body: dict | None = None):
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.key}"} if self.key else {})}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method="POST" if body is not None else "GET")
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            detail = " ".join(err.read().decode("utf-8", "replace").split())[:200]
            raise MindsetError(f"the backend {self.base} answered {err.code} to {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise MindsetError(f"the backend {self.base} cannot be reached ({reason}); start it or fix --backend "
                               "(the memory is unchanged)") from None


class BackendSession(ChatSession):
    """A ChatSession whose replies come from a Backend; the local model's tokenizer fits the context."""

    def __init__(self, loaded, backend: Backend, params: SamplingParams | None = None, system: str | None = None):
        super().__init__(loaded, params, system)
        self.backend = backend

    def reply(self, user_text: str, on_text: Callable[[str], None] | None = None) -> BackendReply:
        if not user_text.strip():
            raise MindsetError("the message is empty")
        self.messages.append({"role": "user", "content": user_text})
        try:
            self._fit_context()  # drops the oldest turns while the conversation would not fit the local budget
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + list(self.messages)
            result = self.backend.chat(messages, self.params, on_text)
        except BaseException:
            self.messages.pop()  # the unanswered message leaves the history as it was
            raise
        self.messages.append({"role": "assistant", "content": result.text})
        return result
