"""The embedding shim: identity at start (logits unchanged), live when trained, saved and restored exactly,
folded exactly into the embedding matrix (tied and untied), trainable alone, and refused twice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mindset import surgery
from mindset.errors import MindsetError
from mindset.models import load, save
from mindset.models.custom import custom_modules, set_module
from mindset.models.names import select_parameters
from mindset.surgery.shim import ShimmedEmbedding, ShimmedHead

IDS = torch.tensor([[5, 17, 99, 3, 42, 8, 150, 77, 23, 64]])
KINDS = ["tiny-llama", "tiny-llama untied", "tiny-gpt2"]


def tiny(kind: str):
    loaded = load(kind.split()[0], device="cpu", dtype="float32")
    if kind.endswith("untied"):  # its own head matrix, different from the embeddings
        model = loaded.model
        model.config.tie_word_embeddings = False
        with torch.no_grad():
            model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone() + 0.05 * torch.randn_like(model.lm_head.weight))
    return loaded


def logits(loaded):
    with torch.no_grad():
        return loaded.model(IDS).logits


def perturb(shimmed, seed: int = 0) -> None:
    """Train-like change of the shim only, so S is not the identity any more."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in surgery.shim_parameters(shimmed).values():
            p.add_(0.2 * torch.randn(p.shape, generator=generator))


@pytest.mark.parametrize("rank", [None, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_an_identity_shim_keeps_logits(kind, rank):
    loaded = tiny(kind)
    before = logits(loaded)
    shimmed = surgery.embedding_shim(loaded, rank)
    assert isinstance(shimmed.model.get_input_embeddings(), ShimmedEmbedding)
    assert isinstance(shimmed.model.get_output_embeddings(), ShimmedHead) == (not kind.endswith("untied"))
    assert not isinstance(loaded.model.get_input_embeddings(), ShimmedEmbedding)  # a pure function
    assert (logits(shimmed) - before).abs().max() < 1e-5


@pytest.mark.parametrize("rank", [None, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_a_trained_shim_changes_logits_and_round_trips(kind, rank, tmp_path):
    loaded = tiny(kind)
    shimmed = surgery.embedding_shim(loaded, rank)
    perturb(shimmed)
    changed = logits(shimmed)
    assert (changed - logits(loaded)).abs().max() > 1e-3
    save(shimmed, tmp_path / "m")
    back = load(tmp_path / "m", device="cpu", dtype="float32")
    assert torch.equal(logits(back), changed)
    assert [p for p in custom_modules(back.model)] and back.model.get_input_embeddings().shim.rank == rank
    if not kind.endswith("untied"):  # one S shared by both ends, and the head still tied to the embeddings
        assert back.model.get_output_embeddings().shim is back.model.get_input_embeddings().shim
        assert back.model.get_output_embeddings().weight is back.model.get_input_embeddings().weight


def test_a_saved_shim_folder_loads_in_plain_transformers_as_the_original(tmp_path):
    from transformers import AutoModelForCausalLM

    loaded = tiny("tiny-llama")
    shimmed = surgery.embedding_shim(loaded)
    perturb(shimmed)
    save(shimmed, tmp_path / "m")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "m", dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(plain(IDS).logits, logits(loaded))


@pytest.mark.parametrize("rank", [None, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_each_module_folds_exactly_into_a_plain_one(kind, rank):
    """The contract GGUF export uses: every custom module's mindset_fold() at its own path, one at a time."""
    shimmed = surgery.embedding_shim(tiny(kind), rank)
    perturb(shimmed, seed=1)
    expected = logits(shimmed)
    modules = custom_modules(shimmed.model)
    assert len(modules) == (1 if kind.endswith("untied") else 2)
    for path, module in modules:
        plain = module.mindset_fold()
        assert type(plain) in (nn.Embedding, nn.Linear)
        set_module(shimmed.model, path, plain)
        assert (logits(shimmed) - expected).abs().max() < 1e-5  # exact after each single fold, too
    assert not custom_modules(shimmed.model)


@pytest.mark.parametrize("kind", KINDS)
def test_fold_embedding_shim_bakes_e_times_s_transposed(kind):
    shimmed = surgery.embedding_shim(tiny(kind), 5)
    perturb(shimmed, seed=2)
    shim = shimmed.model.get_input_embeddings().shim
    expected_matrix = shimmed.model.get_input_embeddings().weight.detach() @ shim.matrix().detach().t()  # E' = E·Sᵀ
    folded = surgery.fold_embedding_shim(shimmed)
    embedding = folded.model.get_input_embeddings()
    assert type(embedding) is nn.Embedding and torch.allclose(embedding.weight, expected_matrix, atol=1e-6)
    assert (logits(folded) - logits(shimmed)).abs().max() < 1e-5
    head = folded.model.get_output_embeddings()
    assert type(head) is nn.Linear and (head.weight is embedding.weight) == (not kind.endswith("untied"))


def test_the_shim_trains_alone():
    """Selected by the component name `shim` (what `distill --trainable shim` uses), only S moves and the loss falls."""
    shimmed = surgery.embedding_shim(tiny("tiny-llama"), 4)
    model = shimmed.model
    chosen = select_parameters(model, ["shim"])
    assert chosen == set(surgery.shim_parameters(shimmed)) == {"model.embed_tokens.shim.a", "model.embed_tokens.shim.b"}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n not in chosen}
    for n, p in model.named_parameters():
        p.requires_grad_(n in chosen)
    optimizer = torch.optim.Adam([p for n, p in model.named_parameters() if n in chosen], lr=1e-2)
    losses = []
    for _ in range(20):
        loss = model(IDS, labels=IDS).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1e-3
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_errors_are_one_line_user_errors(tiny_llama):
    shimmed = surgery.embedding_shim(tiny_llama)
    with pytest.raises(MindsetError, match="already has an embedding shim"):
        surgery.embedding_shim(shimmed)
    for rank in (0, 64, True, 2.5):
        with pytest.raises(MindsetError, match=r"1 ≤ rank < 64"):
            surgery.embedding_shim(tiny_llama, rank)
    with pytest.raises(MindsetError, match="no embedding shim"):
        surgery.shim_parameters(tiny_llama)
    with pytest.raises(MindsetError, match="no embedding shim"):
        surgery.fold_embedding_shim(tiny_llama)
    with pytest.raises(MindsetError, match="no embedding shim"):
        select_parameters(tiny_llama.model, ["shim"])


def test_a_head_that_cannot_carry_the_shim_is_refused(tiny_llama):
    attached = surgery.attach_knn_lm(tiny_llama)  # a tied kNN-LM head: the shim would be dropped from its path
    with pytest.raises(MindsetError, match="plain linear LM head"):
        surgery.embedding_shim(attached)
    with pytest.raises(MindsetError, match="linear LM head"):  # and kNN-LM refuses a shimmed head
        surgery.attach_knn_lm(surgery.embedding_shim(tiny_llama))


def test_distill_trains_the_shim_alone_and_saves_it(tmp_path):
    """`distill --trainable shim`: the shim moves, nothing else does, and the saved student restores it."""
    from mindset.train import DistillConfig, distill

    student = surgery.embedding_shim(load("tiny-llama", seed=0), 4)
    teacher = load("tiny-llama", seed=1)
    embeddings = student.model.get_input_embeddings().weight.detach().clone()
    config = DistillConfig(name="shim", trainable=["shim"], steps=6, batch_size=2, seq_len=32, checkpoint_every=3, max_train_tokens=4000, warmup_steps=1, lr=1e-2)
    result = distill(student, teacher, config, runs_dir=tmp_path, progress=False)
    assert result.trainable_params == 2 * 64 * 4
    shim = student.model.get_input_embeddings().shim
    assert shim.b.detach().abs().max() > 0  # B left zero: S moved off the identity
    assert torch.equal(student.model.get_input_embeddings().weight.detach(), embeddings)
    saved = load(result.student_dir, device="cpu", dtype="float32")
    assert torch.equal(logits(saved), logits(student))


def test_a_shim_survives_later_edits_and_generation(tmp_path):
    """Copies made by later edits keep one S shared by both ends; the chain saves, loads and generates the same."""
    shimmed = surgery.embedding_shim(tiny("tiny-llama"))
    perturb(shimmed, seed=3)
    edited = surgery.insert_layers(surgery.widen_ffn(shimmed, [0], add=5, init="random"), after=1, init="copy")
    assert edited.model.get_output_embeddings().shim is edited.model.get_input_embeddings().shim
    save(edited, tmp_path / "m")
    back = load(tmp_path / "m", device="cpu", dtype="float32")
    assert torch.equal(logits(back), logits(edited))
    prompt = IDS[:, :4]
    kwargs = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False, "pad_token_id": 0}
    assert torch.equal(back.model.generate(prompt, **kwargs), edited.model.generate(prompt, **kwargs))
