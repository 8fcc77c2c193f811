"""Turning a growing list of token ids into text deltas, without ever printing half a character."""

from __future__ import annotations


class IncrementalDecoder:
    """Decode tokens one at a time.

    A token can end inside a multi-byte character (decoded as U+FFFD) and a token's text can depend on
    the one before it (leading spaces), so each step decodes a short window that starts a little before
    the new tokens and emits only what is new and complete.
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.prefix_offset = 0  # start of the window that gives context to the new tokens
        self.read_offset = 0  # tokens before this are already emitted

    def _pending(self) -> str:
        """Text of the tokens not yet emitted, decoded with the window's context."""
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=self.skip_special_tokens)
        now = decode(self.ids[self.prefix_offset :], skip_special_tokens=self.skip_special_tokens)
        return now[len(before) :] if len(now) > len(before) else ""

    def push(self, token: int) -> str:
        self.ids.append(token)
        new = self._pending()
        if new and not new.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return new
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end decodes as U+FFFD)."""
        new = self._pending()
        self.prefix_offset = self.read_offset = len(self.ids)
        return new
