"""A generation's answer in OpenAI's shapes: whole (chat.completion, text_completion) or as server-sent events.

Log-probabilities travel with the text they belong to: each chunk carries the entries of the tokens whose
text it holds (a token that only completes part of a character arrives with the next chunk that has text).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request

from mindset.serve.engine import Job
from mindset.serve.logprobs import LegacyLogprobs, TokenLogprob, TokenText, chat_content
from mindset.serve.protocol import FINISH, ResponseIds, error_body, usage

DISCONNECT_POLL_S = 0.5


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.body = status, error_body(message, type_, param, code)


@dataclass
class Answer:
    """What a generation request asked for, beyond its tokens: how to write the answer."""

    ids: ResponseIds
    chat: bool
    prompt_tokens: int
    text: TokenText
    logprobs: bool = False
    prompt_text: str = ""
    echo: bool = False  # the prompt's text comes back before the completion

    def legacy(self) -> LegacyLogprobs:
        """Legacy log-probabilities whose text offsets count from the returned text's start."""
        return LegacyLogprobs(self.text, 0 if self.echo else len(self.prompt_text))


@dataclass
class Collected:
    text: str = ""
    reason: str = "length"
    n_tokens: int = 0
    prompt: list[TokenLogprob] = field(default_factory=list)
    tokens: list[TokenLogprob] = field(default_factory=list)


async def collect(request: Request, job: Job) -> Collected:
    """Wait for a whole answer; a client that disconnects meanwhile cancels its generation."""
    got = Collected()
    parts: list[str] = []
    try:
        while True:
            try:
                event = await asyncio.wait_for(job.events.get(), timeout=DISCONNECT_POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    job.cancel()
                    raise ApiError(499, "client closed the request") from None
                continue
            if event[0] == "prompt":
                got.prompt = event[1]
            elif event[0] == "text":
                parts.append(event[1])
                got.tokens += event[2]
            elif event[0] == "done":
                got.reason, got.n_tokens = event[1], event[2]
                got.tokens += event[3]
                got.text = "".join(parts)
                return got
            else:
                raise ApiError(500, event[1], "server_error")
    finally:
        job.cancel()  # a no-op once finished; stops the work if we leave early


def whole(answer: Answer, got: Collected) -> dict:
    """The non-streaming response body."""
    finish = FINISH[got.reason]
    if answer.chat:
        logprobs = {"content": chat_content(answer.text, got.tokens), "refusal": None} if answer.logprobs else None
        choice = {"index": 0, "message": {"role": "assistant", "content": got.text}, "finish_reason": finish, "logprobs": logprobs}
        kind = "chat.completion"
    else:
        logprobs = answer.legacy().add(got.prompt + got.tokens) if answer.logprobs else None
        text = (answer.prompt_text if answer.echo else "") + got.text
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": logprobs}
        kind = "text_completion"
    return {**answer.ids.head(kind), "choices": [choice], "usage": usage(answer.prompt_tokens, got.n_tokens)}


async def stream(job: Job, answer: Answer, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events in OpenAI's chunk format; leaving early (disconnect) cancels the generation."""
    chat = answer.chat
    kind = "chat.completion.chunk" if chat else "text_completion"
    legacy = answer.legacy()

    def chunk(delta: str | None, entries: list[TokenLogprob], finish: str | None = None, role: bool = False) -> str:
        if chat:
            content = {"role": "assistant", "content": ""} if role else ({} if delta is None else {"content": delta})
            logprobs = {"content": chat_content(answer.text, entries), "refusal": None} if answer.logprobs and not role else None
            choice = {"index": 0, "delta": content, "finish_reason": finish, "logprobs": logprobs}
        else:
            logprobs = legacy.add(entries) if answer.logprobs else None
            choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": logprobs}
        return f"data: {json.dumps({**answer.ids.head(kind), 'choices': [choice]})}\n\n"

    try:
        if chat:
            yield chunk(None, [], role=True)
        elif answer.echo and not job.score_prompt:
            yield chunk(answer.prompt_text, [])
        while True:
            event = await job.events.get()
            if event[0] == "prompt":
                yield chunk(answer.prompt_text, event[1])
            elif event[0] == "text":
                yield chunk(event[1], event[2])
            elif event[0] == "done":
                yield chunk(None, event[3], FINISH[event[1]])
                if include_usage:
                    yield f"data: {json.dumps({**answer.ids.head(kind), 'choices': [], 'usage': usage(answer.prompt_tokens, event[2])})}\n\n"
                break
            else:
                yield f"data: {json.dumps(error_body(event[1], 'server_error'))}\n\n"
                break
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()
