"""What an edit did to the function: KL(original ‖ current) on probe prompts, the next-token top-k of both
models for a prompt, and perplexity on a slice of the shipped valid text.

KL is per token position, in nats, averaged over the positions of each probe:
    KL(p_o ‖ p_c) = Σ_v p_o(v) (log p_o(v) − log p_c(v)),    p = softmax(logits) in float64
so an edit that keeps the function gives 0 (up to float rounding, ~1e-7 in float32) and anything that
changes it gives a positive number. The original never changes, so its log-probabilities are cached.
"""

from __future__ import annotations

from typing import Any

import torch

from mindset.errors import MindsetError

PROBES = (
    "The capital of France is",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune",
)
PROMPT = "The capital of France is"


class Measurer:
    """Measurements of a current model against the fixed original, with the original's results cached."""

    def __init__(self, original):
        self.original = original
        self._cache: dict[Any, Any] = {}

    def _original(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def quick(self, current, probes: list[str] | tuple[str, ...] = PROBES, prompt: str = PROMPT, k: int = 5) -> dict[str, Any]:
        """KL on the probes and both models' top-k next tokens after `prompt`: the measurement after each edit."""
        per_prompt = []
        for text in probes:
            lp_o = self._original(("logp", text), lambda t=text: log_probs(self.original, t))
            per_prompt.append({"prompt": text, "kl": kl(lp_o, log_probs(current, text))})
        lp_o = self._original(("logp", prompt), lambda: log_probs(self.original, prompt))
        lp_c = log_probs(current, prompt)
        return {
            "kl": {"mean": sum(p["kl"] for p in per_prompt) / max(len(per_prompt), 1), "per_prompt": per_prompt},
            "next_token": {"prompt": prompt, "original": top_k(lp_o[-1], self.original.tokenizer, k), "current": top_k(lp_c[-1], current.tokenizer, k),
                           "kl_last": kl(lp_o[-1:], lp_c[-1:])},
        }  # fmt: skip

    def perplexity(self, current, max_tokens: int = 512, context: int = 128) -> dict[str, Any]:
        """Perplexity of both models on the first `max_tokens` tokens of the shipped valid text."""
        from mindset.data import corpus_text
        from mindset.evaluate.perplexity import perplexity

        if max_tokens < 2 or context < 2:
            raise MindsetError(f"max_tokens {max_tokens} and context {context}: both need at least 2 tokens")
        text = corpus_text("valid")

        def run(loaded):
            context_len = min(context, loaded.context_length)
            return perplexity(loaded, text, context=context_len, stride=context_len, max_tokens=max_tokens).as_dict()

        original = self._original(("ppl", max_tokens, context), lambda: run(self.original))
        now = run(current)
        return {"original": original, "current": now, "delta": now["perplexity"] - original["perplexity"], "max_tokens": max_tokens, "context": context}


@torch.no_grad()
def log_probs(loaded, text: str) -> torch.Tensor:
    """(T, V) float64 log-probabilities of the next token at each position of `text`."""
    if not text.strip():
        raise MindsetError("a probe prompt is empty; give some text")
    ids = loaded.tokenizer(text, return_tensors="pt", add_special_tokens=True)["input_ids"].to(loaded.device)
    logits = loaded.model(input_ids=ids).logits[0]  # (T, V)
    return torch.log_softmax(logits.double(), dim=-1).cpu()


def kl(lp_o: torch.Tensor, lp_c: torch.Tensor) -> float:
    """Mean over positions of KL(p_o ‖ p_c), both (T, V) log-probabilities."""
    if lp_o.shape != lp_c.shape:
        raise MindsetError(f"the models' outputs differ in shape {tuple(lp_o.shape)} vs {tuple(lp_c.shape)}; KL needs the same vocabulary")
    return max(float((lp_o.exp() * (lp_o - lp_c)).sum(-1).mean()), 0.0)


def top_k(lp: torch.Tensor, tokenizer, k: int) -> list[dict[str, Any]]:
    """The k likeliest next tokens: [{id, token, p}]."""
    values, ids = torch.topk(lp, k)
    return [{"id": int(i), "token": tokenizer.decode([int(i)]), "p": float(v.exp())} for v, i in zip(values, ids)]
