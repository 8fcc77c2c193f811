"""Checks on weight files before anything reads them: safetensors and GGUF only, never pickle."""

from __future__ import annotations

import json
from pathlib import Path

from mindset.errors import MindsetError

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise MindsetError(
            f"{path} is a pickle file ({path.suffix}); mindset never unpickles weights, since a pickle can run "
            "arbitrary code. Convert it to safetensors in a trusted environment first."
        )


def check_safetensors(path: Path) -> None:
    """Open the header and check that it covers the file: catches truncated and corrupt files."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except SafetensorError as err:
        raise MindsetError(f"{path} is not a valid safetensors file ({err}); it may be truncated or corrupt") from None


def check_gguf(path: Path) -> None:
    """Parse the GGUF header and tensor table; a truncated or foreign file fails here, not deep in transformers."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as err:  # the reader raises ValueError, KeyError, struct and numpy errors alike
        raise MindsetError(f"{path} is not a valid GGUF file ({err}); it may be truncated or corrupt") from None
    if not reader.tensors:
        raise MindsetError(f"{path} is a GGUF file without tensors")


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of an HF model folder; refuses folders that only hold pickles."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError) as err:
            raise MindsetError(f"{index} is not a valid safetensors index ({err})") from None
        files = [folder / s for s in shards]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise MindsetError(f"{folder} is missing weight shards listed in its index: {', '.join(missing)}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise MindsetError(
            f"{folder} holds only pickle weights ({', '.join(pickles)}); mindset never unpickles weights. "
            "Convert them to safetensors in a trusted environment first."
        )
    raise MindsetError(f"{folder} has no weights (no *.safetensors files)")
