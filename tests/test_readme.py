"""What the README's tour says is what its commands do."""

import fnmatch
import re
import shlex
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text()


def _tour_command(name: str) -> list[str]:
    tour = README.split("## A tour", 1)[1].split("```", 2)[1].replace("\\\n", " ")
    line = next(line for line in tour.splitlines() if line.startswith(f"mindset {name}"))
    return shlex.split(line.split("  #", 1)[0])


def test_the_tour_distills_only_the_blocks_the_surgery_converted():
    surgery = _tour_command("surgery ffn-to-memory")
    converted = {int(i) for i in surgery[surgery.index("--layers") + 1].split(",")}
    distill = _tour_command("distill")
    patterns = [distill[i + 1] for i, arg in enumerate(distill) if arg == "--trainable"]
    # SmolLM2's parameter names (30 blocks); a converted block keeps its module path, model.layers.N.mlp
    names = [f"model.layers.{n}.{part}.weight" for n in range(30) for part in
             ("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm")]
    names += ["model.embed_tokens.weight", "model.norm.weight"]
    trained = {name for name in names if any(fnmatch.fnmatch(name, p) for p in patterns)}
    layers = {int(re.match(r"model\.layers\.(\d+)\.", name).group(1)) for name in trained}
    assert patterns and layers == converted
    assert all(".mlp." in name for name in trained)
