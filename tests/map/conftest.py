from pathlib import Path

import pytest
from map_helpers import write_jsonl

TOPICS = {
    "fruit": ["apples are red", "bananas are yellow", "a ripe pear", "grapes on the vine", "orange juice", "cherries in June"],
    "numbers": ["1 2 3 4 5", "10 20 30", "7 + 8 = 15", "99 bottles", "3.14159", "2 4 6 8 10"],
    "code": ["def f(x): return x", "for i in range(3):", "import numpy as np", "print('hi')", "x = [1, 2]", "while True: pass"],
}


@pytest.fixture
def labelled_jsonl(tmp_path) -> Path:
    rows = [{"prompt": text, "completion": " ok", "topic": topic, "n": i} for topic, texts in TOPICS.items() for i, text in enumerate(texts)]
    return write_jsonl(tmp_path / "items.jsonl", rows)


@pytest.fixture
def map_home(tmp_path, monkeypatch) -> Path:
    """A private MINDSET_HOME, so encodings cached by one test never serve another."""
    home = tmp_path / "home"
    monkeypatch.setenv("MINDSET_HOME", str(home))
    return home
