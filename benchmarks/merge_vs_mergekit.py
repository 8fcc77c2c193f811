"""Merge speed and peak memory: `mindset merge` vs `mergekit-yaml` 0.1.5 on the same configs, same machine, same run.

    python benchmarks/merge_vs_mergekit.py [--reps 1] [--configs linear,slerp,ties] [--models-dir DIR]

Inputs: three random Llama models of ~370M parameters each (hidden 1024, 26 layers, d_ff 2816, vocab 32000,
untied head, fp32: 1.49 GB each), generated in code from seeds and cached in `--models-dir` (default
`$MINDSET_HOME/bench/merge-llama-370m`). Configs: linear over the three, SLERP over two (a gradient t),
TIES over a base and two others (density 0.5). mergekit runs from its own venv (see
`benchmarks/merge_peer_check.py --setup`).

Each tool runs as its own process, from the command line a user would type (interpreter start, imports,
planning and writing all included); wall time is measured around the process and peak RSS is GNU
time's maximum resident set size of that process. The inputs are read once beforehand so both read
from the page cache, runs alternate mergekit / mindset, and the outputs are compared tensor by tensor.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, publish  # noqa: E402
from merge_peer_check import MERGEKIT_VENV, compare  # noqa: E402

from mindset.models.gguf_cache import mindset_home  # noqa: E402

TIME = "/usr/bin/time"  # GNU time (apt: time)
SHAPE = {"layers": 26, "hidden": 1024, "intermediate": 2816, "heads": 16, "kv_heads": 8, "vocab": 32000}


def ensure_models(folder: Path) -> list[Path]:
    from mindset.merge.fixtures import llama_config, tiny_tokenizer, write_random_model

    paths = [folder / f"llama-370m-{i}" for i in range(3)]
    marker = folder / "shape.json"
    if marker.exists() and json.loads(marker.read_text()) == SHAPE and all((p / "model.safetensors").exists() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    for seed, path in enumerate(paths):
        print(f"writing {path}", flush=True)
        config = llama_config(tied=False, context=2048, **SHAPE)
        write_random_model(path, config, tiny_tokenizer(), seed=seed)
    marker.write_text(json.dumps(SHAPE))
    return paths


def configs(m: list[Path]) -> dict[str, str]:
    return {
        "linear": f"merge_method: linear\nmodels:\n  - {{model: {m[0]}, parameters: {{weight: 0.5}}}}\n  - {{model: {m[1]}, parameters: {{weight: 0.3}}}}\n  - {{model: {m[2]}, parameters: {{weight: 0.2}}}}\ndtype: float32\n",
        "slerp": f"merge_method: slerp\nbase_model: {m[0]}\nparameters:\n  t: [0, 0.5, 1]\nmodels:\n  - {{model: {m[0]}}}\n  - {{model: {m[1]}}}\ndtype: float32\n",
        "ties": f"merge_method: ties\nbase_model: {m[0]}\nparameters: {{normalize: true}}\nmodels:\n  - {{model: {m[0]}}}\n  - {{model: {m[1]}, parameters: {{weight: 0.5, density: 0.5}}}}\n  - {{model: {m[2]}, parameters: {{weight: 0.5, density: 0.5}}}}\ndtype: float32\n",
    }


def measure(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one process, as GNU time reports them.

    GNU time forks the command from its own small process: a child forked from this (big) Python
    process would inherit its memory high-water mark in ru_maxrss and overstate the peak.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        began = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M", "-o", report.name, *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - began
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command[:3])} failed: {proc.stderr[-2000:]}")
        peak_kib = int(report.read().strip().splitlines()[-1])
    return seconds, peak_kib * 1024 / 1e9


def warm(paths: list[Path]) -> None:
    for path in paths:
        with open(path / "model.safetensors", "rb") as f:
            while f.read(1 << 26):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--configs", default="linear,slerp,ties")
    parser.add_argument("--models-dir", type=Path, default=mindset_home() / "bench" / "merge-llama-370m")
    parser.add_argument("--mergekit-python", type=Path, default=MERGEKIT_VENV / "bin" / "python")
    parser.add_argument("--work", type=Path, default=None, help="where outputs go (default: beside the models)")
    args = parser.parse_args()
    mergekit = args.mergekit_python.parent / "mergekit-yaml"
    if not mergekit.exists():
        sys.exit(f"no mergekit at {mergekit}; run benchmarks/merge_peer_check.py --setup first")
    models = ensure_models(args.models_dir)
    work = args.work or args.models_dir / "runs"
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rows, results = [], []
    for name in args.configs.split(","):
        config = work / f"{name}.yaml"
        config.write_text(configs(models)[name])
        ours_out, theirs_out = work / f"mindset-{name}", work / f"mergekit-{name}"
        ours, theirs = [], []
        identity = None
        for rep in range(args.reps):
            for out in (ours_out, theirs_out):
                shutil.rmtree(out, ignore_errors=True)
            warm(models)
            theirs.append(measure([str(mergekit), str(config), str(theirs_out), "--quiet"], env))
            warm(models)
            ours.append(measure([sys.executable, "-m", "mindset", "merge", str(config), "-o", str(ours_out), "--no-progress"], env))
            if rep == 0:
                identity = compare(ours_out, theirs_out)
            print(f"{name} rep {rep}: mergekit {theirs[-1][0]:.1f} s {theirs[-1][1]:.2f} GB, mindset {ours[-1][0]:.1f} s {ours[-1][1]:.2f} GB", flush=True)
        for out in (ours_out, theirs_out):
            shutil.rmtree(out, ignore_errors=True)
        t_theirs, t_ours = median([t for t, _ in theirs]), median([t for t, _ in ours])
        m_theirs, m_ours = median([m for _, m in theirs]), median([m for _, m in ours])
        identical = identity["equal"] == identity["tensors"] and not [n for n in identity["notes"] if "only" in n]
        rows.append([
            name, f"{t_theirs:.1f} s", f"{t_ours:.1f} s", f"{t_theirs / t_ours:.2f}×",
            f"{m_theirs:.2f} GB", f"{m_ours:.2f} GB", f"{m_ours / m_theirs:.2f}",
            f"{identity['equal']}/{identity['tensors']}" + ("" if identical else f" (max diff {identity['max_abs_diff']:.3g})"),
        ])  # fmt: skip
        results.append({"config": name, "yaml": configs(models)[name], "mergekit": theirs, "mindset": ours, "identity": identity})
    publish(
        __file__,
        "Merging three 370M-parameter fp32 Llamas: mergekit 0.1.5 vs mindset (separate processes, wall time and peak RSS)",
        ["config", "mergekit", "mindset", "speed-up", "mergekit peak RSS", "mindset peak RSS", "RSS ratio", "tensors identical"],
        rows,
        {"shape": SHAPE, "reps": args.reps, "results": results},
    )


if __name__ == "__main__":
    main()
