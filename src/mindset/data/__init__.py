"""Text shipped with mindset: the `austen` corpus (see data/corpus/austen/SOURCE.md)."""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

from mindset.errors import MindsetError

CORPORA = ("austen",)
SPLITS = ("train", "valid")


@lru_cache(maxsize=4)
def corpus_text(split: str = "valid", corpus: str = "austen") -> str:
    """The whole text of one split of a shipped corpus, paragraphs separated by blank lines."""
    if corpus not in CORPORA:
        raise MindsetError(f"unknown corpus {corpus!r}; shipped corpora: {', '.join(CORPORA)}")
    if split not in SPLITS:
        raise MindsetError(f"unknown split {split!r} of corpus {corpus!r}; splits: {', '.join(SPLITS)}")
    blob = resources.files("mindset.data").joinpath(f"corpus/{corpus}/{split}.txt.gz").read_bytes()
    return gzip.decompress(blob).decode("utf-8")
