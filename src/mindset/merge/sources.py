"""Input models: where a config's model name points, what tensors it has, and how its layers are laid out.

Only headers are read here (safetensors headers, config.json); no weight is touched. The layout comes
from the architecture itself: transformers builds the model on the meta device from its config, the
decoder layers that `mindset.models.anatomy` finds name the layer prefix, module order says which other
tensors come before the layers (embeddings) and after them (final norm, head), embedding modules and
the output embeddings carry a vocabulary axis, and parameters shared between names are tied.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

from mindset.errors import MindsetError
from mindset.models.anatomy import layers_path, n_layers
from mindset.models.files import check_safetensors, weight_files
from mindset.models.loading import EMBEDDED

SAFETENSORS_TO_TORCH = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    file: Path
    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass(frozen=True)
class Layout:
    """How an architecture names its tensors."""

    layers_prefix: str  # e.g. "model.layers": layer i's tensors are "model.layers.{i}.<suffix>"
    num_layers: int
    order: dict[str, int]  # every tensor name the architecture has → its position in module order
    vocab_axes: dict[str, int]  # tensors indexed by token id → which axis
    tied: dict[str, str]  # alias → the tensor it shares storage with (lm_head.weight → embed_tokens)
    layer_suffixes: tuple[str, ...]  # the tensor names inside one layer, in order
    tie_word_embeddings: bool  # as the config resolves it (class defaults included)
    num_layers_key: str  # the config.json key that holds the layer count (n_layer for GPT-2)

    def layer_of(self, name: str) -> tuple[int, str] | None:
        match = re.match(rf"^{re.escape(self.layers_prefix)}\.(\d+)\.(.+)$", name)
        return (int(match.group(1)), match.group(2)) if match else None

    def layer_name(self, index: int, suffix: str) -> str:
        return f"{self.layers_prefix}.{index}.{suffix}"

    def is_before_layers(self, name: str) -> bool:
        first_layer = self.order.get(self.layer_name(0, self.layer_suffixes[0]), 0)
        return self.order.get(name, first_layer + 1) < first_layer


@dataclass
class SourceModel:
    ref: str  # the name as the config writes it
    folder: Path
    config: dict  # config.json
    tensors: dict[str, TensorInfo]
    layout: Layout

    @property
    def num_layers(self) -> int:
        return self.layout.num_layers

    @property
    def tied(self) -> bool:
        return self.layout.tie_word_embeddings

    def find(self, name: str) -> str | None:
        """The stored tensor that provides `name` (its tied partner when the model ties it)."""
        if name in self.tensors:
            return name
        partner = self.layout.tied.get(name) or next((a for a, b in self.layout.tied.items() if b == name), None)
        return partner if partner in self.tensors else None


def resolve_folder(ref: str, search: list[Path]) -> Path:
    """A model name as written in a config → a local HF folder. Nothing is downloaded."""
    if ref in EMBEDDED:
        from mindset.models.gguf_cache import gguf_to_folder
        from mindset.models.loading import locate_embedded

        return gguf_to_folder(locate_embedded(ref))
    path = Path(ref).expanduser()
    candidates = [path] if path.is_absolute() else [base / path for base in search]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
        if candidate.is_file():
            raise MindsetError(f"model {ref!r} is a file ({candidate}); give the model's folder (config.json, safetensors, tokenizer)")
    cached = _hub_cache_folder(ref)
    if cached is not None:
        return cached
    where = ", ".join(str(c.parent) if c.parent != Path(".") else "." for c in candidates)
    raise MindsetError(
        f"model {ref!r}: no such model folder (looked in {where}); mindset never downloads, so point 'model:' at a local HF folder"
    )


def _hub_cache_folder(ref: str) -> Path | None:
    """A hub name ('org/model') already in the local Hugging Face cache: a folder, found offline."""
    if ref.count("/") != 1 or ref.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref, local_files_only=True))
    except Exception:  # not cached (or not a valid repo id): the caller reports the missing folder
        return None


def read_source(ref: str, folder: Path) -> SourceModel:
    config_path = folder / "config.json"
    if not config_path.exists():
        raise MindsetError(f"model {ref!r} ({folder}) is not a model folder: it has no config.json")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as err:
        raise MindsetError(f"{config_path} is not valid JSON ({err})") from None
    tensors: dict[str, TensorInfo] = {}
    from safetensors import safe_open

    for file in weight_files(folder):  # refuses pickle-only folders
        check_safetensors(file)
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                piece = f.get_slice(name)
                dtype = SAFETENSORS_TO_TORCH.get(piece.get_dtype())
                if dtype is None:
                    raise MindsetError(f"{file}: tensor {name} has dtype {piece.get_dtype()}, which mindset cannot merge")
                tensors[name] = TensorInfo(file, tuple(piece.get_shape()), dtype)
    return SourceModel(ref, folder, config, tensors, architecture_layout(config_path.read_text(), str(config_path)))


@lru_cache(maxsize=16)
def architecture_layout(config_json: str, where: str = "config.json") -> Layout:
    """The layout of the architecture a config.json describes.

    Kept in memory (frankenmerges repeat models) and on disk under $MINDSET_HOME/merge-layouts, keyed by
    the config's text and the transformers version: building it imports transformers' modeling code,
    seconds that a merge otherwise never needs.
    """
    from importlib.metadata import version

    from mindset.fileio import atomic_write_json
    from mindset.models.gguf_cache import mindset_home

    key = hashlib.sha256(f"{config_json}|transformers {version('transformers')}|layout v1".encode()).hexdigest()[:20]
    cached = mindset_home() / "merge-layouts" / f"{key}.json"
    if cached.exists():
        try:
            data = json.loads(cached.read_text())
            return Layout(**{**data, "order": {name: i for i, name in enumerate(data["order"])}, "layer_suffixes": tuple(data["layer_suffixes"])})
        except (ValueError, TypeError, KeyError):
            pass  # a damaged cache entry is rebuilt
    layout = _build_layout(config_json, where)
    atomic_write_json(cached, {**asdict(layout), "order": list(layout.order)})
    return layout


def _build_layout(config_json: str, where: str) -> Layout:
    import tempfile

    from torch import nn
    from transformers import AutoConfig, AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(config_json)
        try:
            config = AutoConfig.from_pretrained(tmp, local_files_only=True)
        except (OSError, ValueError, KeyError) as err:
            raise MindsetError(f"transformers cannot read {where}: {str(err).splitlines()[0]}") from None
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError) as err:
        raise MindsetError(f"transformers has no causal-LM class for model_type {config.model_type!r}: {str(err).splitlines()[0]}") from None
    num_layers = n_layers(model)
    prefix = layers_path(model)  # the meta model has the real module tree: anatomy finds the layers in it
    order = {name: i for i, name in enumerate(model.state_dict(keep_vars=True))}
    vocab = config.get_text_config().vocab_size
    vocab_axes: dict[str, int] = {}
    output = model.get_output_embeddings()
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and module.num_embeddings == vocab or (output is not None and module is output):
            for param_name, _ in module.named_parameters(prefix=name, recurse=False):
                vocab_axes[param_name] = 0
    first_owner: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first_owner:
            tied[name] = first_owner[id(param)]
        else:
            first_owner[id(param)] = name
    suffixes = tuple(name[len(prefix) + 3 :] for name in order if name.startswith(f"{prefix}.0."))
    layers_key = getattr(config, "attribute_map", {}).get("num_hidden_layers", "num_hidden_layers")
    tie = bool(getattr(config.get_text_config(), "tie_word_embeddings", False) or getattr(config, "tie_word_embeddings", False))
    return Layout(prefix, num_layers, order, vocab_axes, tied, suffixes, tie, layers_key)
