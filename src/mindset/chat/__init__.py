"""Chat and generation: chat templates, sampling, tokens streamed over the KV cache."""

from mindset.chat.completion import CompletionText
from mindset.chat.generation import Generation, check_prompt_fits, encode_prompt, generate, generate_from_ids, stop_token_ids, stream_tokens
from mindset.chat.sampling import SamplingParams
from mindset.chat.session import ChatSession

__all__ = ["ChatSession", "CompletionText", "Generation", "check_prompt_fits", "stop_token_ids", "SamplingParams", "encode_prompt", "generate", "generate_from_ids", "stream_tokens"]
