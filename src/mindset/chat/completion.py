"""From generated token ids to the answer's text: stop tokens end it, stop strings cut it, deltas stream."""

from __future__ import annotations

from collections.abc import Iterable

from mindset.chat.streaming import IncrementalDecoder


class CompletionText:
    """Feed tokens with `push` (returns the new text, possibly ''), until `finish_reason` is set or the
    generation runs out; then `close(reason)` returns any text still held back."""

    def __init__(self, tokenizer, stop_ids: Iterable[int], stop_strings: Iterable[str] = ()):
        self.decoder = IncrementalDecoder(tokenizer)
        self.stop_ids = set(stop_ids)
        self.stop_strings = [s for s in stop_strings if s]
        self.tokens: list[int] = []
        self.text = ""
        self.finish_reason: str | None = None  # "stop", or what close() was given

    def push(self, token: int) -> str:
        self.tokens.append(token)
        if token in self.stop_ids:  # the end token itself has no text; what was held back does
            self.finish_reason = "stop"
            return self._flush()
        delta = self.decoder.push(token)
        self.text += delta
        hit = self._first_stop()
        if hit is not None:  # cut the stop string, and anything after it, from the text and the delta
            delta = delta[: max(0, len(delta) - (len(self.text) - hit))]
            self.text = self.text[:hit]
            self.finish_reason = "stop"
        return delta

    def close(self, reason: str) -> str:
        """End without a stop (max tokens, context full, cancelled): flush and record why."""
        if self.finish_reason is not None:
            return ""
        self.finish_reason = reason
        return self._flush()

    def _flush(self) -> str:
        tail = self.decoder.flush()
        self.text += tail
        return tail

    def _first_stop(self) -> int | None:
        hits = [self.text.find(s) for s in self.stop_strings if s in self.text]
        return min(hits) if hits else None
