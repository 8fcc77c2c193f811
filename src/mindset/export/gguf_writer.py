"""Write a Llama-architecture model as GGUF, the way llama.cpp's converter lays it out.

Tensor names and metadata keys follow llama.cpp; the BPE tokenizer (vocabulary, merges, special
tokens, chat template) goes into the file, so the GGUF alone is a complete model. Q and K projections
are stored with llama.cpp's rotary row order (HF keeps the two rotary halves apart, llama.cpp
interleaves them); transformers undoes this when it reads a GGUF, so a round trip is exact in f32.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mindset.errors import MindsetError
from mindset.export.fold import folded
from mindset.export.gguf_layout import Layout, gguf_layout

Precision = Literal["f32", "f16", "q8_0"]

LAYER_TENSORS = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
GLOBAL_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
LAYER_NAME = re.compile(r"^model\.layers\.(\d+)\.(.+)\.weight$")


def gguf_tensor_name(hf_name: str) -> str | None:
    if hf_name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[hf_name]
    match = LAYER_NAME.match(hf_name)
    if match and match.group(2) in LAYER_TENSORS:
        return f"blk.{match.group(1)}.{LAYER_TENSORS[match.group(2)]}.weight"
    return None


def rotary_permute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """HF rotary layout -> llama.cpp's: within each head, row pairs (i, i + d/2) become neighbours."""
    rows = weight.shape[0]
    return weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def exportable(model):
    """The model GGUF's llama layout will hold: `model` itself, or a copy with its custom modules folded;
    what it cannot express is a MindsetError naming the reason."""
    config = model.config
    if config.model_type != "llama":
        raise MindsetError(f"GGUF export supports Llama-architecture models; this one is {config.model_type!r}")
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(config, flag, False):
            raise MindsetError(f"GGUF export does not handle {flag}=True yet")
    model = folded(model)
    for path, module in model.named_modules():
        origin = type(module).__module__
        if not (origin.startswith("transformers.") or origin.startswith("torch.nn")):
            hint = " (convert it back first with mindset.surgery.memory_to_ffn)" if "memory" in type(module).__name__.lower() else ""
            raise MindsetError(f"GGUF cannot express the module {path or 'model'} ({type(module).__name__}) that surgery added{hint}")
    for name in model.state_dict():
        if gguf_tensor_name(name) is None:
            raise MindsetError(f"GGUF export does not know where the tensor {name} goes")
    return model


def check_exportable(model) -> None:
    """Refuse what GGUF's llama layout cannot express, naming the reason (folding custom modules on a copy)."""
    exportable(model)


def tokenizer_fields(tokenizer) -> dict:
    """Vocabulary, token types, merges and special ids of a byte-level BPE tokenizer, for GGUF."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise MindsetError(f"GGUF export handles byte-level BPE tokenizers; this one is {model.get('type')}")
    vocab = dict(model["vocab"])
    added = {t["content"]: t for t in spec.get("added_tokens", [])}
    for token in added.values():
        vocab.setdefault(token["content"], token["id"])
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    for token, index in vocab.items():
        tokens[index] = token
    # llama.cpp token types: 1 normal, 3 control (special), 4 user-defined (added, not special)
    types = [(3 if added[t]["special"] else 4) if t in added else 1 for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": types, "merges": merges}


def write_gguf(loaded, out: str | Path, precision: Precision = "f32", pre_tokenizer: str = "gpt2") -> Path:
    """Write `loaded` to `out` (atomically); returns the path. Custom modules are folded on a copy first
    (mindset.export.fold); layers of different shapes are written as llama.cpp's `deci` architecture."""
    import gguf

    if precision not in ("f32", "f16", "q8_0"):
        raise MindsetError(f"unknown GGUF precision {precision!r}; use f32, f16 or q8_0")
    model = exportable(loaded.model)
    layout = gguf_layout(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[precision]
    writer = gguf.GGUFWriter(str(tmp), arch=layout.arch)
    try:
        writer.add_name(loaded.name)
        _write_hparams(writer, model.config, layout)
        writer.add_file_type(file_type)
        _write_tokenizer(writer, loaded.tokenizer, pre_tokenizer)
        _write_tensors(writer, model, layout, precision)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _write_hparams(writer, config, layout: Layout) -> None:
    """Sizes, rope and norm; head counts and FFN lengths per layer where layers differ. Key and value
    lengths are always written: llama.cpp otherwise derives them as embedding length / layer 0's heads."""
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(len(layout.n_heads))
    writer.add_feed_forward_length(layout.value(layout.d_ff))
    writer.add_head_count(layout.value(layout.n_heads))
    writer.add_head_count_kv(layout.value(layout.n_kv_heads))
    writer.add_key_length(layout.head_dim)
    writer.add_value_length(layout.head_dim)
    writer.add_rope_dimension_count(layout.head_dim)
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)


def _write_tensors(writer, model, layout: Layout, precision: Precision) -> None:
    """Every tensor under llama.cpp's name; Q and K rows in llama.cpp's rotary order, with each layer's own
    head counts. The output matrix is left out when it is the embedding (llama.cpp then reuses token_embd)."""
    state = model.state_dict()
    tied = _tied(model, state)
    for name, tensor in state.items():
        if name == "lm_head.weight" and tied:
            continue
        array = tensor.detach().to("cpu", torch.float32).numpy()
        match = LAYER_NAME.match(name)
        if match and match.group(2) == "self_attn.q_proj":
            array = rotary_permute(array, layout.n_heads[int(match.group(1))])
        elif match and match.group(2) == "self_attn.k_proj":
            array = rotary_permute(array, layout.n_kv_heads[int(match.group(1))])
        _add_tensor(writer, gguf_tensor_name(name), array, precision)


def _tied(model, state) -> bool:
    """Tied when the config says so and the head still equals the embedding (a folded embedding shim may
    have changed one of them)."""
    if not getattr(model.config, "tie_word_embeddings", False) or "lm_head.weight" not in state:
        return bool(getattr(model.config, "tie_word_embeddings", False))
    return torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"])


def _rope_theta(config) -> float:
    rope = getattr(config, "rope_parameters", None) or {}
    return rope.get("rope_theta") or getattr(config, "rope_theta", 10000.0)


def _add_tensor(writer, name: str, array: np.ndarray, precision: Precision) -> None:
    import gguf

    # as llama.cpp does: norms and other vectors stay f32; matrices take the requested precision
    if array.ndim == 1 or precision == "f32":
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    elif precision == "f16":
        writer.add_tensor(name, array.astype(np.float16))
    elif array.shape[-1] % 32:  # Q8_0 works in blocks of 32 along a row
        writer.add_tensor(name, array.astype(np.float16))
    else:
        kind = gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(name, gguf.quants.quantize(array, kind), raw_dtype=kind)  # shape read from the bytes


def _write_tokenizer(writer, tokenizer, pre_tokenizer: str) -> None:
    fields = tokenizer_fields(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer)
    writer.add_token_list(fields["tokens"])
    writer.add_token_types(fields["types"])
    if fields["merges"]:
        writer.add_token_merges(fields["merges"])
    else:  # a vocabulary of single bytes has no merges; readers then derive them from scores (none here)
        writer.add_token_scores([0.0] * len(fields["tokens"]))
    for name, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id), ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
        token_id = getattr(tokenizer, f"{name}_token_id", None)
        if token_id is not None:
            add(token_id)
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
