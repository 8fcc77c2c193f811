"""Log-probabilities: computed on the engine's thread, written in OpenAI's two schemas.

The numbers are `log_softmax(logits.float())` of the model's own distribution, as mindset.evaluate scores
log-likelihoods: before temperature, top_p or top_k (as OpenAI's API and vLLM's default report them), so
a sampled answer's log-probabilities say how likely the model found it, whatever the sampling settings.

Token text: each token's bytes (byte-level BPE undone, `<0xNN>` byte pieces read, `▁` as a space); the
`token` string is those bytes as UTF-8, or `bytes:\\xNN...` when a token holds part of a character, as
OpenAI writes such tokens. Log-probabilities of -inf are written as -9999.0 (JSON has no infinity).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import torch

FLOOR = -9999.0  # what -inf (and NaN) become in JSON
PROMPT_CHUNK = 512  # prompt positions whose logits are held at once when scoring a prompt (echo)
BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclass
class TokenLogprob:
    id: int
    logprob: float | None  # None: the prompt's first token, which nothing predicts
    top: list[tuple[int, float]] = field(default_factory=list)  # the most likely tokens at this position, best first


def _finite(value: float) -> float:
    return value if value > FLOOR else FLOOR  # -inf and NaN compare False


def pick(row_logprobs: torch.Tensor, token: int, top_n: int) -> TokenLogprob:
    """The entry for `token` from one position's log-probabilities (V,)."""
    top: list[tuple[int, float]] = []
    if top_n:
        values, ids = torch.topk(row_logprobs, min(top_n, row_logprobs.numel()))
        top = [(int(i), _finite(float(v))) for i, v in zip(ids, values)]
    return TokenLogprob(token, _finite(float(row_logprobs[token])), top)


def step_logprob(logits: torch.Tensor, token: int, top_n: int) -> TokenLogprob:
    """The entry for a generated token from the logits (V,) it was chosen from."""
    return pick(torch.log_softmax(logits.float(), dim=-1), token, top_n)


@torch.inference_mode()
def prompt_logprobs(model, ids: Sequence[int], top_n: int, chunk: int = PROMPT_CHUNK) -> list[TokenLogprob]:
    """Every prompt token's log-probability given the tokens before it (the first has None).

    The prompt runs in chunks over one KV cache, so at most `chunk` positions of logits are held at once
    (a long prompt's full logits would be positions x vocabulary floats).
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    entries = [TokenLogprob(int(ids[0]), None)]
    cache = DynamicCache(config=model.config)
    readers = list(ids[:-1])  # the last token predicts nothing in the prompt
    for start in range(0, len(readers), chunk):
        part = readers[start : start + chunk]
        logits = model(input_ids=torch.tensor([part], device=device), past_key_values=cache, use_cache=True).logits[0]
        targets = ids[start + 1 : start + 1 + len(part)]  # row j predicts token start + j + 1
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        entries += [pick(row, int(t), top_n) for row, t in zip(logprobs, targets)]
    return entries


def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: the printable character that stands for each byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


BYTE_LEVEL = _bytes_to_unicode()


class TokenText:
    """Token ids to (token string, UTF-8 bytes), cached: the same ids come back in every top-k list."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.byte_level = type(getattr(backend, "decoder", None)).__name__ == "ByteLevel"
        self.special = set(tokenizer.all_special_ids)
        self.piece = lru_cache(maxsize=65536)(self._piece)

    def _piece(self, token: int) -> tuple[str, bytes]:
        raw = self._bytes(token)
        try:
            return raw.decode("utf-8"), raw
        except UnicodeDecodeError:
            return "bytes:" + "".join(f"\\x{b:02x}" for b in raw), raw

    def _bytes(self, token: int) -> bytes:
        piece = self.tokenizer.convert_ids_to_tokens(token)
        if piece is None:
            return b""
        if token in self.special:
            return piece.encode()
        if self.byte_level and all(c in BYTE_LEVEL for c in piece):
            return bytes(BYTE_LEVEL[c] for c in piece)
        if match := BYTE_PIECE.fullmatch(piece):
            return bytes([int(match.group(1), 16)])
        if "▁" in piece:  # sentencepiece's word boundary
            return piece.replace("▁", " ").encode()
        return self.tokenizer.decode([token]).encode()


def chat_content(text: TokenText, entries: Iterable[TokenLogprob]) -> list[dict]:
    """Chat completions' `logprobs.content`: token, logprob, bytes and top_logprobs per token."""

    def one(token: int, logprob: float) -> dict:
        string, raw = text.piece(token)
        return {"token": string, "logprob": logprob, "bytes": list(raw)}

    return [{**one(e.id, e.logprob), "top_logprobs": [one(i, lp) for i, lp in e.top]} for e in entries]


class LegacyLogprobs:
    """Completions' legacy `logprobs` (tokens, token_logprobs, top_logprobs, text_offset), chunk by chunk.

    text_offset counts characters into the returned text (prompt included when echoed; else the count starts
    after the prompt, as OpenAI's does); a token holding part of a character starts where that character will.
    top_logprobs holds the k best tokens plus the chosen one (up to k+1 entries, OpenAI's rule); None for
    the prompt's first token.
    """

    def __init__(self, text: TokenText, start_offset: int = 0):
        self.text = text
        self.offset = start_offset
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, entries: Iterable[TokenLogprob]) -> dict:
        out: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for e in entries:
            string, raw = self.text.piece(e.id)
            out["tokens"].append(string)
            out["token_logprobs"].append(e.logprob)
            if e.logprob is None:
                out["top_logprobs"].append(None)
            else:
                top = {self.text.piece(i)[0]: lp for i, lp in e.top}
                top.setdefault(string, e.logprob)
                out["top_logprobs"].append(top)
            out["text_offset"].append(self.offset)
            self.offset += len(self.decoder.decode(raw))
        return out
