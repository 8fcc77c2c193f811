"""A pretraining variant is a list of mindset's own surgery steps, applied to the random model at initialization.

The vocabulary is the recipe steps': every architecture edit of `mindset.surgery.edit_steps.EDITS`
(head_gates, layerwise_feedback, insert_layers, drop_layers, ...) plus `ffn_to_memory`, each with the same
pydantic parameters as its recipe step, so `surgery: [{ffn_to_memory: {layers: "1,3", k: 32}}]` in a
pretraining config means what it means in a recipe. Parameters are checked when the config is read,
before a weight exists; the edit itself checks them against the model (layer indices, head groups).
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from mindset.models.loading import LoadedModel, ModelSource


def step_table() -> dict[str, type[BaseModel]]:
    """Step name -> its parameters model (imported lazily: reading a config must not build the CLI)."""
    from mindset.surgery.edit_steps import EDITS
    from mindset.surgery.steps import FfnToMemoryParams

    return {"ffn_to_memory": FfnToMemoryParams, **{name: edit.params for name, edit in EDITS.items()}}


def check_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each entry one {step: params} mapping with a known step and valid params; ValueError (one sentence) otherwise."""
    table = step_table()
    out = []
    for index, entry in enumerate(steps):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"surgery[{index}] must be one mapping {{step: {{params}}}}, e.g. {{ffn_to_memory: {{k: 32}}}}")
        (name, params), = entry.items()
        if name not in table:
            hint = difflib.get_close_matches(str(name), table, n=1, cutoff=0.4)
            suggestion = f"did you mean {hint[0]!r}? " if hint else ""
            raise ValueError(f"surgery[{index}]: unknown step {name!r}; {suggestion}steps: {', '.join(table)}")
        try:
            validated = table[name].model_validate(params or {})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"surgery[{index}].{name}{'.' + where if where else ''}: {first['msg']}") from None
        out.append({name: validated.model_dump(exclude_defaults=True, mode="json")})
    return out


def random_llama(config, tokenizer) -> LoadedModel:
    """The config's Llama with random weights drawn from `config.seed` (global RNG left untouched)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    arch = config.model
    hf_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch.hidden,
        intermediate_size=arch.d_ff,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads or arch.heads,
        head_dim=arch.head_dim or arch.hidden // arch.heads,
        max_position_embeddings=config.context,
        tie_word_embeddings=arch.tie_embeddings,
        initializer_range=arch.init_std,
        rope_theta=arch.rope_theta,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(hf_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model, tokenizer, ModelSource(f"pretrain:{config.name}", "pretrain", detail={"seed": config.seed}))


def apply_steps(loaded: LoadedModel, steps: list[dict[str, Any]], seed: int) -> tuple[LoadedModel, list[dict]]:
    """Run the variant's surgery steps in place, in order; returns what each did (edit record, parameter counts).

    Steps are seeded from the run's seed so that random inits (add_heads init=random, ...) are part of the run."""
    from mindset.surgery.edit_steps import apply_edit
    from mindset.surgery.memory import ffn_to_memory

    table = step_table()
    done = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        for entry in steps:
            (name, raw), = entry.items()
            params = table[name].model_validate(raw)
            before = _parameters(loaded.model)
            if name == "ffn_to_memory":
                options = params.model_dump(exclude={"layers", "save"})
                loaded = ffn_to_memory(loaded, params.layers, inplace=True, **options)
                record = {"op": name, **raw}
            else:
                outcome = apply_edit(name, loaded, params)
                loaded, record = outcome.loaded, outcome.edit
            done.append({"step": name, "edit": record, "parameters": [before, _parameters(loaded.model)]})
    return loaded, done


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(config, tokenizer) -> tuple[LoadedModel, list[dict]]:
    """The run's model: the random Llama, then the variant's surgery. Same config, same weights."""
    loaded = random_llama(config, tokenizer)
    return apply_steps(loaded, config.surgery, config.seed)
