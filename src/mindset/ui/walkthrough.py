"""The issue's "Done when" as one walk through the page, clicks and typing only: the architecture with every
layer, an importance overlay, two identity blocks and more heads (the function unchanged), an FFN widened by
noisy copies (the perplexity moves), a short heal (progress, then one undoable step), a layer turned into
memory and its entries browsed, the model saved and the recipe exported.

One walk, two users: tests/ui/test_walkthrough_smollm2.py asserts on what each step returns (and checks the
saved folder and the recipe against the workbench's model), scripts/ui_walkthrough.py takes a screenshot
after each step into docs/ui/. Each step reads only what the page shows (its DOM and `window.mindsetUi`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mindset.map.browser import wait_for
from mindset.ui.browser import (
    chat,
    click_and_wait,
    edit,
    heads_in,
    hover_token,
    layers_shown,
    open_page,
    select_ffn,
    select_layer,
    show_overlay,
    version,
    wait_idle,
)

MEMORY_TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. "
               "However little known the feelings or views of such a man may be on his first entering a neighbourhood.")  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """Where each step edits, from the model's depth and its heads per kv group (adding a whole group keeps
    grouped-query attention's layout); small sizes, so the walk stays a few minutes on 2 cores."""

    insert_after: int
    head_layer: int
    heads: int
    widen_layer: int
    widen_add: int = 256
    noise: float = 1.0
    heal_steps: int = 3
    heal_lr: float = 1e-4
    memory_layer: int = 0
    capacity: int = 512
    save_out: str = "walkthrough-model"
    chat_text: str = "What is the capital of France?"
    chat_tokens: int = 12

    @classmethod
    def for_model(cls, n_layers: int, heads_per_group: int, **overrides: Any) -> Plan:
        after = n_layers // 3
        return cls(**{"insert_after": after, "head_layer": n_layers // 6, "heads": heads_per_group, "widen_layer": n_layers // 4,
                      "memory_layer": min(n_layers + 1, 2 * n_layers // 3 + 2), **overrides})  # fmt: skip


@dataclass
class Walk:
    """Runs the steps in order; `seen[name]` is what a step read off the page, `seconds[name]` its wall time,
    and `shot(name)` (a screenshot, or nothing) runs after each."""

    driver: Any
    url: str
    plan: Plan
    shot: Callable[[str], None] | None = None
    seen: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def step(self, name: str, fn: Callable[..., dict], *args: Any) -> dict:
        started = time.perf_counter()
        self.seen[name] = fn(self.driver, *args)
        self.seconds[name] = time.perf_counter() - started
        print(f"walkthrough: {name} done in {self.seconds[name]:.1f} s", flush=True)  # shown by pytest -s and the script
        if self.shot:
            self.shot(name)
        return self.seen[name]

    def run(self) -> dict[str, dict]:
        p = self.plan
        self.step("architecture", architecture, self.url)
        self.step("importance", importance)
        self.step("identity", identity, p)
        self.step("widen", widen, p)
        self.step("heal", heal, p)
        self.step("chat", chat_both, p)
        self.step("memory", memory, p)
        self.step("save", save, p)
        self.step("recipe", recipe)
        return self.seen


# --- reading the page ---------------------------------------------------------------------------------------


def text_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def kl_shown(driver) -> float:
    return float(text_of(driver, "kl-value"))


def history_shown(driver) -> list[tuple[str, str]]:
    """The History list as (op, 'applied' | 'undone')."""
    return [tuple(r) for r in driver.execute_script("return [...document.querySelectorAll('#history li')].map(l => [l.textContent, l.className])")]


def watch(driver, script: str, until: str, timeout: float) -> list[str]:
    """Poll `script` (a JS expression) until `until` is true, every 0.3 s; the distinct values it showed on the way."""
    seen: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(f"return {script}")
        if value and value not in seen:
            seen.append(value)
        if driver.execute_script(f"return {until}"):
            return seen
        time.sleep(0.3)
    raise TimeoutError(f"the page did not reach {until!r} in {timeout:.0f} s; it showed {seen[-3:]}")


# --- the steps ----------------------------------------------------------------------------------------------


def architecture(driver, url: str) -> dict:
    """The page opened: every layer as a row, each with its heads and FFN width; a layer's details on click."""
    ready_ms = open_page(driver, url, timeout=120)
    layers = layers_shown(driver)
    ffn = driver.execute_script("return [...document.querySelectorAll('.row.layer .ffn')].map(f => f.textContent)")
    select_layer(driver, layers[len(layers) // 2])
    stats = wait_for(driver, "const t = document.getElementById('stats'); return t && t.textContent", 120)
    return {"ready_ms": ready_ms, "layers": layers, "heads": [heads_in(driver, i) for i in layers], "ffn": ffn, "totals": text_of(driver, "totals"),
            "details": text_of(driver, "details"), "stats": stats}  # fmt: skip


JOB_DONE = "window.mindsetUi.job && ['done', 'failed', 'cancelled'].includes(window.mindsetUi.job.state)"


def importance(driver) -> dict:
    """Overlay → importance → Run: the map runs as a job (its passes counted on the button), then paints the cells."""
    driver.find_element("id", "tab-architecture").click()
    driver.find_element("id", "overlay-importance").click()
    driver.find_element("id", "importance-run").click()
    progress = watch(driver, "(document.getElementById('importance-run') || {}).textContent", JOB_DONE, 3600)
    state = driver.execute_script("return window.mindsetUi.job.state")
    values = show_overlay(driver, "importance", timeout=120)
    colours = driver.execute_script("return [...new Set([...document.querySelectorAll('.head')].map(h => h.style.backgroundColor))]")
    ffn_colours = driver.execute_script("return [...new Set([...document.querySelectorAll('.ffn')].map(f => f.style.backgroundColor))]")
    return {"state": state, "progress": progress, "values": values, "head_colours": colours, "ffn_colours": ffn_colours, "legend": text_of(driver, "legend")}


def identity(driver, p: Plan) -> dict:
    """Two identity blocks inserted, then a group of heads added to a layer: KL 0 after each, 'function unchanged'."""
    select_layer(driver, p.insert_after)
    edit(driver, "insert_layers", {"after": str(p.insert_after), "n": "2", "init": "identity"}, timeout=300)
    inserted = {"kl": kl_shown(driver), "said": text_of(driver, "measurement"), "layers": layers_shown(driver)}
    before = heads_in(driver, p.head_layer)
    select_layer(driver, p.head_layer)
    edit(driver, "add_heads", {"layers": str(p.head_layer), "n": str(p.heads)}, timeout=300)
    return {"inserted": inserted, "kl": kl_shown(driver), "said": text_of(driver, "measurement"), "heads_before": before,
            "heads_after": heads_in(driver, p.head_layer), "layers": layers_shown(driver), "top5": text_of(driver, "token-diff")}  # fmt: skip


def perplexities(driver) -> tuple[float, float]:
    original, current = (float(b.text) for b in driver.find_element("id", "ppl").find_elements("tag name", "b"))
    return original, current


def widen(driver, p: Plan) -> dict:
    """An FFN widened with random init (its output columns drawn too, x noise), then Measure perplexity: KL > 0 and the perplexity moved."""
    select_ffn(driver, p.widen_layer)
    width = driver.find_element("css selector", f".row.layer[data-layer='{p.widen_layer}'] .ffn").text
    edit(driver, "widen_ffn", {"layers": str(p.widen_layer), "add": str(p.widen_add), "init": "random", "noise": str(p.noise)}, timeout=300)
    kl = kl_shown(driver)
    driver.find_element("id", "measure").click()
    wait_for(driver, "return document.getElementById('ppl-current')", 600)
    wait_idle(driver, timeout=600)
    original, current = perplexities(driver)
    return {"width_before": int(width), "width_after": int(driver.find_element("css selector", f".row.layer[data-layer='{p.widen_layer}'] .ffn").text),
            "kl": kl, "said": text_of(driver, "measurement"), "ppl_original": original, "ppl_current": current}  # fmt: skip


def heal(driver, p: Plan) -> dict:
    """Heal → a few distillation steps: the status counts the steps live, the chart draws the loss, and the
    result is one more step in the history, which Undo takes back and Redo puts again."""
    kl_before = kl_shown(driver)
    driver.find_element("id", "tab-heal").click()
    for name, value in {"steps": str(p.heal_steps), "batch_size": "2", "seq_len": "32", "lr": str(p.heal_lr), "warmup_steps": "1", "valid_every": "0"}.items():
        element = driver.find_element("id", f"heal-{name}")
        element.clear()
        element.send_keys(value)
    trainable = driver.find_element("id", "heal-trainable").get_attribute("value")
    driver.find_element("id", "heal-start").click()
    wait_for(driver, "return window.mindsetUi.job && window.mindsetUi.job.kind === 'heal'", 60)
    progress = watch(driver, "(document.getElementById('heal-status') || {}).textContent", JOB_DONE, 3600)
    wait_idle(driver, timeout=300)
    healed = {"state": driver.execute_script("return window.mindsetUi.job.state"), "status": text_of(driver, "heal-status"), "progress": progress,
              "trainable": trainable, "kl_before": kl_before, "kl_after": kl_shown(driver), "chart": bool(driver.find_elements("css selector", "#loss-chart canvas")),
              "history": history_shown(driver)}  # fmt: skip
    click_and_wait(driver, "undo", 300)
    healed["after_undo"] = history_shown(driver)
    healed["kl_undone"] = kl_shown(driver)
    click_and_wait(driver, "redo", 300)
    healed["after_redo"] = history_shown(driver)
    healed["kl_redone"] = kl_shown(driver)
    return healed


def chat_both(driver, p: Plan) -> dict:
    """Chat → one message to the original and the edited model side by side: both panes stream tokens coloured
    by their log-probability, and pointing at one of the edited model's tokens shows its top-5."""
    got = chat(driver, p.chat_text, max_tokens=p.chat_tokens, timeout=600)
    panes = {m: driver.execute_script(f"return [...document.querySelectorAll('#chat-{m} .turn:last-child .tok')]"
                                      ".map((t) => ({text: t.textContent, lp: parseFloat(t.dataset.lp), color: getComputedStyle(t).backgroundColor}))")
             for m in ("original", "current")}  # fmt: skip
    info = hover_token(driver, "current", 0)
    return {"state": got["state"], "tokens": got["tokens"], "panes": panes, "hover": info,
            "alternatives": len(driver.find_elements("css selector", "#alternatives li"))}


def entries_shown(driver) -> list[int]:
    return driver.execute_script("return [...document.querySelectorAll('#entries tr.entry')].map(r => +r.dataset.id)")


def memory(driver, p: Plan) -> dict:
    """A layer's FFN turned into an associative memory; Memory → memorize a text; its entries paged, sorted, searched."""
    driver.find_element("id", "tab-architecture").click()  # the Chat view hides the layer rows
    select_ffn(driver, p.memory_layer)
    edit(driver, "ffn_to_memory", {"layers": str(p.memory_layer), "kind": "associative", "capacity": str(p.capacity), "k": "8"}, timeout=600)
    badges = driver.find_element("css selector", f".row.layer[data-layer='{p.memory_layer}'] .badges").text
    driver.find_element("id", "tab-memory").click()
    wait_for(driver, "return document.getElementById('memorize-text')", 120)
    stores = text_of(driver, "stores")
    driver.find_element("id", "memorize-text").send_keys(MEMORY_TEXT)
    before = version(driver)
    driver.find_element("id", "memorize").click()
    wait_idle(driver, before, 600)
    wait_for(driver, "return document.querySelectorAll('#entries tr.entry').length > 0", 120)
    first = entries_shown(driver)
    sources = driver.execute_script("return [...document.querySelectorAll('#entries td.source')].map(t => t.textContent)")
    pager = driver.find_element("css selector", ".pager").text
    driver.find_element("id", "page-next").click()
    wait_for(driver, f"const m = window.mindsetUi.memory; return m && m.ids.length && m.ids[0] !== {first[0]}", 120)
    second = entries_shown(driver)
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "memory-sort")).select_by_value("hits")
    wait_for(driver, "const m = window.mindsetUi.memory; return m && m.sort === 'hits'", 120)
    by_hits = driver.execute_script("return [...document.querySelectorAll('#entries tr.entry')].map(r => +r.children[2].textContent)")
    driver.find_element("id", "memory-query").send_keys("a single man")
    driver.find_element("id", "memory-search").click()
    found = wait_for(driver, "const r = document.getElementById('search-results'); return r && r.querySelector('tr.entry') && r.textContent", 120)
    return {"badges": badges, "stores": stores, "first_page": first, "second_page": second, "sources": sources, "pager": pager, "hits_sorted": by_hits,
            "found": found, "history": history_shown(driver)}  # fmt: skip


def save(driver, p: Plan) -> dict:
    """Edit → Save as an HF folder under --root."""
    driver.find_element("id", "tab-edit").click()
    box = driver.find_element("id", "save-out")
    box.clear()
    box.send_keys(p.save_out)
    driver.find_element("id", "save").click()
    said = wait_for(driver, "const s = document.getElementById('saved'); return s && s.textContent", 600)
    driver.execute_script("document.getElementById('export').scrollIntoView()")
    return {"said": said}


def recipe(driver) -> dict:
    """Edit → Export recipe: the YAML shown, and a download link for it."""
    driver.find_element("id", "show-recipe").click()
    text = wait_for(driver, "const r = document.getElementById('recipe'); return r && r.textContent", 120)
    link = driver.find_element("id", "download-recipe")
    driver.execute_script("document.getElementById('export').scrollIntoView()")
    return {"recipe": text, "download": link.get_attribute("download"), "href": link.get_attribute("href")}
