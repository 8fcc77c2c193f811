"""Dependencies point one way: every import in src/mindset (function-level ones too), read with `ast`,
goes from a higher layer to a lower one.

    ground floor (errors, fileio, configfile, tables, progress, data)
      < models (and runcontext, which loads a model on first use)
      < evaluate (scoring, used by capabilities)
      < the other capabilities (chat, memory, surgery, merge, train, circuits, serve, export, map, agent)
      < recipes < cli (and __main__, ui)

Capabilities may not import each other, except the pairs in ALLOWED, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mindset"

GROUND, MODELS, EVALUATE, CAPABILITY, RECIPES, CLI = range(6)
LAYERS = {
    "__init__": GROUND, "errors": GROUND, "fileio": GROUND, "configfile": GROUND, "tables": GROUND, "progress": GROUND, "data": GROUND,
    "models": MODELS, "runcontext": MODELS,
    "evaluate": EVALUATE,
    **dict.fromkeys(["chat", "memory", "surgery", "merge", "train", "circuits", "serve", "export", "map", "agent"], CAPABILITY),
    "recipes": RECIPES,
    "cli": CLI, "__main__": CLI, "ui": CLI,
}  # fmt: skip
ALLOWED = {
    ("evaluate", "chat"): "generate-until tasks decode with chat's sampler and KV-cache loop (scoring needs decoding)",
    ("serve", "chat"): "the server is an HTTP front for chat's decode engine",
    ("map", "chat"): "the map's live prompts generate with chat's decode loop before reading the states",
    ("serve", "map"): "/v1/embeddings returns the map's encodings, so it calls the map's encoder",
    ("surgery", "memory"): "ffn_to_memory swaps FFN blocks for memory's layers: surgery composes memory modules",
    ("agent", "chat"): "the agent answers through chat's session and decode loop; chat knows nothing of memory",
    ("agent", "map"): "the agent's default embeddings are the map's encoder (hidden states of the chat model)",
    ("agent", "memory"): "beyond a threshold of memories the agent's recall searches a faiss index through memory's FaissStore",
    ("circuits", "train"): "circuits' Protection meets train's Protection Protocol, and circuits wires the protected distill step; train never imports circuits",
    ("train", "surgery"): "pretraining builds its variants at initialization with surgery's own edits (the recipe steps' table)",
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every module named by an import statement anywhere in `source` (function bodies included),
    relative imports resolved against `module`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
            found += [f"{target}.{alias.name}" for alias in node.names if target.count(".") == 0]  # `from mindset import cli`
    return found


def package_of(module: str, top: str) -> str | None:
    """The layer-table key of a module inside `top` (`mindset.models.anatomy` -> `models`), or None outside it."""
    parts = module.split(".")
    if parts[0] != top:
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def violations(root: Path, layers: dict[str, int] = LAYERS, allowed: dict = ALLOWED) -> list[str]:
    """One line per import that runs upward (or sideways between capabilities) in the package at `root`."""
    top = root.name
    out = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        source_pkg = package_of(module, top)
        for target in imports_of(path.read_text(), module, path.name == "__init__.py"):
            target_pkg = package_of(target, top)
            if target_pkg is None or target_pkg == source_pkg:
                continue
            for pkg in (source_pkg, target_pkg):
                if pkg not in layers:
                    out.append(f"{module}: package {pkg!r} has no layer; add it to LAYERS in tests/test_layering.py")
            if source_pkg not in layers or target_pkg not in layers or (source_pkg, target_pkg) in allowed:
                continue
            upward = layers[target_pkg] > layers[source_pkg]
            sideways = layers[target_pkg] == layers[source_pkg] == CAPABILITY
            if upward or sideways:
                out.append(f"{module} imports {target} ({'a higher layer' if upward else 'another capability'})")
    return sorted(set(out))


def test_imports_point_down():
    assert violations(SRC) == []


def test_every_exception_is_still_needed():
    """An exception nobody needs any more is removed, so the list says what is true."""
    loose = violations(SRC, allowed={})
    unused = [pair for pair in ALLOWED if not any(f"mindset.{pair[0]}." in v and f"imports mindset.{pair[1]}" in v for v in loose)]
    assert unused == []


def _plant(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "mindset"
    for name, text in {"__init__.py": "", **files}.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_the_checker_catches_planted_violations(tmp_path):
    pkg = _plant(tmp_path, {
        "errors.py": "def f():\n    from mindset.cli import app  # function-level, ground floor -> cli\n",
        "cli/__init__.py": "from mindset.errors import f\n",
        "models/__init__.py": "from ..recipes import run\n",  # relative, models -> recipes
        "recipes/__init__.py": "run = 1\n",
        "chat/__init__.py": "import mindset.export.gguf  # capability -> capability\n",
        "export/__init__.py": "", "export/gguf.py": "from mindset.models import x\n",
        "weird/__init__.py": "from mindset import errors\n",
    })  # fmt: skip
    found = violations(pkg, allowed={})
    assert "mindset.errors imports mindset.cli (a higher layer)" in found
    assert "mindset.models imports mindset.recipes (a higher layer)" in found
    assert "mindset.chat imports mindset.export.gguf (another capability)" in found
    assert any("'weird' has no layer" in v for v in found)
    assert not any(v.startswith(("mindset.cli ", "mindset.export.gguf ")) for v in found)  # downward imports pass
    assert "mindset.chat imports mindset.export.gguf (another capability)" not in violations(pkg, allowed={("chat", "export"): "planted"})


def test_relative_imports_resolve_against_their_module():
    assert imports_of("from . import anatomy", "mindset.models", is_package=True) == ["mindset.models"]
    assert imports_of("from mindset import cli", "mindset.errors") == ["mindset", "mindset.cli"]
    assert imports_of("from ..errors import MindsetError", "mindset.models.anatomy") == ["mindset.errors"]
