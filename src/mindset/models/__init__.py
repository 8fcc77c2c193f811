"""Load models (named, HF folders, GGUF, tiny test models), save them, and describe them."""

from mindset.models.loading import DEFAULT_MODEL, EMBEDDED, TINY, LoadedModel, ModelSource, known_names, load
from mindset.models.saving import save
from mindset.models.summary import summarize

__all__ = ["DEFAULT_MODEL", "EMBEDDED", "TINY", "LoadedModel", "ModelSource", "known_names", "load", "save", "summarize"]
