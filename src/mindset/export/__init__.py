"""Export: GGUF files for llama.cpp and Ollama, with a Modelfile beside them."""

from __future__ import annotations

from pathlib import Path

from mindset.export.gguf_writer import Precision, check_exportable, write_gguf
from mindset.export.modelfile import write_modelfile
from mindset.fileio import check_output


def source_pre_tokenizer(loaded) -> str:
    """llama.cpp picks its pre-tokenizer split by name: keep the source GGUF's, else GPT-2's."""
    if loaded.source.kind in ("embedded", "gguf") and loaded.source.path:
        import gguf

        field = gguf.GGUFReader(str(loaded.source.path)).fields.get("tokenizer.ggml.pre")
        if field is not None:
            return str(field.contents())
    return "gpt2"


def export_gguf(loaded, out: str | Path, precision: Precision = "f32", modelfile: bool = True, *, overwrite: bool = False) -> dict:
    """Write OUT.gguf (and a Modelfile beside it); returns what was written. An existing OUT needs `overwrite`."""
    check_output(out, overwrite)
    path = write_gguf(loaded, out, precision, pre_tokenizer=source_pre_tokenizer(loaded))
    written = {"gguf": str(path), "bytes": path.stat().st_size, "precision": precision}
    if modelfile:
        written["modelfile"] = str(write_modelfile(path, loaded.tokenizer.chat_template))
    return written


__all__ = ["Precision", "check_exportable", "export_gguf", "write_gguf", "write_modelfile"]
