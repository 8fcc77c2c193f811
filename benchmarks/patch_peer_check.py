"""Peer check: mindset's activation patching and head ablation against TransformerLens's, same weights, same tokens.

    python benchmarks/patch_peer_check.py --setup      # once: transformer-lens 4.3.0 in its own venv
    python benchmarks/patch_peer_check.py [--models tiny-llama,tiny-gpt2,smollm2-135m] [--kinds resid,attn,mlp,heads] [--pairs 1]
    OMP_NUM_THREADS=1 python benchmarks/patch_peer_check.py --models smollm2-135m --pairs 2 --out benchmarks/patch_peer_check.smollm2.py

TransformerLens lives in its own virtual environment (default `$MINDSET_HOME/venvs/transformer-lens-4.3.0`,
made by `--setup`: `torch==2.13.0` first, then `transformer-lens==4.3.0`, so both sides run the same torch).
TransformerLens 4 has no HookedTransformer any more: its TransformerBridge wraps the HF model itself. The
HF folder (tiny models saved by `mindset.models.save`; SmolLM2 the folder mindset caches) is loaded with
transformers in that venv and handed to `TransformerBridge.boot_transformers(folder, hf_model=...)`, then
`enable_compatibility_mode(fold_ln=False, center_writing_weights=False, center_unembed=False,
fold_value_biases=False, refactor_factored_attn_matrices=False)`: the legacy hook names, weights untouched.

Per model and prompt pair, both directions: TransformerLens's `patching.get_act_patch_resid_pre`,
`_attn_out`, `_mlp_out` and `_attn_head_out_all_pos` with the logit difference as metric, against
`mindset.circuits.patch` (raw logit differences and the normalized grid); and zero ablation of each head
(`blocks.i.attn.hook_z[:, :, h] = 0`) scored as the drop in the answer's log-probability, against
`mindset.circuits.importance(..., "head")` on a one-document suite. Pass: every number within 1e-4.
The token ids are mindset's, passed to TransformerLens, so tokenization is not what is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

from mindset.models.gguf_cache import mindset_home  # noqa: E402

TL_VERSION = "4.3.0"
TL_VENV = mindset_home() / "venvs" / f"transformer-lens-{TL_VERSION}"
TOLERANCE = 1e-4
LOAD_NOTE = "timings: one thread (OMP_NUM_THREADS=1 on both sides), machine shared (2 cores, other engineers' runs alongside)"
PAIRS = {  # model -> [(clean, corrupted, answer, wrong)]
    "tiny": [("The capital of Spain is", "The capital of Italy is", "x", "y")],  # byte tokenizer: same length, one-byte answers
    "smollm2-135m": [
        ("The capital of France is", "The capital of Italy is", " Paris", " Rome"),
        # a different relation, landmark -> city, with a three-token subject on both sides (six tokens, three changed)
        ("The Eiffel Tower is in", "The Colosseum is in", " Paris", " Rome"),
        ("When Mary and John went to the store, John gave a drink to", "When Mary and John went to the store, Mary gave a drink to", " Mary", " John"),
    ],
}

# Runs inside TransformerLens's venv: argv[1] a request JSON (folder, token ids), argv[2] where to write the answers.
TL_SCRIPT = r'''
import json, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens import patching

req = json.load(open(sys.argv[1]))
hf = AutoModelForCausalLM.from_pretrained(req["folder"], dtype=torch.float32, attn_implementation="eager")
tok = AutoTokenizer.from_pretrained(req["folder"])
bridge = TransformerBridge.boot_transformers(req["folder"], hf_model=hf, tokenizer=tok, device="cpu")
bridge.enable_compatibility_mode(disable_warnings=True, fold_ln=False, center_writing_weights=False, center_unembed=False,
                                 fold_value_biases=False, refactor_factored_attn_matrices=False)
torch.set_grad_enabled(False)
FUNCS = {"resid": patching.get_act_patch_resid_pre, "attn": patching.get_act_patch_attn_out, "mlp": patching.get_act_patch_mlp_out,
         "heads": patching.get_act_patch_attn_head_out_all_pos}
out = {"pairs": []}
for pair in req["pairs"]:
    a, w = pair["answer"], pair["wrong"]
    metric = lambda logits: logits[0, -1, a] - logits[0, -1, w]
    clean, corrupted = torch.tensor([pair["clean"]]), torch.tensor([pair["corrupted"]])
    _, clean_cache = bridge.run_with_cache(clean)
    _, corrupted_cache = bridge.run_with_cache(corrupted)
    res = {"ld_clean": float(metric(bridge(clean))), "ld_corrupted": float(metric(bridge(corrupted))), "grids": {}, "seconds": {}}
    for direction, (target, cache) in {"denoise": (corrupted, clean_cache), "noise": (clean, corrupted_cache)}.items():
        for kind in req["kinds"]:
            began = time.perf_counter()
            res["grids"][f"{direction}/{kind}"] = FUNCS[kind](bridge, target, cache, metric).tolist()
            res["seconds"][f"{direction}/{kind}"] = time.perf_counter() - began
    ctx, cont = pair["gold"]
    x = torch.tensor([(ctx + cont)[:-1]])
    def logprob(logits):
        lp = torch.log_softmax(logits[0, len(ctx) - 1 :].float(), -1)
        return float(lp.gather(1, torch.tensor(cont)[:, None]).sum())
    base = logprob(bridge(x))
    drops = []
    for layer in range(bridge.cfg.n_layers):
        row = []
        for h in range(bridge.cfg.n_heads):
            def zero(z, hook, h=h):
                z[:, :, h] = 0.0
                return z
            row.append(base - logprob(bridge.run_with_hooks(x, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero)])))
        drops.append(row)
    res["head_ablation"] = drops
    out["pairs"].append(res)
json.dump(out, open(sys.argv[2], "w"))
'''


def setup(venv: Path) -> None:
    print(f"creating {venv}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # first, so transformer-lens keeps this torch
    subprocess.run([*pip, f"transformer-lens=={TL_VERSION}"], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-c", "import torch, transformer_lens; print('transformer-lens venv: torch', torch.__version__)"], check=True)


def mindset_side(loaded, pairs, kinds) -> tuple[list[dict], list[dict]]:
    """(requests for TransformerLens: token ids; mindset's answers) per prompt pair."""
    from mindset.circuits import ChanceWarning, importance, make_suite
    from mindset.circuits.patching import patch
    from mindset.evaluate.loglikelihood import encode_request

    requests, answers = [], []
    for clean, corrupted, answer, wrong in pairs:
        tok = loaded.tokenizer
        (c_ids, a_ids), (k_ids, w_ids) = encode_request(tok, clean, answer), encode_request(tok, corrupted, wrong)
        requests.append({"clean": c_ids, "corrupted": k_ids, "answer": a_ids[0], "wrong": w_ids[0], "gold": [c_ids, a_ids]})
        res = {"grids": {}, "raw": {}, "seconds": {}}
        for direction in ("denoise", "noise"):
            began = time.perf_counter()
            result = patch(loaded, clean, corrupted, answer, wrong, direction=direction, what=kinds, batch=64)
            res["seconds"][direction] = time.perf_counter() - began
            res["ld_clean"], res["ld_corrupted"] = result.logit_diff_clean, result.logit_diff_corrupted
            for kind in kinds:
                res["raw"][f"{direction}/{kind}"], res["grids"][f"{direction}/{kind}"] = result.logit_diffs[kind], result.grids[kind]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChanceWarning)
            heads = importance(loaded, make_suite("pair", [(clean, [answer, wrong], 0)]), "head", batch=64)
        res["head_ablation"] = heads.grid().tolist()
        answers.append(res)
    return requests, answers


def compare(ours: dict, theirs: dict) -> dict[str, float]:
    """Largest |mindset − TransformerLens| per quantity (raw logit differences, normalized grids, head ablation drops)."""
    span = theirs["ld_clean"] - theirs["ld_corrupted"]
    diffs = {"logit diff (clean, corrupted)": max(abs(ours["ld_clean"] - theirs["ld_clean"]), abs(ours["ld_corrupted"] - theirs["ld_corrupted"]))}
    for key, grid in theirs["grids"].items():
        tl = np.asarray(grid, dtype=float)
        diffs[f"{key} logit diff"] = float(np.abs(np.asarray(ours["raw"][key]) - tl).max())
        diffs[f"{key} normalized"] = float(np.abs(np.asarray(ours["grids"][key]) - (tl - theirs["ld_corrupted"]) / span).max())
    diffs["head zero-ablation drop"] = float(np.abs(np.asarray(ours["head_ablation"]) - np.asarray(theirs["head_ablation"])).max())
    return diffs


def run_peer(python: Path, folder: Path, requests: list[dict], kinds: list[str]) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tl-peer-"))
    (work / "tl.py").write_text(TL_SCRIPT)
    (work / "request.json").write_text(json.dumps({"folder": str(folder), "pairs": requests, "kinds": kinds}))
    began = time.perf_counter()
    proc = subprocess.run([str(python), str(work / "tl.py"), str(work / "request.json"), str(work / "out.json")], capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1]}
    return {**json.loads((work / "out.json").read_text()), "seconds_total": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="store_true", help=f"create TransformerLens's venv at {TL_VENV}")
    parser.add_argument("--venv", type=Path, default=TL_VENV)
    parser.add_argument("--models", default="tiny-llama,tiny-gpt2,smollm2-135m")
    parser.add_argument("--kinds", default="resid,attn,mlp,heads")
    parser.add_argument("--pairs", type=int, default=None, help="only the first N prompt pairs of each model")
    parser.add_argument("--out", default=__file__, help="write the table's JSON beside this path")
    args = parser.parse_args()
    if args.setup:
        setup(args.venv)
        return
    python = args.venv / "bin" / "python"
    if not python.exists():
        sys.exit(f"no TransformerLens venv at {args.venv}; run: python benchmarks/patch_peer_check.py --setup")
    from mindset.models import load, save

    kinds = args.kinds.split(",")
    work = Path(tempfile.mkdtemp(prefix="patch-peer-"))
    rows, data, ok = [], {"kinds": kinds, "tolerance": TOLERANCE, "transformer_lens": TL_VERSION, "threads": torch.get_num_threads(),
                          "load": LOAD_NOTE, "models": {}}, True
    for spec in args.models.split(","):
        loaded = load(spec, device="cpu", dtype="float32")
        folder = loaded.source.weights if loaded.source.weights else save(loaded, work / spec)
        pairs = PAIRS.get(spec, PAIRS["tiny"])[: args.pairs]
        requests, ours = mindset_side(loaded, pairs, kinds)
        del loaded
        theirs = run_peer(python, Path(folder), requests, kinds)
        if "error" in theirs:
            ok = False
            rows.append([spec, "—", "TransformerLens could not run: " + theirs["error"][:100], "—", "—", "—"])
            data["models"][spec] = {"error": theirs["error"]}
            continue
        for (clean, corrupted, *_), mine, peer in zip(pairs, ours, theirs["pairs"]):
            diffs = compare(mine, peer)
            worst = max(diffs.values())
            ok &= worst <= TOLERANCE
            t_ours, t_tl = sum(mine["seconds"].values()), sum(peer["seconds"].values())
            rows.append([spec, f"{clean!r} / {corrupted!r}", f"{worst:.1e}", f"{t_ours:.1f}", f"{t_tl:.1f}", "equal" if worst <= TOLERANCE else "DIFFERENT"])
            data["models"].setdefault(spec, []).append({"clean": clean, "corrupted": corrupted, "max_abs_diff": diffs, "mindset_patch_s": mine["seconds"],
                                                        "tl_patch_s": peer["seconds"], "ld_clean": peer["ld_clean"], "ld_corrupted": peer["ld_corrupted"]})
    publish(args.out, f"Peer check: mindset vs TransformerLens {TL_VERSION} — activation patching ({', '.join(kinds)}; denoise and noise) and head zero-ablation",
            ["model", "prompt pair", "max |mindset − TL|", "mindset patch s (batched)", "TL patch s", "verdict"], rows, {**data, "all_equal": ok})
    if not ok:
        print("FAIL: mindset and TransformerLens differ")
        sys.exit(1)
    print(f"every number within {TOLERANCE} of TransformerLens's")


if __name__ == "__main__":
    main()
