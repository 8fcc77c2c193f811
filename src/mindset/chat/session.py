"""A conversation: message history re-encoded through the chat template on every turn."""

from __future__ import annotations

from collections.abc import Callable

from mindset.chat.generation import Generation, Messages, encode_prompt, generate_from_ids
from mindset.chat.sampling import SamplingParams
from mindset.errors import MindsetError


class ChatSession:
    def __init__(self, loaded, params: SamplingParams | None = None, system: str | None = None):
        self.loaded = loaded
        self.params = params or SamplingParams()
        self.system = system
        self.messages: Messages = []
        self.dropped_turns = 0  # oldest turns forgotten to fit the context

    def reset(self) -> None:
        self.messages.clear()

    def reply(self, user_text: str, on_text: Callable[[str], None] | None = None) -> Generation:
        if not user_text.strip():
            raise MindsetError("the message is empty")
        self.messages.append({"role": "user", "content": user_text})
        prompt_ids = self._fit_context()
        result = generate_from_ids(self.loaded, prompt_ids, self.params, on_text=on_text)
        self.messages.append({"role": "assistant", "content": result.text})
        return result

    def _fit_context(self) -> list[int]:
        """Encode the conversation, forgetting the oldest exchanges while it leaves no room to answer."""
        room = min(self.params.max_new_tokens, 64)
        while True:
            ids = encode_prompt(self.loaded.tokenizer, self.messages, system=self.system)
            if len(ids) + room <= self.loaded.context_length or len(self.messages) <= 1:
                return ids
            del self.messages[:2]
            self.dropped_turns += 1
