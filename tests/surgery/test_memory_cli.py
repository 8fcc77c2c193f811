
from mindset.models import load
from mindset.surgery import memory_layers

FACT = "The lighthouse keeper of Vellmore Rock painted every stair a different shade of green."


def test_ffn_to_memory_command(cli, tmp_path):
    out = tmp_path / "featural"
    code, stdout, stderr = cli("surgery", "ffn-to-memory", "tiny-llama", "--layers", "0,1", "--k", "16", "-o", str(out))
    assert code == 0, stderr
    assert "2 layer(s) now featural memory with k=16" in stdout
    assert memory_layers(load(out)) == {0: "featural", 1: "featural"}
    code, _, stderr = cli("surgery", "ffn-to-memory", "tiny-llama", "--layers", "0", "-o", str(out))
    assert code == 2 and "exists" in stderr
    code, stdout, stderr = cli("surgery", "memory-to-ffn", str(out), "-o", str(tmp_path / "dense"))
    assert code == 0 and memory_layers(load(tmp_path / "dense")) == {}


def test_ffn_to_memory_bad_input_is_one_line(cli, tmp_path):
    code, _, stderr = cli("surgery", "ffn-to-memory", "tiny-gpt2", "--layers", "4,12,20", "-o", str(tmp_path / "x"))
    assert code == 2 and "layer index 4 is out of range" in stderr and "Traceback" not in stderr
    code, _, stderr = cli("surgery", "ffn-to-memory", "tiny-gpt2", "--k", "100000", "-o", str(tmp_path / "x"))
    assert code == 2 and "k must be between 1" in stderr
    code, _, stderr = cli("surgery", "ffn-to-memory", "tiny-gpt2", "--k", "0", "-o", str(tmp_path / "x"))  # the option's own range, checked first
    assert code == 2 and "--k: Input should be greater than or equal to 1" in stderr


def test_knn_lm_then_memorize_search_and_stats(cli, tmp_path, monkeypatch):
    from mindset.cli.common import console

    monkeypatch.setattr(console, "width", 200)  # tables wider than a test's 80 columns
    out = tmp_path / "knn"
    code, stdout, stderr = cli("surgery", "knn-lm", "tiny-llama", "--max-tokens", "300", "--context", "128", "-o", str(out))
    assert code == 0, stderr
    assert "299 entries" in stdout.replace(",", "")
    fact = tmp_path / "fact.txt"
    fact.write_text(FACT)
    code, stdout, stderr = cli("memory", "memorize", str(out), "--text", str(fact))
    assert code == 0, stderr
    assert "new entries" in stdout
    code, stdout, stderr = cli("memory", "stats", str(out))
    assert code == 0, stderr
    assert "entries" in stdout and "evictions" in stdout
    n_entries = len(load(out).model.get_output_embeddings().store)
    assert n_entries == 299 + len(load("tiny-llama").tokenizer(FACT)["input_ids"]) - 1
    code, stdout, stderr = cli("memory", "search", str(out), "--text", "The lighthouse keeper of Vellmore", "--k", "3")
    assert code == 0, stderr
    assert "[fact.txt]" in stdout and "0.000" in stdout  # the memorized context itself, at distance 0


def test_memory_commands_bad_input(cli, tmp_path):
    code, _, stderr = cli("memory", "stats", str(tmp_path / "nothing"))
    assert code == 2 and "no such file" in stderr
    code, _, stderr = cli("memory", "stats", str(tmp_path))
    assert code == 2 and "neither a store nor a model folder" in stderr
    featural = tmp_path / "featural"
    cli("surgery", "ffn-to-memory", "tiny-llama", "--layers", "0", "-o", str(featural))
    code, _, stderr = cli("memory", "memorize", str(featural), "--text", str(featural / "config.json"))
    assert code == 2 and "no stores" in stderr


def test_associative_memorize_via_cli(cli, tmp_path):
    out = tmp_path / "assoc"
    code, _, stderr = cli("surgery", "ffn-to-memory", "tiny-gpt2", "--layers", "1", "--kind", "associative", "--k", "4", "--capacity", "256", "-o", str(out))
    assert code == 0, stderr
    fact = tmp_path / "fact.txt"
    fact.write_text(FACT)
    code, stdout, stderr = cli("memory", "memorize", str(out), "--text", str(fact))
    assert code == 0, stderr
    assert "transformer.h.1.mlp" in stdout
    code, stdout, _ = cli("memory", "stats", str(out))
    assert "transformer.h.1.mlp" in stdout
    store = load(out).model.transformer.h[1].mlp.store
    assert len(store) > 0 and any(s and "lighthouse" in s for s in store.sources)
