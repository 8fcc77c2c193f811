import pytest


@pytest.fixture
def private_home(tmp_path, monkeypatch):
    """A MINDSET_HOME of the test's own: loading a GGUF caches its HF folder there, not in the shared home."""
    monkeypatch.setenv("MINDSET_HOME", str(tmp_path / "home"))
