"""OpenAI's request and response shapes, as far as mindset serves them."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


MAX_CHOICES = 16  # n at most: each choice is a row of the batch (the engine decodes 32 rows at once by default)


class SamplingFields(BaseModel):
    # Fields OpenAI clients may send that mindset does not use (presence_penalty, user, ...) are ignored,
    # as OpenAI's own server does with unknown ones; the ones it uses are checked strictly.
    model_config = ConfigDict(extra="ignore")

    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1, description="choice i samples with seed + i: the same request, the same choices")
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=MAX_CHOICES, description="choices for the prompt: it is prefilled once, and the choices decode together")

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences")
        return stop

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = Field(None, description="return each new token's log-probability (the model's, before temperature)")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="and this many most likely tokens at each position; needs logprobs")

    @model_validator(mode="after")
    def _top_needs_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def logprob_top(self) -> int | None:
        """How many alternatives per token to report; None: no log-probabilities."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


TokenIds = list[Annotated[int, Field(ge=0)]]
MAX_EMBEDDING_INPUTS = 2048  # as OpenAI's


class CompletionRequest(SamplingFields):
    prompt: str | list[str] | TokenIds | list[TokenIds] = Field(description="text, or token ids (lm-eval sends these)")
    max_tokens: int | None = Field(16, ge=0, description="0 only with echo: score the prompt without generating")  # OpenAI's default
    logprobs: int | None = Field(None, ge=0, le=5, description="log-probabilities of the tokens and of this many most likely ones")
    echo: bool = Field(False, description="return the prompt before the completion (with logprobs: its tokens' log-probabilities)")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt):
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) and len(prompt) != 1:
            raise ValueError("one prompt per request")
        if isinstance(prompt, list) and not prompt:
            raise ValueError("the prompt is empty")
        return prompt

    @model_validator(mode="after")
    def _zero_tokens_needs_echo(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens is 0: nothing to return without echo: true")
        return self

    def prompt_value(self) -> str | list[int]:
        """The one prompt: text, or token ids."""
        prompt = self.prompt
        if isinstance(prompt, list) and not isinstance(prompt[0], int):
            return prompt[0]
        return prompt

    def token_limit(self) -> int | None:
        return self.max_tokens


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    input: str | list[str] | TokenIds | list[TokenIds] = Field(description="a text, texts, token ids, or lists of token ids")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="must be the model's hidden size: vectors are not shortened")
    layer: int | None = Field(None, description="mindset: hidden state after this layer (0: embeddings; default, -1: the last, after the final norm)")
    pooling: Literal["last", "mean"] = Field("last", description="mindset: the last token's state (the map's), or the mean over tokens")
    normalize: bool = Field(False, description="mindset: scale each vector to length 1 (OpenAI's are; the map's are not)")

    @field_validator("input")
    @classmethod
    def _inputs(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("input is empty")
        if isinstance(value, list) and len(value) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"at most {MAX_EMBEDDING_INPUTS} inputs per request")
        return value

    def inputs(self) -> list[str | list[int]]:
        """Each input: a text or a list of token ids."""
        value = self.input
        if isinstance(value, str) or (value and isinstance(value[0], int)):
            return [value]
        return list(value)


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


FINISH = {"stop": "stop", "length": "length", "context": "length"}


class ResponseIds:
    """id, created and model shared by a response and all its stream chunks."""

    def __init__(self, prefix: str, model: str):
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model

    def head(self, object_: str) -> dict[str, Any]:
        return {"id": self.id, "object": object_, "created": self.created, "model": self.model}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
