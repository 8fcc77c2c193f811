"""Recipe step `generate`: answers to a list of prompts."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from mindset.chat.generation import generate
from mindset.chat.sampling import SamplingParams
from mindset.runcontext import RunContext


def _not_blank(prompt: str) -> str:
    if not prompt.strip():
        raise ValueError("the prompt is empty")
    return prompt


class GenerateParams(SamplingParams):
    prompts: list[Annotated[str, AfterValidator(_not_blank)]] = Field(min_length=1, description="the prompts to answer, one generation each")
    chat: bool = Field(True, description="wrap each prompt in the chat template as a user turn")
    system: str | None = Field(None, description="system message for chat prompts")


def generate_step(ctx: RunContext, params: GenerateParams) -> dict:
    loaded = ctx.loaded
    sampling = SamplingParams(**params.model_dump(include=set(SamplingParams.model_fields)))
    answers = []
    lines = []
    for prompt in params.prompts:
        ctx.console.print(f"[bold]> {prompt}[/]")
        result = generate(
            loaded, prompt, sampling, chat=params.chat, system=params.system, on_text=lambda s: ctx.console.print(s, end="", markup=False, highlight=False)
        )
        ctx.console.print()
        answers.append(
            {
                "prompt": prompt,
                "completion": result.text,
                "new_tokens": len(result.tokens),
                "finish_reason": result.finish_reason,
                "tokens_per_second": round(result.tokens_per_second, 2),
            }
        )
        quoted = "\n".join(f"> {line}" if line else ">" for line in result.text.strip().splitlines()) or "> (empty)"
        lines.append(f"**{prompt}**\n\n{quoted}\n\n<sub>{len(result.tokens)} tokens, {result.finish_reason}, {result.tokens_per_second:.1f} tokens/s</sub>\n")
    mode = "greedy" if sampling.greedy else f"temperature {sampling.temperature}, top-p {sampling.top_p}, seed {sampling.seed}"
    ctx.add_section(f"Generations ({mode})", "\n".join(lines))
    return {"answers": answers}
