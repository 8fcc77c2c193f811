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


class _Tagged:
    """Where one of a request's jobs puts its events: the request's shared queue, tagged with its choice index."""

    def __init__(self, queue: asyncio.Queue, index: int):
        self.queue, self.index = queue, index

    def put_nowait(self, event: tuple) -> None:
        self.queue.put_nowait((self.index, event))


class Choices:
    """A request's jobs, one per choice (n of them), their events read as (choice index, event) in the order
    they happen. Built before the jobs are submitted: with n > 1 it routes every job's events into one queue."""

    def __init__(self, jobs: list[Job]):
        self.jobs = jobs
        self.queue = jobs[0].events if len(jobs) == 1 else asyncio.Queue()
        if len(jobs) > 1:
            for index, job in enumerate(jobs):
                job.events = _Tagged(self.queue, index)

    def __len__(self) -> int:
        return len(self.jobs)

    async def get(self) -> tuple[int, tuple]:
        event = await self.queue.get()
        return (0, event) if len(self.jobs) == 1 else event

    def cancel(self) -> None:
        for job in self.jobs:
            job.cancel()


async def collect(request: Request, job: Job) -> Collected:
    """Wait for a whole answer; a client that disconnects meanwhile cancels its generation."""
    return (await collect_choices(request, Choices([job])))[0]


async def collect_choices(request: Request, choices: Choices) -> list[Collected]:
    """Wait for every choice's whole answer; a client that disconnects meanwhile cancels them all, and one
    choice's error fails the request (the others are cancelled)."""
    got = [Collected() for _ in range(len(choices))]
    parts: list[list[str]] = [[] for _ in got]
    left = len(got)
    try:
        while left:
            try:
                index, event = await asyncio.wait_for(choices.get(), timeout=DISCONNECT_POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    choices.cancel()
                    raise ApiError(499, "client closed the request") from None
                continue
            one = got[index]
            if event[0] == "prompt":
                one.prompt = event[1]
            elif event[0] == "text":
                parts[index].append(event[1])
                one.tokens += event[2]
            elif event[0] == "done":
                one.reason, one.n_tokens = event[1], event[2]
                one.tokens += event[3]
                one.text = "".join(parts[index])
                left -= 1
            else:
                raise ApiError(500, event[1], "server_error")
        return got
    finally:
        choices.cancel()  # a no-op once finished; stops the work if we leave early


def whole(answer: Answer, got: Collected | list[Collected]) -> dict:
    """The non-streaming response body: one choice per Collected, index 0..n-1; the prompt counted once in usage."""
    gots = got if isinstance(got, list) else [got]
    if answer.chat:
        choices = [_chat_choice(answer, index, one) for index, one in enumerate(gots)]
        kind = "chat.completion"
    else:
        prompt = gots[0].prompt  # echo: the first choice scored the prompt, for all
        choices = [_text_choice(answer, index, one, prompt) for index, one in enumerate(gots)]
        kind = "text_completion"
    return {**answer.ids.head(kind), "choices": choices, "usage": usage(answer.prompt_tokens, sum(one.n_tokens for one in gots))}


def _chat_choice(answer: Answer, index: int, got: Collected) -> dict:
    logprobs = {"content": chat_content(answer.text, got.tokens), "refusal": None} if answer.logprobs else None
    return {"index": index, "message": {"role": "assistant", "content": got.text}, "finish_reason": FINISH[got.reason], "logprobs": logprobs}


def _text_choice(answer: Answer, index: int, got: Collected, prompt: list[TokenLogprob]) -> dict:
    logprobs = answer.legacy().add(prompt + got.tokens) if answer.logprobs else None
    text = (answer.prompt_text if answer.echo else "") + got.text
    return {"index": index, "text": text, "finish_reason": FINISH[got.reason], "logprobs": logprobs}


async def stream(job: Job | Choices, answer: Answer, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events in OpenAI's chunk format, each chunk naming its choice's index; leaving early
    (disconnect) cancels the generations."""
    choices = job if isinstance(job, Choices) else Choices([job])
    chat = answer.chat
    kind = "chat.completion.chunk" if chat else "text_completion"
    legacy = [answer.legacy() for _ in range(len(choices))]  # offsets count per choice's text

    def chunk(index: int, delta: str | None, entries: list[TokenLogprob], finish: str | None = None, role: bool = False) -> str:
        if chat:
            content = {"role": "assistant", "content": ""} if role else ({} if delta is None else {"content": delta})
            logprobs = {"content": chat_content(answer.text, entries), "refusal": None} if answer.logprobs and not role else None
            choice = {"index": index, "delta": content, "finish_reason": finish, "logprobs": logprobs}
        else:
            logprobs = legacy[index].add(entries) if answer.logprobs else None
            choice = {"index": index, "text": delta or "", "finish_reason": finish, "logprobs": logprobs}
        return f"data: {json.dumps({**answer.ids.head(kind), 'choices': [choice]})}\n\n"

    indices = range(len(choices))
    try:
        if chat:
            for index in indices:
                yield chunk(index, None, [], role=True)
        elif answer.echo and not choices.jobs[0].score_prompt:
            for index in indices:
                yield chunk(index, answer.prompt_text, [])
        left, n_tokens = len(choices), 0
        while left:
            index, event = await choices.get()
            if event[0] == "prompt":  # the first choice scored the prompt, for all
                for each in indices:
                    yield chunk(each, answer.prompt_text, event[1])
            elif event[0] == "text":
                yield chunk(index, event[1], event[2])
            elif event[0] == "done":
                yield chunk(index, None, event[3], FINISH[event[1]])
                left, n_tokens = left - 1, n_tokens + event[2]
            else:
                yield f"data: {json.dumps(error_body(event[1], 'server_error'))}\n\n"
                break
        if not left and include_usage:
            yield f"data: {json.dumps({**answer.ids.head(kind), 'choices': [], 'usage': usage(answer.prompt_tokens, n_tokens)})}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        choices.cancel()
