"""What every command shares: consoles, the --debug state, model loading with a first-load note, option checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from mindset.errors import MindsetError

console = Console()
err_console = Console(stderr=True)
state = {"debug": False}

DEFAULT_MODEL = "smollm2-135m"  # mindset.models.DEFAULT_MODEL, without importing torch for --help
ModelArg = typer.Argument(DEFAULT_MODEL, help="a name (smollm2-135m, tiny-llama, tiny-gpt2), an HF model folder or a .gguf file")
DeviceOpt = typer.Option("auto", help="auto, cpu, cuda or cuda:N")
DtypeOpt = typer.Option("auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16 or float16")


def quiet_transformers() -> None:
    """Warnings and per-load progress bars from transformers are noise on a command line."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_model(spec: str, device: str, dtype: str):
    """mindset.models.load, saying so when a GGUF file is about to be dequantized (the slow first load)."""
    quiet_transformers()
    from mindset.models import load
    from mindset.models.gguf_cache import is_cached
    from mindset.models.loading import EMBEDDED, locate_embedded

    gguf = locate_embedded(spec) if spec in EMBEDDED else (Path(spec) if spec.lower().endswith(".gguf") and Path(spec).is_file() else None)
    if gguf is not None and not is_cached(gguf):
        err_console.print(f"[dim]dequantizing {gguf.name} into a safetensors cache (first load only; later loads read the cache)[/]")
    return load(spec, device=device, dtype=dtype)


def params_from_options(model_class, option_names: dict[str, str], **values: Any):
    """Build a pydantic params object from CLI options; errors name the option, not the field."""
    from pydantic import ValidationError

    try:
        return model_class(**values)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise MindsetError(f"{option_names.get(field, field)}: {first['msg']}") from None
