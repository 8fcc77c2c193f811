"""The merged model's tokenizer, and the embedding / head rows of each input moved to its token ids.

`tokenizer_source` picks the output vocabulary: one model's tokenizer (a model name, or `base`), or
`union`, the base tokenizer plus every other input's tokens. Each input's token-indexed tensors are
then re-indexed to that vocabulary before merging. A token an input lacks gets a stand-in row, as
mergekit does: the only input that has it donates its row, else the base model's row, else the average
of the inputs that have it. Where mergekit writes a zero row (no input of this slice has the token),
mindset borrows the token's row from the other models of the config, or the mean row, so no token of
the merged model has an all-zero or NaN embedding.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mindset.errors import MindsetError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
NAMED_TEMPLATES = {"chatml": CHATML}


def load_tokenizer(folder: Path, ref: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MindsetError(f"model {ref!r} ({folder}) has no usable tokenizer: {str(err).strip().splitlines()[0]}") from None


@dataclass
class Vocabulary:
    """The output tokenizer and, for each input model, output token id → its row (-1: it lacks the token)."""

    tokenizer: object
    rows: int  # rows of the merged embedding (the vocabulary, padded to a multiple if asked)
    size: int  # tokens in the vocabulary
    token_of: list[str]  # output id → token
    permutations: dict[int, torch.Tensor] = field(default_factory=dict)  # model index → (size,) int64
    base: int | None = None  # model index whose row wins for tokens several inputs have

    def missing(self, models: list[int]) -> list[int]:
        """Output ids that at least one of `models` lacks."""
        present = torch.stack([self.permutations[m] >= 0 for m in models])
        return torch.nonzero(~present.all(dim=0)).flatten().tolist()


def build_vocabulary(choice: str, models: list, tokenizers: dict[int, object], base: int, source_tokenizer=None, pad_to: int | None = None) -> Vocabulary:
    """`models` are SourceModels by index; `tokenizers` their tokenizers; `base` the donor's index."""
    if choice == "union":
        tokenizer = union_tokenizer([tokenizers[base]] + [tokenizers[i] for i in tokenizers if i != base], [models[base]] + [models[i] for i in tokenizers if i != base])
    elif choice == "base":
        tokenizer = tokenizers[base]
    else:
        tokenizer = source_tokenizer
    vocab = tokenizer.get_vocab()
    size = len(vocab)
    rows = size if not pad_to or size % pad_to == 0 else size + pad_to - size % pad_to
    token_of = [""] * size
    for token, index in vocab.items():
        if index >= size:
            raise MindsetError(f"the output tokenizer's ids are not contiguous (token {token!r} has id {index} of {size})")
        token_of[index] = token
    result = Vocabulary(tokenizer, rows, size, token_of, base=base)
    for index, model_tokenizer in tokenizers.items():
        model_vocab = model_tokenizer.get_vocab()
        limit = _vocab_size(models[index])
        ids = [model_vocab.get(token, -1) for token in token_of]
        result.permutations[index] = torch.tensor([i if i < limit else -1 for i in ids], dtype=torch.int64)
    return result


def _vocab_size(model) -> int:
    text = model.config.get("text_config", model.config)
    return int(text.get("vocab_size") or model.config.get("vocab_size"))


def union_tokenizer(tokenizers: list, models: list):
    """The first tokenizer plus every token of the others it lacks (regular tokens first, then added ones)."""
    import tempfile

    from transformers import AutoTokenizer

    added: dict[str, object] = {}
    regular: dict[str, None] = {}
    for tokenizer, model in zip(tokenizers, models):
        limit = _vocab_size(model)
        decoder = tokenizer.added_tokens_decoder
        added_contents = {info.content for info in decoder.values()}
        for token, index in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
            if index < limit and token not in added_contents:
                regular.setdefault(token, None)
        for index, info in sorted(decoder.items()):
            if index < limit:
                added.setdefault(info.content, info)
    with tempfile.TemporaryDirectory() as tmp:  # a copy, so the base model's tokenizer object is not changed
        tokenizers[0].save_pretrained(tmp)
        result = AutoTokenizer.from_pretrained(tmp, local_files_only=True)
    base_vocab = tokenizers[0].get_vocab()
    for token in regular:
        if token not in added and token not in base_vocab:
            result.add_tokens(token)
    for info in added.values():
        result.add_tokens(info)
    return result


def remap_rows(vocab: Vocabulary, tensors: dict[int, torch.Tensor], axis: int, borrowed: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Each input's token-indexed tensor re-indexed to the output vocabulary.

    `tensors`: model index → its tensor (vocabulary along `axis`). `borrowed`: output id → a row taken
    from a model outside this group, for tokens none of the group has.
    """
    models = list(tensors)
    views = {m: t.movedim(axis, 0) for m, t in tensors.items()}
    dtype = views[models[0]].dtype
    for view in views.values():
        dtype = torch.promote_types(dtype, view.dtype)
    shape = views[models[0]].shape[1:]
    stand_in: dict[int, torch.Tensor] = {}
    for token_id in vocab.missing(models):
        rows = [(m, int(vocab.permutations[m][token_id])) for m in models if vocab.permutations[m][token_id] >= 0]
        if len(rows) == 1:
            stand_in[token_id] = views[rows[0][0]][rows[0][1]]
        elif not rows:
            stand_in[token_id] = borrowed[token_id].to(dtype) if token_id in borrowed else None
        elif vocab.base in models and vocab.permutations[vocab.base][token_id] >= 0:
            stand_in[token_id] = views[vocab.base][int(vocab.permutations[vocab.base][token_id])]
        else:
            row = torch.zeros(shape, dtype=dtype)
            for m, index in rows:
                row = row + views[m][index]
            stand_in[token_id] = row / len(rows)
    result = {}
    for m in models:
        permutation = vocab.permutations[m]
        table = torch.zeros((vocab.rows, *shape), dtype=dtype)
        present = torch.nonzero(permutation >= 0).flatten()
        table[present] = views[m][permutation[present]].to(dtype)
        for token_id, row in stand_in.items():
            if permutation[token_id] < 0 and row is not None:
                table[token_id] = row
        result[m] = table
    if any(row is None for row in stand_in.values()) or vocab.rows > vocab.size:
        # tokens no model has, and padding rows: the mean of the real rows (never zero, never NaN)
        for table in result.values():
            mean = torch.mean(table[: vocab.size], dim=0)
            for token_id, row in stand_in.items():
                if row is None:
                    table[token_id] = mean
            table[vocab.size :] = mean
    return {m: table.movedim(0, axis) for m, table in result.items()}


def choose_chat_template(choice: str, tokenizers: list) -> str | None:
    """`auto`: the template most inputs share; a known name (chatml); or the template text itself."""
    if choice == "auto":
        templates = [t.chat_template.strip() for t in tokenizers if isinstance(getattr(t, "chat_template", None), str) and t.chat_template]
        return Counter(templates).most_common(1)[0][0] if templates else None
    if choice in NAMED_TEMPLATES:
        return NAMED_TEMPLATES[choice]
    if "{" not in choice or len(choice) < 20:
        raise MindsetError(f"chat_template {choice!r} is neither 'auto', a known name ({', '.join(NAMED_TEMPLATES)}) nor a Jinja template")
    return choice
