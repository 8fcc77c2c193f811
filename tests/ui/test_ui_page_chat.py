"""The Chat view in headless chromium on tiny-llama: after a noisy widening, one message streams into both panes,
each token coloured by its log-probability (the numbers of the original and of the edited model), pointing at
a token shows its top-5; after a layer is turned into memory, pointing shows the entries the token was read with."""


import pytest
import torch
from ui_helpers import expected_color

from mindset.chat.generation import encode_prompt
from mindset.map.browser import severe_logs
from mindset.ui.browser import chat, edit, hover_token, open_page, select_ffn

pytestmark = pytest.mark.browser
BROWSER_WINDOW = (1400, 1000)
TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."


def first_logprob(loaded, text: str) -> float:
    """The greedy first token's log-probability, from the model itself."""
    ids = torch.tensor([encode_prompt(loaded.tokenizer, [{"role": "user", "content": text}])])
    with torch.no_grad():
        return float(torch.log_softmax(loaded.model(input_ids=ids).logits[0, -1].float(), -1).max())


def tokens(driver, pane: str) -> list[dict]:
    return driver.execute_script(f"""return [...document.querySelectorAll('#chat-{pane} .tok')].map(t => ({{
        lp: +t.dataset.lp, text: t.textContent, color: getComputedStyle(t).backgroundColor}}))""")


def test_chat_streams_coloured_tokens_into_both_panes_and_hover_shows_the_top_5(browser, page, bench):
    open_page(browser, page)
    select_ffn(browser, 1)
    edit(browser, "widen_ffn", {"add": "32", "init": "split", "noise": "1.0"})
    got = chat(browser, "The capital of France is", max_tokens=8)
    assert got["state"] == "done" and got["tokens"]["original"] >= 1 and got["tokens"]["current"] >= 1
    panes = {name: tokens(browser, name) for name in ("original", "current")}
    assert [len(panes["original"]), len(panes["current"])] == [got["tokens"]["original"], got["tokens"]["current"]]
    for shown in panes.values():
        for t in shown:
            rgb = tuple(int(v) for v in t["color"].removeprefix("rgb(").rstrip(")").split(","))
            assert max(abs(a - b) for a, b in zip(rgb, expected_color(t["lp"]))) <= 2, t
    assert abs(panes["original"][0]["lp"] - first_logprob(bench.original, "The capital of France is")) < 1e-3
    assert abs(panes["current"][0]["lp"] - first_logprob(bench.current, "The capital of France is")) < 1e-3  # the edited model
    assert abs(panes["original"][0]["lp"] - panes["current"][0]["lp"]) > 1e-3
    info = hover_token(browser, "current", 0)
    assert "current" in info and len(browser.find_elements("css selector", "#alternatives li")) == 5
    assert browser.find_elements("css selector", "#alternatives li.chosen")  # greedy: the token is among its top-5
    assert not browser.find_elements("id", "retrieved")  # no memory layers, nothing retrieved
    browser.find_element("id", "tab-architecture").click()
    browser.find_element("id", "tab-chat").click()
    assert len(tokens(browser, "current")) == got["tokens"]["current"]  # the conversation outlives the tab
    assert chat(browser, "And of Germany?", max_tokens=3)["state"] == "done"  # a second turn, after the first
    assert [len(browser.find_elements("css selector", f"#chat-{m} .turn")) for m in ("original", "current")] == [2, 2]
    assert severe_logs(browser) == [] and browser.execute_script("return window.mindsetUi.errors") == []


def test_with_a_memory_layer_hover_shows_the_entries_a_token_was_predicted_with(browser, page, bench):
    bench.apply("ffn_to_memory", {"layers": [1], "kind": "associative", "capacity": 64, "k": 4})
    bench.apply("memorize", {"text": TEXT})
    open_page(browser, page)
    got = chat(browser, "a single man in possession of", max_tokens=4)
    assert got["state"] == "done" and got["retrieved"] == got["tokens"]["current"] >= 1
    hover_token(browser, "current", 0)
    store = bench.current.model.get_submodule("model.layers.1.mlp").store
    shown = [int(e.get_attribute("data-id")) for e in browser.find_elements("css selector", "#retrieved .entry")]
    assert len(shown) == 3 and set(shown) <= set(store.entry_ids[store.occupied].tolist())
    assert "model.layers.1.mlp" in browser.find_element("id", "retrieved").text
    hover_token(browser, "original", 0)
    assert not browser.find_elements("id", "retrieved")  # the original has no memory
