"""Screenshots of each view of `mindset ui` into docs/ui/, for the README: the page driven in headless
chromium the way the browser tests drive it.

    python scripts/ui_screenshots.py [MODEL] [--out docs/ui]     (default smollm2-135m; about a minute on 2 cores)

architecture.png  the Architecture view, a layer selected (its modules, parameters and weight statistics)
edit-identity.png two identity blocks inserted and heads added: KL 0, the function unchanged
edit-widen.png    an FFN widened by noisy split copies: KL > 0 and the perplexity moved
export.png        the history, the exported recipe and a saved folder
importance.png    the Architecture view with the importance overlay (a circuits map run as a background job)
heal.png          a heal job after a noisy widening: the live loss / valid perplexity chart, then one more step
memory.png        a layer turned into associative memory, a text memorized, its entries browsed
chat.png          original and current side by side, tokens coloured by probability, one token's top-5 and memory entries
diff.png          the Diff view after inserting, widening, adding heads and dropping a layer
activations.png   the activation-norm overlay on a typed prompt (heads just added write nothing)
map.png           the Map view: the map of the current model against the original, built as a job
agent-memory.png  the Memory view's agent database (--agent-memory): a chat's memories by importance, recall scores for a question

    python scripts/ui_screenshots.py --views jobs      (importance, heal, memory and chat)
    python scripts/ui_screenshots.py --views chat      (only chat.png, after its own widening and memory layer)
    python scripts/ui_screenshots.py --views views     (only diff, activations, map)
    python scripts/ui_screenshots.py --views agent     (only agent-memory.png)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="smollm2-135m")
    parser.add_argument("--out", type=Path, default=Path("docs/ui"))
    parser.add_argument("--views", choices=("all", "edits", "jobs", "chat", "views", "agent"), default="all")
    args = parser.parse_args()

    from mindset.map.browser import start_chromium
    from mindset.models import load
    from mindset.models.anatomy import blocks
    from mindset.ui import Workbench
    from mindset.ui.browser import click_and_wait, open_page, serving

    loaded = load(args.model, device="cpu", dtype="float32")
    first = blocks(loaded.model)[0].attention
    group = first.n_heads // first.n_kv_heads
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        bench = Workbench(loaded, Path(work) / "root")
        if args.views in ("all", "agent"):
            bench.agent_memory = agent_database(loaded, Path(work) / "chat")
        with serving(bench, "screenshots") as url:
            driver = start_chromium(Path(work) / "profile", window=(1400, 1000))
            try:
                print(f"architecture drawn in {open_page(driver, url):.0f} ms")
                if args.views in ("all", "edits"):
                    edits_views(driver, args.out, group)
                if args.views in ("all", "jobs"):
                    for _ in range(bench.history()["cursor"]):
                        click_and_wait(driver, "undo")
                    job_views(driver, args.out)
                if args.views in ("all", "jobs", "chat"):
                    chat_view(driver, args.out, prepare=args.views == "chat", layers=len(blocks(loaded.model)))
                if args.views in ("all", "views"):
                    for _ in range(bench.history()["cursor"]):
                        click_and_wait(driver, "undo")
                    from ui_screenshot_views import diff_views

                    diff_views(driver, args.out, group, len(blocks(loaded.model)))
                if args.views in ("all", "agent"):
                    agent_view(driver, args.out)
            finally:
                driver.quit()
    print(f"wrote {', '.join(sorted(p.name for p in args.out.glob('*.png')))} to {args.out}")


def edits_views(driver, out: Path, group: int) -> None:
    from mindset.map.browser import wait_for
    from mindset.ui.browser import click_and_wait, edit, select_ffn, select_layer, wait_idle

    select_layer(driver, 3)
    wait_for(driver, "return document.getElementById('stats')", 60)
    driver.save_screenshot(str(out / "architecture.png"))
    select_layer(driver, 1)
    edit(driver, "insert_layers", {"after": "1", "n": "2", "init": "identity"})
    select_layer(driver, 5)
    edit(driver, "add_heads", {"layers": "5", "n": str(group)})
    driver.save_screenshot(str(out / "edit-identity.png"))
    select_ffn(driver, 8)
    edit(driver, "widen_ffn", {"layers": "8", "add": "256", "init": "split", "noise": "1.0"})
    driver.find_element("id", "measure").click()
    wait_for(driver, "return document.getElementById('ppl-current')", 300)
    wait_idle(driver)
    driver.save_screenshot(str(out / "edit-widen.png"))
    click_and_wait(driver, "undo")
    driver.find_element("id", "show-recipe").click()
    wait_for(driver, "return document.getElementById('recipe')")
    driver.find_element("id", "save").click()
    wait_for(driver, "return document.getElementById('saved')", 300)
    driver.execute_script("document.getElementById('export').scrollIntoView()")
    driver.save_screenshot(str(out / "export.png"))


def job_views(driver, out: Path) -> None:
    from mindset.map.browser import wait_for
    from mindset.ui.browser import edit, select_ffn, show_overlay, start_heal, version, wait_idle, wait_job

    driver.find_element("id", "tab-architecture").click()
    driver.find_element("id", "overlay-importance").click()
    driver.find_element("id", "importance-run").click()
    started = time.perf_counter()
    wait_job(driver, timeout=900)
    print(f"importance map (heads + FFNs, 8 documents, attribution) in {time.perf_counter() - started:.0f} s")
    show_overlay(driver, "importance")
    driver.save_screenshot(str(out / "importance.png"))
    select_ffn(driver, 8)
    edit(driver, "widen_ffn", {"layers": "8", "add": "256", "init": "split", "noise": "1.0"})
    started = time.perf_counter()
    start_heal(driver, {"steps": "12", "batch_size": "2", "seq_len": "64", "valid_every": "3", "warmup_steps": "2"})
    wait_job(driver, timeout=900)
    print(f"heal job (12 steps) in {time.perf_counter() - started:.0f} s")
    driver.save_screenshot(str(out / "heal.png"))
    select_ffn(driver, 3)
    edit(driver, "ffn_to_memory", {"layers": "3", "kind": "associative", "capacity": "512", "k": "8"})
    driver.find_element("id", "tab-memory").click()
    wait_for(driver, "return document.getElementById('memorize-text')")
    driver.find_element("id", "memorize-text").send_keys(MEMORY_TEXT)
    before = version(driver)
    driver.find_element("id", "memorize").click()
    wait_idle(driver, before, 300)
    wait_for(driver, "return document.querySelectorAll('#entries tr.entry').length > 0", 60)
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "memory-sort")).select_by_value("hits")
    wait_for(driver, "const m = window.mindsetUi.memory; return m && m.sort === 'hits'", 60)
    driver.save_screenshot(str(out / "memory.png"))


def chat_view(driver, out: Path, prepare: bool, layers: int) -> None:
    """Chat after the edits (prepare: a noisy widening and a memory layer of its own, as the jobs views leave the model)."""
    from mindset.ui.browser import chat, edit, hover_token, select_ffn, version, wait_idle

    if prepare:
        wide, memory = min(8, layers - 1), min(3, layers - 2)
        select_ffn(driver, wide)
        edit(driver, "widen_ffn", {"layers": str(wide), "add": "256", "init": "split", "noise": "1.0"})
        edit(driver, "ffn_to_memory", {"layers": str(memory), "kind": "associative", "capacity": "512", "k": "8"})
        driver.find_element("id", "tab-memory").click()
        from mindset.map.browser import wait_for

        wait_for(driver, "return document.getElementById('memorize-text')")
        driver.find_element("id", "memorize-text").send_keys(MEMORY_TEXT)
        before = version(driver)
        driver.find_element("id", "memorize").click()
        wait_idle(driver, before, 300)
    started = time.perf_counter()
    got = chat(driver, "Tell me about a single man in possession of a good fortune.", max_tokens=40, timeout=600)
    print(f"chat: {got['tokens']} tokens from original and current, with retrieved entries, in {time.perf_counter() - started:.0f} s")
    hover_token(driver, "current", min(5, got["tokens"]["current"] - 1))
    driver.save_screenshot(str(out / "chat.png"))
AGENT_FACTS = [("My sister is called Ana.", 6), ("I live in Lisbon, near the river.", 7), ("My cat is a grey tabby named Tom.", 5),
               ("I am allergic to peanuts.", 9), ("I play the cello in an amateur orchestra.", 4), ("Can you tell me a joke?", 1),
               ("My husband Marco is an architect.", 8), ("How do I boil an egg?", 2)]


def agent_database(loaded, folder: Path):
    """A chat's memory folder (what `mindset chat MODEL --memory DIR` writes), opened for the Memory view."""
    from mindset.agent import Agent
    from mindset.ui.agentdb import AgentMemoryView

    agent = Agent(loaded, folder, reload=0)
    for text, importance in AGENT_FACTS:
        agent.edit(agent.remember(text), importance=importance)
    agent.close()
    return AgentMemoryView(folder, loaded)


def agent_view(driver, out: Path) -> None:
    from selenium.webdriver.support.ui import Select

    from mindset.map.browser import wait_for

    driver.find_element("id", "tab-memory").click()
    wait_for(driver, "const m = window.mindsetUi.agentMemory; return m && m.total > 0", 60)
    Select(driver.find_element("id", "agent-sort")).select_by_value("importance")
    wait_for(driver, "const m = window.mindsetUi.agentMemory; return m && m.sort === 'importance'", 60)
    driver.find_element("id", "agent-query").send_keys("What is my cat called?")
    driver.find_element("id", "agent-recall").click()
    wait_for(driver, "return document.querySelector('#agent-recalled tr.agent-memory')", 120)
    driver.execute_script("document.getElementById('agent-memory').scrollIntoView()")
    driver.save_screenshot(str(out / "agent-memory.png"))


MEMORY_TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. "
               "However little known the feelings or views of such a man may be on his first entering a neighbourhood.")


if __name__ == "__main__":
    main()
