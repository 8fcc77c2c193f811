"""The workbench API on the real SmolLM2-135M (slow): identity edits keep the function, noisy widening moves it."""

import pytest
from ui_helpers import client_for

pytestmark = pytest.mark.slow


def test_identity_blocks_and_heads_keep_smollm2_and_noisy_widening_moves_its_perplexity(smollm2, tmp_path):
    from mindset.ui import Workbench

    api = client_for(Workbench(smollm2, tmp_path))
    inserted = api.post("/api/edits", json={"op": "insert_layers", "params": {"after": 10, "n": 2}}).json()
    headed = api.post("/api/edits", json={"op": "add_heads", "params": {"layers": [5], "n": 3}}).json()
    assert len(headed["model"]["layers"]) == 32 and headed["model"]["layers"][5]["heads"] == 12
    assert inserted["measurement"]["kl"]["mean"] < 1e-6 and headed["measurement"]["kl"]["mean"] < 1e-6
    assert [t["token"] for t in headed["measurement"]["next_token"]["current"]][0] == " Paris"
    api.post("/api/edits", json={"op": "widen_ffn", "params": {"layers": [8], "add": 256, "init": "split", "noise": 1.0}})
    measured = api.post("/api/measure", json={"max_tokens": 256, "context": 128}).json()
    assert measured["kl"]["mean"] > 1e-4 and measured["perplexity"]["delta"] != 0
    assert len(api.post("/api/undo", json={}).json()["model"]["layers"]) == 32
