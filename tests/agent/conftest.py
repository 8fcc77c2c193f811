"""Fixtures of the agent tests: a fake embedder that makes recall exact, a subprocess runner with this worktree's code."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


class WordEmbedder:
    """Bag of words hashed into 256 dimensions: texts sharing words have a positive cosine, others 0 (nearly)."""

    name = "test words"

    def __call__(self, texts):
        out = np.zeros((len(texts), 256), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace("?", " ").replace(".", " ").split():
                out[row, zlib.crc32(word.encode()) % 256] += 1.0
            out[row, 255] += 1e-3  # never the zero vector
        return out


def run_python(code: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def roomy_llama(tiny_llama):
    """tiny-llama with a 2048-token context (RoPE has no position table to outgrow): room for reflection's prompts,
    which do not fit its 256 byte-tokens."""
    tiny_llama.model.config.max_position_embeddings = 2048
    return tiny_llama


@pytest.fixture
def words():
    return WordEmbedder()


@pytest.fixture(name="run_python")
def _run_python():
    return run_python


@pytest.fixture(name="src_path")
def _src_path():
    return SRC
