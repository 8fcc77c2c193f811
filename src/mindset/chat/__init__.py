"""Chat and generation: chat templates, sampling, tokens streamed over the KV cache."""

from mindset.chat.generation import Generation, encode_prompt, generate, generate_from_ids, stream_tokens
from mindset.chat.sampling import SamplingParams
from mindset.chat.session import ChatSession

__all__ = ["ChatSession", "Generation", "SamplingParams", "encode_prompt", "generate", "generate_from_ids", "stream_tokens"]
