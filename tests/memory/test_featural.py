import pytest
import torch
from transformers import GPT2Config, LlamaConfig
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP
from transformers.models.llama.modeling_llama import LlamaMLP

from mindset.errors import MindsetError
from mindset.memory import FeaturalMemory
from mindset.surgery import ffn_to_memory

TEXT = "Emma Woodhouse, handsome, clever, and rich, with a comfortable home"


def block(kind, bias=False, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    if kind == "gated":
        mlp = LlamaMLP(LlamaConfig(hidden_size=6, intermediate_size=10, num_attention_heads=2, num_key_value_heads=2, mlp_bias=bias))
    else:
        mlp = GPT2MLP(10, GPT2Config(n_embd=6, n_head=2))
        with torch.no_grad():
            for p in mlp.parameters():
                p.normal_()  # Conv1D biases start at zero
    return mlp.to(dtype).eval()


def logits(loaded, text=TEXT):
    ids = torch.tensor([loaded.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return loaded.model(ids).logits


@pytest.mark.parametrize("path", ["gather", "masked"])
@pytest.mark.parametrize("score", ["bound", "exact"])
def test_all_slots_give_the_unconverted_logits(tiny, path, score):
    slots = tiny.model.config.intermediate_size if tiny.model.config.model_type == "llama" else 4 * tiny.model.config.n_embd
    converted = ffn_to_memory(tiny, kind="featural", k=slots, path=path, score=score)
    assert all(type(m).__name__ == "FeaturalMemory" for m in converted.model.modules() if "MLP" in type(m).__name__ or isinstance(m, FeaturalMemory))
    assert (logits(converted) - logits(tiny)).abs().max() < 1e-5


def test_gather_and_masked_choose_the_same_slots_at_small_k(tiny):
    a = logits(ffn_to_memory(tiny, kind="featural", k=8, path="gather"))
    b = logits(ffn_to_memory(tiny, kind="featural", k=8, path="masked"))
    assert (a - b).abs().max() < 1e-5
    assert (a - logits(tiny)).abs().max() > 1e-2  # k=8 really drops slots


@pytest.mark.parametrize("kind", ["gated", "conv1d"])
def test_top_k_keeps_the_slots_with_the_largest_contribution(kind):
    mlp = block(kind)
    x = torch.randn(4, 6, dtype=torch.float64)
    memory = FeaturalMemory(block(kind), 3, score="exact")
    # exact contributions |a_i| ||v_i|| from the dense block's own pieces
    if kind == "gated":
        a = mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)
        v = mlp.down_proj.weight.T
    else:
        a = mlp.act(mlp.c_fc(x))
        v = mlp.c_proj.weight
    top = torch.topk(a.abs() * v.norm(dim=1), 3, dim=1).indices
    mask = torch.zeros_like(a).scatter(1, top, 1.0)
    expected = (a * mask) @ v + (mlp.c_proj.bias if kind == "conv1d" else 0)
    assert torch.allclose(memory(x), expected, atol=1e-10)


def test_bound_score_is_an_upper_bound_of_the_contribution():
    mlp = block("gated", bias=True)
    memory = FeaturalMemory(mlp, 10)
    x = torch.randn(5, 6, dtype=torch.float64)
    g = mlp.act_fn(mlp.gate_proj(x))
    exact = (g * mlp.up_proj(x)).abs()
    bound = g.abs() * memory._up_bound(x)
    assert (bound >= exact - 1e-12).all()


@pytest.mark.parametrize("kind", ["gated", "conv1d"])
@pytest.mark.parametrize("path", ["gather", "masked"])
def test_finite_differences_agree_with_the_gradient(kind, path):
    memory = FeaturalMemory(block(kind, bias=kind == "gated"), 4, path=path).train()
    if kind == "conv1d":
        memory.dropout.p = 0.0
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    params = [p for p in memory.parameters()]
    assert torch.autograd.gradcheck(lambda x, *p: memory(x), (x, *params))


@pytest.mark.parametrize("kind", ["gated", "conv1d"])
@pytest.mark.parametrize("path", ["gather", "masked"])
def test_at_all_slots_gradients_equal_the_dense_blocks(kind, path):
    dense = block(kind, bias=kind == "gated")
    memory = FeaturalMemory(block(kind, bias=kind == "gated"), 10, path=path)
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 6, dtype=torch.float64)
    (memory(x) * weight).sum().backward()
    grad_x = x.grad.clone()
    x.grad = None
    (dense(x) * weight).sum().backward()
    assert torch.allclose(grad_x, x.grad, atol=1e-10)
    for (name, p), q in zip(memory.named_parameters(), dense.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-10), name


def test_weights_changed_in_place_are_seen():
    memory = FeaturalMemory(block("gated"), 4, path="gather")
    x = torch.randn(2, 6, dtype=torch.float64)
    before = memory(x)
    with torch.no_grad():
        memory.down_proj.weight.mul_(2)
    assert torch.allclose(memory(x), 2 * before)


@pytest.mark.parametrize("k", [0, -1, 11, 2.5, True])
def test_bad_k_is_an_error(k):
    with pytest.raises(MindsetError, match="k must be between 1 and the block's 10 slots"):
        FeaturalMemory(block("gated"), k)


def test_unknown_score_or_path_is_an_error():
    with pytest.raises(MindsetError, match="unknown featural score"):
        FeaturalMemory(block("gated"), 2, score="magic")
    with pytest.raises(MindsetError, match="unknown featural path"):
        FeaturalMemory(block("gated"), 2, path="sideways")
