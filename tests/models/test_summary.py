from mindset.models.summary import architecture, parameters_by_component, summarize, summary_tables


def test_architecture_of_tiny_llama(tiny_llama):
    arch = architecture(tiny_llama.model)
    assert arch == {
        "family": "llama",
        "layers": 2,
        "hidden": 64,
        "heads": 4,
        "kv_heads": 2,
        "head_dim": 16,
        "d_ff": 160,
        "vocab": len(tiny_llama.tokenizer),
        "context": 256,
        "tied_embeddings": True,
        "dtype": "float32",
    }


def test_gpt2_d_ff_defaults_to_four_times_hidden(tiny_gpt2):
    assert architecture(tiny_gpt2.model)["d_ff"] == 256


def test_components_add_up_to_every_parameter_once(tiny):
    by_component = parameters_by_component(tiny.model)
    assert sum(v["params"] for v in by_component.values()) == sum(p.numel() for p in tiny.model.parameters())
    assert by_component["head"]["params"] == 0  # tied: counted under embeddings
    assert "other" not in by_component  # every HF block was recognised


def test_llama_components_match_hand_count(tiny_llama):
    c = parameters_by_component(tiny_llama.model)
    hidden, kv_dim, d_ff, layers, vocab = 64, 2 * 16, 160, 2, len(tiny_llama.tokenizer)
    assert c["embeddings"]["params"] == vocab * hidden
    assert c["attention"]["params"] == layers * (2 * hidden * hidden + 2 * hidden * kv_dim)
    assert c["mlp"]["params"] == layers * 3 * hidden * d_ff
    assert c["norms"]["params"] == (2 * layers + 1) * hidden
    assert c["mlp"]["bytes"] == 4 * c["mlp"]["params"]


def test_untied_head_is_its_own_component():
    from mindset.models import load

    loaded = load("tiny-llama")
    model = loaded.model
    model.config.tie_word_embeddings = False
    import torch

    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    c = parameters_by_component(model)
    assert c["head"]["params"] == c["embeddings"]["params"]


def test_component_declared_by_a_module_wins(tiny_llama):
    tiny_llama.model.model.layers[0].mlp.mindset_component = "memory"
    c = parameters_by_component(tiny_llama.model)
    assert c["memory"]["params"] == c["mlp"]["params"]


def test_summary_tables_have_a_total_row(tiny_gpt2):
    tables = summary_tables(summarize(tiny_gpt2.model))
    titles = [t[0] for t in tables]
    assert titles == ["Architecture", "Parameters by component"]
    rows = {row[0]: row for row in tables[1][2]}
    assert rows["total"][2] == "100.0%"
    assert "head (tied to embeddings)" in rows
