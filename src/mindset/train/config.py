"""Every knob of a distillation run, validated; the defaults are the documented recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class DistillConfig(BaseModel):
    """loss = alpha * KL(teacher || student at temperature T) * T^2 + beta * CE(data) + gamma * (1 - cos(hidden))

    The DistilGPT2/DistilBERT recipe: soft targets from the teacher carry most of the signal, the data's
    own next tokens keep the student honest, and a cosine term can align chosen hidden states.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field("distill", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="run folder: runs/<name>")
    steps: int = Field(100, ge=1, description="optimizer steps")
    batch_size: int = Field(4, ge=1, description="blocks per micro-batch")
    seq_len: int = Field(128, ge=8, description="tokens per block")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up steps before the cosine decay")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decay ends at lr * this")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the gradient norm to this (null: no clipping)")
    alpha: float = Field(0.5, ge=0, description="weight of the KL term")
    beta: float = Field(0.5, ge=0, description="weight of the cross-entropy on the data")
    gamma: float = Field(0.0, ge=0, description="weight of the hidden-state cosine term")
    temperature: float = Field(2.0, gt=0, description="softmax temperature T of the KL term (its loss is scaled by T²)")
    cosine_layers: list[int] = Field([-1], description="hidden states compared by the cosine term (-1: last)")
    trainable: list[str] = Field(["*"], min_length=1, description="what to train: component names (L3.mlp, L0.attn, L2, embed, head) or globs of parameter names (model.layers.*.mlp.*); the rest freeze")
    lr_multipliers: dict[str, float] | str = Field({}, description="learning-rate multipliers by parameter-name glob, first match wins: '*gate_logits=200' (head gates move from c=0 in few steps) or a mapping in a recipe; those parameters get no weight decay")
    data: str = Field("austen", description="'austen' (the shipped corpus), a .txt file or a .jsonl file with a 'text' field")
    max_train_tokens: int | None = Field(None, ge=16, description="use only the first N tokens of the data")
    valid_every: int = Field(0, ge=0, description="valid perplexity every N steps (0: never)")
    valid_tokens: int = Field(4096, ge=16, description="tokens of the valid split used for it")
    checkpoint_every: int = Field(50, ge=1, description="checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="latest checkpoints kept on disk")
    max_bad_steps: int = Field(5, ge=1, description="stop after this many non-finite losses in a row")
    seed: int = Field(0, description="seed of the batch order and of Lightning's random state")
    precision: Literal["auto", "32", "bf16-mixed"] = Field("auto", description="auto: bf16-mixed on a GPU, 32 on CPU")
    compile: bool = Field(False, description="torch.compile the student")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")

    @field_validator("lr_multipliers", mode="before")
    @classmethod
    def _read_multipliers(cls, value):
        """The CLI's 'glob=factor,glob=factor' or a mapping."""
        if isinstance(value, str) and value.strip().startswith("{"):
            import json

            try:
                return json.loads(value)  # the CLI shows (and may pass back) the default as {}
            except ValueError:
                raise ValueError(f"cannot read lr_multipliers {value!r}; write glob=factor,glob=factor, e.g. '*gate_logits=200'") from None
        if isinstance(value, str):
            pairs = [part.rpartition("=") for part in value.split(",") if part.strip()]
            if any(not sep or not glob.strip() for glob, sep, _ in pairs):
                raise ValueError(f"cannot read lr_multipliers {value!r}; write glob=factor,glob=factor, e.g. '*gate_logits=200'")
            value = {glob.strip(): factor.strip() for glob, _, factor in pairs}
        return value

    @field_validator("lr_multipliers")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {glob: factor for glob, factor in value.items() if not factor > 0}
        if bad:
            raise ValueError(f"lr_multipliers must be positive factors, not {bad}")
        return value

    @model_validator(mode="after")
    def _check(self) -> DistillConfig:
        if self.alpha == self.beta == self.gamma == 0:
            raise ValueError("alpha, beta and gamma are all 0: nothing to learn from")
        return self
