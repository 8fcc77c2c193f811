"""The diff view and the activation-norm overlay over the API on tiny-llama (2 layers of 4 heads, kv 2, d_ff 160):
inserted, dropped and moved layers show as such, shape and module changes per layer, weight change against the
layer each one comes from; per-head writes and FFN output norms on a typed prompt, a head that writes nothing at 0."""

import copy

import pytest
import torch

from mindset.ui.activations import activation_norms


def edit(api, op, **params):
    answer = api.post("/api/edits", json={"op": op, "params": params, "measure": False})
    assert answer.status_code == 200, answer.text


def diff(api):
    answer = api.get("/api/diff")
    assert answer.status_code == 200, answer.text
    return answer.json()


def statuses(body):
    return [(r["status"], r["source"]) for r in body["timeline"]]


def test_the_loaded_model_has_no_differences(api):
    body = diff(api)
    assert statuses(body) == [("kept", 0), ("kept", 1)]
    assert body["counts"]["changed"] == 0 and body["params"]["delta"] == 0 and body["dropped"] == []
    assert all(r["weight_change"] == {"attn": 0.0, "mlp": 0.0, "total": 0.0} for r in body["layers"])


def test_inserted_identity_layers_show_as_copies_with_zeroed_outputs(api, bench):
    one_layer = bench.original.model.model.layers[0]
    per_layer = sum(p.numel() for p in one_layer.parameters())
    edit(api, "insert_layers", after=0, n=2)
    body = diff(api)
    assert statuses(body) == [("kept", 0), ("inserted", 0), ("inserted", 0), ("kept", 1)]
    assert body["counts"] == {"original": 2, "current": 4, "inserted": 2, "dropped": 0, "moved": 0, "changed": 2}
    assert body["params"]["delta"] == 2 * per_layer and body["matched_by"] == "edit record"
    first, copy_, _, last = body["layers"]
    assert first["weight_change"]["total"] == 0 and not first["changed"]
    assert last["index"] == 3 and last["weight_change"]["total"] == 0 and not last["changed"]  # only renumbered
    # identity init zeroes the copy's o_proj and down_proj: a change against the block it copies, q/k/v/up/gate kept
    assert copy_["init"] == "identity" and 0 < copy_["weight_change"]["attn"] < 1 and 0 < copy_["weight_change"]["mlp"] < 1


def test_dropped_layers_stay_in_the_timeline_where_they_were(api):
    edit(api, "drop_layers", layers=[0])
    body = diff(api)
    assert statuses(body) == [("dropped", 0), ("kept", 1)]
    assert body["dropped"][0]["source"] == 0 and body["dropped"][0]["heads"] == 4
    assert body["layers"][0]["index"] == 0 and body["counts"]["dropped"] == 1 and body["params"]["delta"] < 0


def test_a_moved_layer_is_the_one_move_layer_took(api):
    edit(api, "move_layer", src=0, dst=1)
    body = diff(api)
    assert statuses(body) == [("kept", 1), ("moved", 0)]
    assert body["counts"]["moved"] == 1 and all(r["weight_change"]["total"] == 0 for r in body["layers"])


def test_added_heads_change_heads_kv_heads_and_parameters_but_no_weight(api):
    edit(api, "add_heads", layers=[1], n=2)
    body = diff(api)
    changed, kept = body["layers"][1], body["layers"][0]
    assert (changed["heads"], changed["kv_heads"], changed["d_ff"]) == ([4, 6], [2, 3], [160, 160])
    assert changed["params"][1] > changed["params"][0] and changed["changed"] and not kept["changed"]
    assert changed["weight_change"]["attn"] == 0  # the original heads' weights are untouched: the new ones are appended
    assert changed["reshaped"] == [] and body["counts"]["changed"] == 1


def test_a_noisy_widen_shows_the_ffn_width_and_its_weight_change(api):
    edit(api, "widen_ffn", layers=[0], add=32, init="split", noise=1.0)
    row = diff(api)["layers"][0]
    assert row["d_ff"] == [160, 192] and row["weight_change"]["attn"] == 0 and row["weight_change"]["mlp"] > 1e-3


def test_an_ffn_turned_into_memory_is_one_module_removed_and_one_added(api):
    edit(api, "ffn_to_memory", layers=[1], kind="featural", k=8)
    row = diff(api)["layers"][1]
    assert row["modules_removed"] == ["mlp (LlamaMLP)"] and len(row["modules_added"]) == 1 and row["modules_added"][0].startswith("mlp (")
    assert row["changed"]


def test_undo_brings_the_diff_back_to_nothing(api):
    edit(api, "insert_layers", after=1, n=1)
    assert diff(api)["counts"]["inserted"] == 1
    api.post("/api/undo", json={"measure": False})
    assert diff(api)["counts"]["changed"] == 0 and statuses(diff(api)) == [("kept", 0), ("kept", 1)]


def test_without_an_edit_record_layers_pair_by_position(bench):
    from mindset.ui.diff import model_diff

    bench.apply("insert_layers", {"after": 0, "n": 1})
    current = bench.current
    current.model.mindset_edits = []  # a model whose record was lost
    body = model_diff(bench.original, current)
    assert body["matched_by"] == "position" and statuses(body) == [("kept", 0), ("kept", 1), ("unknown", None)]


# --- activation norms ----------------------------------------------------------------------------------------

PROMPT = "The capital of France is Paris"


def norms(api, **body):
    answer = api.post("/api/activations", json={"prompt": PROMPT, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_activation_norms_have_a_value_per_head_and_ffn(api, tiny_llama):
    body = norms(api)
    n_tokens = tiny_llama.tokenizer(PROMPT, return_tensors="pt")["input_ids"].shape[1]
    assert len(body["tokens"]) == n_tokens and body["reduce"] == "mean" and body["model"] == "current"
    assert [len(layer["heads"]) for layer in body["layers"]] == [4, 4]
    assert set(body["values"]) == {f"L{i}.H{h}" for i in range(2) for h in range(4)} | {"L0.mlp", "L1.mlp"}
    assert all(v > 0 for v in body["values"].values())
    last = norms(api, reduce="last")
    assert last["values"] != body["values"] and all(v > 0 for v in last["values"].values())


def test_heads_add_heads_added_write_nothing_and_the_others_are_unchanged(api):
    before = norms(api)["values"]
    edit(api, "add_heads", layers=[1], n=2)
    after = norms(api)
    assert len(after["layers"][1]["heads"]) == 6
    assert after["layers"][1]["heads"][4:] == [0.0, 0.0]  # zero output columns: these heads add nothing to the residual stream
    for name, value in before.items():
        assert after["values"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert norms(api, model="original")["values"] == pytest.approx(before, rel=1e-6)


def test_a_zeroed_head_shows_norm_zero(tiny):
    """On Llama (o_proj, a Linear) and GPT-2 (c_proj, a Conv1D): zeroing the columns that read head 2 of layer 0."""
    from mindset.models.anatomy import block, is_conv1d

    before = activation_norms(tiny, PROMPT)["values"]
    zeroed = copy.copy(tiny)
    zeroed.model = copy.deepcopy(tiny.model)
    b = block(zeroed.model, 0)
    o, hd = b.attention.o, b.attention.head_dim
    with torch.no_grad():
        (o.weight[2 * hd : 3 * hd] if is_conv1d(o) else o.weight[:, 2 * hd : 3 * hd]).zero_()
    after = activation_norms(zeroed, PROMPT)["values"]
    assert after["L0.H2"] == 0.0 and before["L0.H2"] > 0
    assert after["L0.H0"] == pytest.approx(before["L0.H0"], rel=1e-6)  # other heads of the layer: the same inputs
    assert after["L1.H0"] != pytest.approx(before["L1.H0"], rel=1e-6)  # later layers see the changed stream


def test_head_gates_at_one_give_the_same_norms(api):
    before = norms(api)["values"]
    edit(api, "head_gates", layers=[0])
    assert norms(api)["values"] == pytest.approx(before, rel=1e-5)


@pytest.mark.parametrize("body, status, words", [
    ({"prompt": "   "}, 400, "prompt is empty"),
    ({"prompt": "x" * 600}, 400, "at most 512"),
    ({"prompt": "hi", "reduce": "max"}, 422, ""),
    ({"prompt": "hi", "model": "other"}, 422, ""),
    ({"text": "hi"}, 422, ""),
])  # fmt: skip
def test_bad_activation_requests_are_4xx(api, body, status, words):
    answer = api.post("/api/activations", json=body)
    assert answer.status_code == status, answer.text
    assert words in answer.text


def test_gpt2_layers_pair_up_through_insert_and_move(tiny_gpt2, tmp_path):
    """GPT-2's fused c_attn and Conv1D projections: the same pairing and weight change."""
    from mindset.ui import Workbench
    from mindset.ui.diff import model_diff

    bench = Workbench(tiny_gpt2, tmp_path / "root", autosave=False)
    bench.apply("insert_layers", {"after": 1, "n": 1})
    bench.apply("move_layer", {"src": 0, "dst": 2})
    body = model_diff(bench.original, bench.current)
    assert statuses(body) == [("kept", 1), ("inserted", 1), ("moved", 0)]
    inserted = body["layers"][1]
    assert inserted["weight_change"]["attn"] > 0 and inserted["weight_change"]["mlp"] > 0
    assert body["layers"][0]["weight_change"]["total"] == 0 and body["layers"][2]["weight_change"]["total"] == 0
