import textwrap
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_home(mindset_home):
    """Merge tests keep their layout cache in the session's private MINDSET_HOME."""


@pytest.fixture(scope="session")
def family(tmp_path_factory):
    """base (tiny-llama, seed 1), ft1-ft3 (base plus seeded noise), extra (two more tokens)."""
    from mindset.merge.fixtures import write_finetune_family

    return write_finetune_family(tmp_path_factory.mktemp("family"))


@pytest.fixture(scope="session")
def professor_models(tmp_path_factory):
    """The four 80-layer miniature models the published frankenmerge config runs on."""
    from mindset.merge.fixtures import write_professor_models

    root = tmp_path_factory.mktemp("professor")
    write_professor_models(root / "models")
    return root


@pytest.fixture
def write_config(tmp_path):
    """Write a merge YAML (dedented; {base}-style names filled from `paths`) and return its path."""

    def write(text: str, paths: dict | None = None, name: str = "merge.yaml") -> Path:
        text = textwrap.dedent(text)
        for key, value in (paths or {}).items():
            text = text.replace("{" + key + "}", str(value))
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def tensors_in():
    """folder → {name: tensor} for every safetensors file in it."""
    return read_tensors


def read_tensors(folder: Path) -> dict:
    from safetensors import safe_open

    tensors = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    return tensors
