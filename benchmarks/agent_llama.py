"""agent_recall.py --answers-backend llama-server: llama.cpp's llama-server serving mindset's own q8_0 GGUF export
of the answering model, so the answer benchmark's backend column runs through Agent's --backend path for real.

It is the same model (SmolLM2-135M here) through another server and a q8_0 quantisation, not a larger model:
none is reachable on this machine. The server is not built here (benchmarks/llamacpp.py builds it in ~30 min);
when its binary is missing, `llama_backend` returns None and the caller skips the column, saying so.
The server applies the GGUF's own chat template (jinja, from the export) to the agent's messages.
--no-repack: on this machine's Xeon the repacked q8_0 weights run AMX kernels (tinygemm_kernel_amx) that
trap with an invalid opcode (the kernel does not grant AMX here); without repacking the plain q8_0 kernels run.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

PRECISION = "q8_0"


def server_binary() -> Path | None:
    from llamacpp import binaries

    path = binaries()["llama-server"]
    return path if path.exists() else None


@contextmanager
def llama_backend(spec: str, threads: int = 2, context: int = 2048):
    """Yields (url, label) of llama-server on SPEC's q8_0 GGUF, or (None, why) when llama-server is not built."""
    binary = server_binary()
    if binary is None:
        yield None, "llama-server is not built (python benchmarks/llamacpp.py builds it); the backend column is skipped"
        return
    from serve_throughput import running_llama_server

    from mindset.export import export_gguf
    from mindset.models import load

    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(export_gguf(load(spec, device="cpu", dtype="float32"), Path(tmp) / f"model-{PRECISION}.gguf", PRECISION, modelfile=False)["gguf"])
        options = ["-np", "1", "-c", str(context), "--no-warmup", "--jinja", "--no-repack"]
        with running_llama_server(binary, gguf, threads, options) as url:
            yield url + "/v1", f"{spec} through llama-server ({PRECISION} GGUF export)"
