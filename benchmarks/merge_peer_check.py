"""Peer check: mindset and mergekit 0.1.5 run the same merge configs; every output tensor is compared.

    python benchmarks/merge_peer_check.py --setup            # once: mergekit 0.1.5 in its own venv
    python benchmarks/merge_peer_check.py [--wide] [--write-golden tests/merge/golden]

mergekit lives in its own virtual environment (default `$MINDSET_HOME/venvs/mergekit-0.1.5`, made by
`--setup`: `torch==2.13.0` first, then `mergekit==0.1.5`, so both sides run the same torch). Inputs
are tiny models built by mindset: `tiny-llama` from a seed, saved with `mindset.models.save`, and
"fine-tunes" of it (the same weights plus seeded noise); the published frankenmerge's shape runs on
four 80-layer tiny Llamas. For each config both tools write a folder and the script compares every
tensor: bitwise equal, or the largest absolute difference.

DARE draws random masks. mergekit draws them from torch's global generator in its task order, so its
`--random-seed` cannot line up with any other program; mindset seeds a generator per output tensor.
The DARE rows therefore run mergekit with one line changed: the global generator reseeded with
mindset's per-tensor seed before each tensor. Identical outputs then show identical arithmetic given
the same draws. `--write-golden` saves small inputs and mergekit's outputs for `tests/merge/test_golden.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

from mindset.merge.fixtures import write_finetune_family, write_professor_models  # noqa: E402
from mindset.models.gguf_cache import mindset_home  # noqa: E402

MERGEKIT_VENV = mindset_home() / "venvs" / "mergekit-0.1.5"

# Run inside mergekit's venv: reseed torch's global generator with mindset's per-tensor seed before each
# tensor (only when MINDSET_PEER_SEED is set), then run mergekit-yaml unchanged.
SEEDED_MERGEKIT = """
import hashlib, os, sys, torch
seed = os.environ.get("MINDSET_PEER_SEED")
if seed is not None:
    from mergekit.merge_methods import task_adapter
    original = task_adapter.ExecuteMergeMethodTask.execute
    def execute(self, tensors, **kwargs):
        digest = hashlib.sha256(f"{seed}:{self.output_weight.name}".encode()).digest()[:8]
        torch.manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
        return original(self, tensors, **kwargs)
    task_adapter.ExecuteMergeMethodTask.execute = execute
from mergekit.scripts.run_yaml import main
sys.argv[0] = "mergekit-yaml"
main()
"""


def setup_mergekit(venv: Path) -> None:
    print(f"creating {venv}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # first, so mergekit's "torch>=2.0" keeps this one
    subprocess.run([*pip, "mergekit==0.1.5"], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-c", "import torch, mergekit; print('mergekit venv: torch', torch.__version__)"], check=True)


def run_mergekit(python: Path, config: Path, out: Path, seed: int | None = None) -> tuple[bool, str, float]:
    """(succeeded, last line of its error output, seconds)."""
    script = Path(tempfile.gettempdir()) / f"mindset-seeded-mergekit-{os.getpid()}.py"
    script.write_text(SEEDED_MERGEKIT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    if seed is not None:
        env["MINDSET_PEER_SEED"] = str(seed)
    began = time.perf_counter()
    proc = subprocess.run([str(python), str(script), str(config), str(out), "--quiet", "--allow-crimes"], capture_output=True, text=True, env=env)
    lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
    return proc.returncode == 0, (lines[-1] if lines else ""), time.perf_counter() - began


def read_folder(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    return tensors


def compare(ours: Path, theirs: Path) -> dict:
    a, b = read_folder(ours), read_folder(theirs)
    shared = sorted(set(a) & set(b))
    bitwise = sum(1 for k in shared if a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and _same_bits(a[k], b[k]))
    equal = [k for k in shared if a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k])]
    worst = 0.0
    for k in shared:
        if a[k].shape != b[k].shape or a[k].dtype != b[k].dtype:
            worst = float("inf")
        elif not torch.equal(a[k], b[k]):
            worst = max(worst, (a[k].double() - b[k].double()).abs().max().item())
    notes = []
    only_theirs = sorted(set(b) - set(a))
    for name in only_theirs:
        tied = _tied_partner(ours, name)
        if tied and tied in a:
            same = "equal to" if torch.equal(a[tied], b[name]) else "different from"
            notes.append(f"mergekit also writes {name} for a tied model ({same} the merged {tied}; transformers ties it)")
        else:
            notes.append(f"only mergekit writes {name}")
    notes += [f"only mindset writes {name}" for name in sorted(set(a) - set(b))]
    return {"tensors": len(shared), "equal": len(equal), "bitwise": bitwise, "max_abs_diff": worst, "notes": notes}


def _same_bits(x: torch.Tensor, y: torch.Tensor) -> bool:
    return torch.equal(x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8))


def _tied_partner(folder: Path, name: str) -> str | None:
    config = json.loads((folder / "config.json").read_text())
    if config.get("tie_word_embeddings") and name == "lm_head.weight":
        return "model.embed_tokens.weight"
    return None


def same_vocab(ours: Path, theirs: Path) -> bool | None:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(ours).get_vocab() == AutoTokenizer.from_pretrained(theirs).get_vocab()
    except Exception:
        return None


def configs(p: dict[str, Path]) -> list[tuple[str, str, bool]]:
    """(name, YAML, random) for every method both tools have, with gradients and filters where they apply."""
    b, f1, f2, f3, x = (str(p[k]) for k in ("base", "ft1", "ft2", "ft3", "extra"))
    return [
        ("passthrough", f"merge_method: passthrough\nslices:\n  - sources: [{{model: {b}, layer_range: [0, 2]}}]\n  - sources: [{{model: {f1}, layer_range: [1, 2], parameters: {{scale: 0.5}}}}]\n", False),
        ("linear", f"merge_method: linear\nmodels:\n  - {{model: {b}, parameters: {{weight: 0.5}}}}\n  - {{model: {f1}, parameters: {{weight: 0.3}}}}\n  - {{model: {f2}, parameters: {{weight: [0.1, 0.4]}}}}\n", False),
        ("linear (no normalize, fp16)", f"merge_method: linear\nparameters: {{normalize: false}}\ndtype: float16\nmodels:\n  - {{model: {b}, parameters: {{weight: 0.6}}}}\n  - {{model: {f1}, parameters: {{weight: [{{filter: mlp, value: 0.2}}, {{value: 0.4}}]}}}}\n", False),
        ("linear (bf16 out)", f"merge_method: linear\nout_dtype: bfloat16\nmodels:\n  - {{model: {b}, parameters: {{weight: 1}}}}\n  - {{model: {f1}, parameters: {{weight: 1}}}}\n", False),
        ("slerp", f"merge_method: slerp\nbase_model: {b}\nparameters:\n  t:\n    - {{filter: self_attn, value: [0, 0.5, 0.3, 0.7, 1]}}\n    - {{filter: mlp, value: [1, 0.5, 0.7, 0.3, 0]}}\n    - {{value: 0.5}}\nslices:\n  - sources: [{{model: {b}, layer_range: [0, 2]}}, {{model: {f1}, layer_range: [0, 2]}}]\n", False),
        ("task_arithmetic", f"merge_method: task_arithmetic\nbase_model: {b}\nparameters: {{lambda: 0.8}}\nmodels:\n  - {{model: {f1}, parameters: {{weight: 0.7}}}}\n  - {{model: {f2}, parameters: {{weight: 0.5}}}}\n", False),
        ("ties", f"merge_method: ties\nbase_model: {b}\nparameters: {{normalize: true, int8_mask: true}}\nmodels:\n  - {{model: {b}}}\n  - {{model: {f1}, parameters: {{weight: 1.0, density: 0.5}}}}\n  - {{model: {f2}, parameters: {{weight: 0.5, density: [1, 0.7, 0.1]}}}}\n  - {{model: {f3}, parameters: {{weight: [{{filter: mlp, value: 0.5}}, {{value: 0}}], density: 0.33}}}}\n", False),
        ("ties (fp16)", f"merge_method: ties\nbase_model: {b}\ndtype: float16\nmodels:\n  - {{model: {f1}, parameters: {{weight: 1.0, density: 0.5}}}}\n  - {{model: {f2}, parameters: {{weight: 0.5, density: 0.5}}}}\n", False),
        ("dare_ties", f"merge_method: dare_ties\nbase_model: {b}\nmodels:\n  - {{model: {f1}, parameters: {{weight: 0.6, density: 0.5}}}}\n  - {{model: {f2}, parameters: {{weight: 0.4, density: 0.7}}}}\n", True),
        ("dare_linear", f"merge_method: dare_linear\nbase_model: {b}\nmodels:\n  - {{model: {f1}, parameters: {{weight: 0.6, density: 0.5}}}}\n  - {{model: {f2}, parameters: {{weight: 0.4, density: 0.3}}}}\n", True),
        ("model_stock", f"merge_method: model_stock\nbase_model: {b}\nmodels:\n  - {{model: {f1}}}\n  - {{model: {f2}}}\n  - {{model: {f3}}}\n", False),
        ("model_stock (filter_wise)", f"merge_method: model_stock\nbase_model: {b}\nparameters: {{filter_wise: true}}\nmodels:\n  - {{model: {f1}}}\n  - {{model: {f2}}}\n  - {{model: {f3}}}\n", False),
        ("linear, union tokenizer", f"merge_method: linear\nbase_model: {b}\ntokenizer_source: union\nmodels:\n  - {{model: {b}, parameters: {{weight: 0.7}}}}\n  - {{model: {x}, parameters: {{weight: 0.3}}}}\n", False),
        ("linear, tokenizer from a model", f"merge_method: linear\ntokenizer_source: {x}\nslices:\n  - sources:\n      - {{model: {b}, layer_range: [0, 2]}}\n      - {{model: {x}, layer_range: [0, 2], parameters: {{weight: 0}}}}\nparameters: {{weight: 1.0}}\n", False),
    ]


def professor_config(folder: Path, prefix: str) -> str:
    """The published 155B config with its model names pointing at the four miniature models."""
    text = (Path(__file__).resolve().parents[1] / "recipes" / "merges" / "professor-mini.yaml").read_text()
    for name in ("dolphin-mini", "synthia-mini", "wizardmath-mini", "meditron-mini"):
        text = text.replace(f"models/{name}", str(folder / name))
    return text if prefix == "model:" else text.replace("model:" + str(folder / "dolphin-mini"), str(folder / "dolphin-mini"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", action="store_true", help="create mergekit's venv first")
    parser.add_argument("--mergekit-python", type=Path, default=MERGEKIT_VENV / "bin" / "python")
    parser.add_argument("--seed", type=int, default=0, help="mindset's DARE seed (mergekit reseeded to match)")
    parser.add_argument("--write-golden", type=Path, help="also write micro inputs and mergekit's outputs here, for the tests")
    parser.add_argument("--golden-only", action="store_true", help="only write the golden fixture (no comparison table)")
    parser.add_argument("--wide", action="store_true", help="also run every config on wide models (2M-element tensors: chunks, pieces, sampled top-k)")
    parser.add_argument("--keep", type=Path, help="keep the work folder here")
    args = parser.parse_args()
    if args.setup:
        setup_mergekit(args.mergekit_python.parent.parent)
    if not args.mergekit_python.exists():
        sys.exit(f"no mergekit at {args.mergekit_python}; run with --setup first")
    from mindset.merge import merge, parse_merge_config

    if args.golden_only:
        write_golden(args.write_golden or Path("tests/merge/golden"), args)
        return

    work = Path(tempfile.mkdtemp(prefix="merge-peer-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    rows, results = [], []
    try:
        inputs = write_finetune_family(work / "inputs")
        write_professor_models(work / "professor")
        cases = [(n, y, r) for n, y, r in configs(inputs)]
        cases.append(("published 155B shape (linear, model: prefix)", professor_config(work / "professor", "model:"), False))
        if args.wide:  # hidden 1024: MLP weights of 2.1M elements, past every chunk and piece boundary
            wide = write_finetune_family(work / "wide", hidden=1024)
            cases += [(f"{n} (wide)", y, r) for n, y, r in configs(wide)]
        for index, (name, text, random) in enumerate(cases):
            config = work / f"config-{index}.yaml"
            config.write_text(text)
            ours, theirs = work / f"mindset-{index}", work / f"mergekit-{index}"
            began = time.perf_counter()
            merge(parse_merge_config(text, config), ours, seed=args.seed)
            ours_seconds = time.perf_counter() - began
            ok, error, theirs_seconds = run_mergekit(args.mergekit_python, config, theirs, args.seed if random else None)
            note = []
            if not ok and "model:" in text:
                note.append(f"mergekit rejects the config as published ({error[:90]}); compared with the prefix removed")
                config.write_text(text.replace("tokenizer_source: model:", "tokenizer_source: "))
                ok, error, theirs_seconds = run_mergekit(args.mergekit_python, config, theirs)
            if not ok:
                rows.append([name, "mergekit failed", "", "", error[:120]])
                results.append({"config": name, "mergekit_error": error})
                continue
            result = compare(ours, theirs)
            vocab = same_vocab(ours, theirs) if "tokenizer" in text else None
            if vocab is not None:
                note.append("same vocabulary" if vocab else "VOCABULARIES DIFFER")
            if random:
                note.append("mergekit reseeded per tensor")
            note += result["notes"]
            identical = result["equal"] == result["tensors"]
            rows.append([name, f"{result['equal']}/{result['tensors']}", "yes" if identical and result["bitwise"] == result["tensors"] else ("values equal" if identical else "no"),
                         "0" if identical else f"{result['max_abs_diff']:.3g}", "; ".join(note)])  # fmt: skip
            results.append({"config": name, **result, "notes": note, "mindset_s": round(ours_seconds, 2), "mergekit_s": round(theirs_seconds, 2), "yaml": text})
        if args.write_golden:
            write_golden(args.write_golden, args)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    publish(__file__, "mindset merge vs mergekit 0.1.5: output tensors", ["config", "tensors equal", "bitwise", "max |diff|", "notes"], rows, {"results": results})
    if any(r[2] == "no" or r[1] == "mergekit failed" for r in rows):
        sys.exit(1)


def write_golden(folder: Path, args) -> None:
    """Micro inputs (hidden 8) and mergekit's output for each config, small enough to commit."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    inputs = write_finetune_family(folder / "inputs", hidden=8)
    cases = {}
    for index, (name, text, random) in enumerate(configs(inputs)):
        relative = text
        for key, path in inputs.items():
            relative = relative.replace(str(path), f"inputs/{key}")
        config = folder / f"case-{index:02d}.yaml"
        config.write_text(text)
        out = folder / f"case-{index:02d}-mergekit"
        ok, error, _ = run_mergekit(args.mergekit_python, config, out, args.seed if random else None)
        if not ok:
            raise SystemExit(f"mergekit failed on {name}: {error}")
        config.write_text(relative)
        for extra in out.iterdir():  # keep the weights and the config; tokenizers are rebuilt from inputs
            if extra.suffix != ".safetensors" and extra.name not in ("config.json", "tokenizer.json"):
                extra.unlink()
        cases[f"case-{index:02d}"] = {"name": name, "random": random}
    (folder / "cases.json").write_text(json.dumps({"seed": args.seed, "mergekit": "0.1.5", "cases": cases}, indent=2) + "\n")
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
