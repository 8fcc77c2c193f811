"""Parts of benchmarks/ui_latency.py: an edit + quick measurement per edit kind, and the background jobs
(importance map, heal) and memory edits, each over HTTP beside the same work called directly."""

from __future__ import annotations

import time

FINISHED = ("done", "failed", "cancelled")
MEMORY_TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. "
               "However little known the feelings or views of such a man may be on his first entering a neighbourhood.")  # fmt: skip


def check(response):
    if response.is_error:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}")
    return response.json()


def shape(loaded) -> tuple[int, int, int]:
    """(a middle layer, not the first, heads per kv group, the model's depth)."""
    from mindset.models.anatomy import blocks

    found = blocks(loaded.model)
    att = found[0].attention
    return max(1, len(found) // 3), att.n_heads // att.n_kv_heads, len(found)


def kinds_for(loaded) -> list[tuple[str, dict]]:
    """One edit of every kind the Edit view offers for a plain model (grow_saturated and prune_closed need gates
    first; distill is the heal job), on a middle layer."""
    mid, group, depth = shape(loaded)
    d_ff = _d_ff(loaded, mid)
    return [
        ("insert_layers", {"after": mid, "n": 2, "init": "identity"}),
        ("drop_layers", {"layers": [mid]}),
        ("duplicate_layers", {"layers": [mid]}),
        ("move_layer", {"src": mid, "dst": 0}),
        ("add_heads", {"layers": [mid], "n": group}),
        ("remove_heads", {"heads": f"{mid}:" + ",".join(str(h) for h in range(group))}),  # one whole kv group
        ("widen_ffn", {"layers": [mid], "add": 256, "init": "split", "noise": 1.0}),
        ("narrow_ffn", {"layers": [mid], "width": d_ff // 2}),
        ("head_gates", {"layers": [mid]}),
        ("layerwise_feedback", {"pairs": f"{mid // 2}:{mid}"}),
        ("embedding_shim", {}),
        ("ffn_to_memory", {"layers": [mid], "kind": "featural", "k": 32}),  # associative: in job_rows, with memorize
    ]


def _d_ff(loaded, layer: int) -> int:
    from mindset.models.anatomy import blocks

    return blocks(loaded.model)[layer].ffn.d_ff


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def kind_rows(client, loaded, row, reps: int) -> None:
    """Per edit kind: POST /api/edits (edit + KL on the probes + top-5), then undo; beside the same recipe step run
    directly on a copy (ops.apply_op: no HTTP, lock, history or measurement), alternated so load hits both alike."""
    import statistics

    from mindset.ui.ops import apply_op, parse_params

    for op, params in kinds_for(loaded):
        parsed = parse_params(op, params)
        ui, direct = [], []
        for _ in range(reps):
            ui.append(timed(lambda op=op, params=params: (check(client.post("/api/edits", json={"op": op, "params": params})),
                                                          check(client.post("/api/undo", json={"measure": False})))))  # fmt: skip
            direct.append(timed(lambda op=op, parsed=parsed: apply_op(loaded, op, parsed)))
        kind = f"{op} ({params['kind']})" if op == "ffn_to_memory" else op
        row(f"edit kind {kind} + KL + top-5 (and undo)", statistics.median(ui), statistics.median(direct), "≤ 10 s")


def wait_job(client, job_id: str, timeout: float = 3600) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = check(client.get(f"/api/jobs/{job_id}"))
        if job["state"] in FINISHED:
            if job["state"] != "done":
                raise RuntimeError(f"job {job_id} {job['state']}: {job['error']}")
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still running after {timeout:.0f} s")


def run_job(client, kind: str, params: dict) -> float:
    """POST /api/jobs, then GET /api/jobs/{id} until done: the wall time a page waits."""
    start = time.perf_counter()
    started = check(client.post("/api/jobs", json={"kind": kind, "params": params}))
    wait_job(client, started["id"])
    return time.perf_counter() - start


IMPORTANCE = {"granularity": ["head", "mlp"], "limit": 8, "estimate": "attribution"}  # what the page's button starts


def job_rows(client, bench, row, heal_steps: int, reps: int = 1) -> None:
    """The importance job, a heal of `heal_steps` steps after a noisy widening, and the memory edits. `bench` is the
    server's workbench (the benchmark serves it in this process): the direct baselines start from its current model."""
    import statistics

    from mindset.circuits.importance import importance
    from mindset.models.names import list_components
    from mindset.ui.ops import apply_op, parse_params, working_copy

    def both(label: str, ui_fn, direct_fn, goal: str = "") -> None:
        ui, direct = [], []
        for _ in range(reps):
            ui.append(timed(ui_fn))
            direct.append(timed(direct_fn))
        row(label, statistics.median(ui), statistics.median(direct), goal)

    loaded = bench.original
    names = [c.name for g in IMPORTANCE["granularity"] for c in list_components(loaded.model, g)]
    both(f"job importance ({len(names)} heads + FFNs, 8 capitals docs, attribution)", lambda: run_job(client, "importance", IMPORTANCE),
         lambda: importance(working_copy(loaded), "capitals", components=names, limit=8, estimate="attribution"))  # fmt: skip

    mid, _, _ = shape(loaded)
    check(client.post("/api/edits", json={"op": "widen_ffn", "params": {"layers": [mid], "add": 256, "init": "split", "noise": 1.0}, "measure": False}))
    widened = bench.current
    heal = {"steps": heal_steps, "batch_size": 2, "seq_len": 32, "lr": 0.001, "warmup_steps": 1, "valid_every": 0, "trainable": [f"L{mid}"]}
    parsed = parse_params("distill", heal)

    def ui_heal() -> None:
        run_job(client, "heal", heal)
        check(client.post("/api/undo", json={"measure": False}))

    both(f"job heal ({heal_steps} steps of 2x32 tokens, after a noisy widening)", ui_heal, lambda: apply_op(widened, "distill", parsed, bench.spec))
    check(client.post("/api/undo", json={"measure": False}))

    to_memory = {"layers": [mid], "kind": "associative", "capacity": 4096, "k": 8}
    both("edit ffn_to_memory (associative) + KL + top-5", lambda: check(client.post("/api/edits", json={"op": "ffn_to_memory", "params": to_memory})),
         lambda: apply_op(loaded, "ffn_to_memory", parse_params("ffn_to_memory", to_memory)))  # fmt: skip
    for _ in range(reps - 1):
        check(client.post("/api/undo", json={"measure": False}))  # one conversion left applied
    converted = bench.current
    text = {"text": MEMORY_TEXT}

    def ui_memorize() -> None:
        check(client.post("/api/edits", json={"op": "memorize", "params": text}))
        check(client.post("/api/undo", json={"measure": False}))

    both(f"edit memorize ({len(MEMORY_TEXT)} characters) + KL + top-5 (and undo)", ui_memorize, lambda: apply_op(converted, "memorize", parse_params("memorize", text)))
    check(client.post("/api/undo", json={"measure": False}))

