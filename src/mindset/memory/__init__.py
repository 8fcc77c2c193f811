"""Memory: stores of (key, value) entries and the layers that read them.

Stores (one protocol, mindset.memory.store): the exact torch store (default, on the model's device) and
a faiss store (flat / IVF / HNSW by factory string); both save to a folder (safetensors + SQLite) and
evict by LRFU or FIFO when full. Layers: featural memory (an FFN block as top-k over its own slots),
associative memory (an FFN block plus a gated store read), and the kNN-LM head.
"""

from mindset.memory.associative import AssociativeMemory
from mindset.memory.featural import FeaturalMemory
from mindset.memory.knn_lm import KnnLMHead, add_text, memorize
from mindset.memory.retrieval import TopKRetrieval, retrieve
from mindset.memory.store import Hits, Store, make_store, open_store
from mindset.memory.torch_store import TorchStore

__all__ = [
    "AssociativeMemory", "FeaturalMemory", "Hits", "KnnLMHead", "Store", "TopKRetrieval", "TorchStore",
    "add_text", "make_store", "memorize", "open_store", "retrieve",
]
