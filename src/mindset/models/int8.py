"""Int8 weights on the CPU: `load(spec, dtype="int8")`, for generation (chat, serve, eval).

Weight-only int8 with one symmetric scale per output row (absmax / 127) for the Linear layers of every
attention block and MLP, and for the output head; the embedding, the norms and the residual stream stay
fp32. The matmul is torch's own int8-weight kernel, `torch._weight_int8pack_mm` (the one gpt-fast's int8
mode calls): it reads the int8 weight directly, a quarter of fp32's bytes, which is what a one-token
decode step is bound by.

On x86 that kernel is vectorized (AVX512 / AVX2) for bf16 activations only; its fp32 and fp16 paths are
scalar loops, several times slower than fp32 BLAS. So a kernel call rounds its input to bf16, accumulates
in fp32 and rounds the output to bf16, then returns the input's dtype. The kernel's inner loop steps K by
16 with no tail (another K reads garbage or past the row) and loads rows with aligned loads, so it is
used only when in_features % 16 == 0, on a CPU, with no gradient wanted; anywhere else the layer
dequantizes the weight and runs a float matmul (exact to the rounded weight, no faster than fp32).
The scale is rounded to bf16 before the weights are rounded against it, so both paths apply the same
int8 weight times the same scale: the kernel adds only the activation and output rounding.

Projections that read the same input are fused: q, k and v of an attention block, gate and up of a gated
MLP. Their int8 rows are concatenated into one matrix and the members' weights become views of its row
ranges, so the first member called runs one kernel call for all of them (one activation read, one bf16
cast) and the others take their slice of that output. Each output row is the same dot product over the
same int8 row and scale either way, so fusing changes no number (tests check bitwise equality).

Int8 models are for inference: they do not train, take surgery, or save (load the float model for that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mindset.errors import MindsetError

INT8 = "int8"
KERNEL_K_MULTIPLE = 16  # the AVX512 loop's step over K (AVX2's is 8)
_ALIGN = 64  # bytes: the kernel's aligned loads need rows on 32-byte boundaries; torch's allocator gives 64


def kernel_available() -> bool:
    """Whether this torch has the CPU int8-weight kernel (torch >= 2.3)."""
    return hasattr(torch, "_weight_int8pack_mm")


def _round_scale(scale: torch.Tensor, kernel: bool) -> torch.Tensor:
    """The kernel reads scales in bf16: round them first, so that the int8 weights are rounded against the
    scale the kernel will actually apply (no extra per-row error)."""
    return scale.to(torch.bfloat16).float() if kernel else scale


class Int8WeightLinear(nn.Module):
    """y = x · (W_int8 · scale[:, None])ᵀ + b, W_int8 = round(W / scale), scale = max|W row| / 127.

    kernel=True: torch's int8 kernel where it runs (CPU, in_features % 16 == 0, no grad), bf16 activations.
    kernel=False: dequantize and float matmul at each call, in the input's dtype: the exact reference.
    """

    def __init__(self, linear: nn.Module, *, kernel: bool = False):
        super().__init__()
        weight, bias = _weight_and_bias(linear)
        weight = weight.detach().float()
        scale = _round_scale(weight.abs().amax(dim=1).clamp(min=1e-12) / 127, kernel)
        self.out_features, self.in_features = weight.shape
        self.kernel = kernel
        self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous())
        self.register_buffer("scale", scale)
        self.register_buffer("scale_bf16", scale.to(torch.bfloat16), persistent=False)  # the kernel's scale dtype
        self.register_buffer("bias", bias.detach().clone() if bias is not None else None)

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight this layer applies, (out, in): what the reference matmul multiplies by."""
        return self.weight_int8.to(dtype) * self.scale.to(dtype)[:, None]

    def uses_kernel(self, x: torch.Tensor) -> bool:
        return (
            self.kernel
            and x.device.type == "cpu"
            and self.in_features % KERNEL_K_MULTIPLE == 0
            and not (x.requires_grad and torch.is_grad_enabled())  # the kernel has no backward
            and kernel_available()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.uses_kernel(x):
            return F.linear(x, self.dequantized_weight(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
        fused = self.__dict__.get("fused")  # (Fusion, this layer's rows in it)
        y = fused[0].output(fused[1], x) if fused is not None else kernel_matmul(x, self.weight_int8, self.scale_bf16)
        return y if self.bias is None else y + self.bias.to(y.dtype)

    def extra_repr(self) -> str:
        route = "torch int8 kernel, bf16 activations" if self.kernel else "dequantized float matmul"
        route += ", fused with the projections reading its input" if "fused" in self.__dict__ else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight-only ({route})"


def kernel_matmul(x: torch.Tensor, weight_int8: torch.Tensor, scale_bf16: torch.Tensor) -> torch.Tensor:
    """x (..., K) times the int8 weight (N, K) and its bf16 scales through torch's kernel, in x's dtype."""
    rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
    if not rows.is_contiguous() or rows.data_ptr() % _ALIGN:
        rows = rows.clone(memory_format=torch.contiguous_format)
    return torch._weight_int8pack_mm(rows, weight_int8, scale_bf16).to(x.dtype).view(*x.shape[:-1], weight_int8.shape[0])


class Fusion:
    """Several Int8WeightLinear layers that read the same input, as one kernel call.

    Holds the concatenated int8 rows and scales; each member's weight_int8 and scale become views of its
    row range (no second copy). A member called with a tensor the group has not seen computes every
    member's output at once and keeps it until each member has taken its slice; a member called with the
    input just computed takes its slice. The group is a plain object, not a module, so nothing counts or
    saves its tensors twice.
    """

    def __init__(self, members: list[Int8WeightLinear]):
        self.weight_int8 = torch.cat([m.weight_int8 for m in members]).contiguous()
        scale = torch.cat([m.scale for m in members])
        self.scale_bf16 = scale.to(torch.bfloat16)
        self.starts: list[int] = []
        start = 0
        for m in members:
            rows = slice(start, start + m.out_features)
            m.weight_int8, m.scale, m.scale_bf16 = self.weight_int8[rows], scale[rows], self.scale_bf16[rows]
            m.__dict__["fused"] = (self, rows)  # a plain attribute, not a submodule
            self.starts.append(start)
            start = rows.stop
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None
        self._waiting: set[int] = set()

    def output(self, rows: slice, x: torch.Tensor) -> torch.Tensor:
        """A member's output for x (before its bias): its `rows` of the fused product."""
        if x is not self._input:
            self._input, self._output = x, kernel_matmul(x, self.weight_int8, self.scale_bf16)
            self._waiting = set(self.starts)
        y = self._output[..., rows]
        self._waiting.discard(rows.start)
        if not self._waiting:  # every member has its slice: drop the references to x and the product
            self._input = self._output = None
        return y


def fusion_groups(model: nn.Module) -> list[list[str]]:
    """Module paths of the projections that read the same input, per block: [q, k, v] where the attention has
    separate ones, [gate, up] where the MLP is gated. Read from the float model's anatomy (before quantizing)."""
    from mindset.models.anatomy import blocks

    path_of = {id(module): name for name, module in model.named_modules()}
    groups = []
    for block in blocks(model):
        attention, ffn = block.attention, block.ffn
        for members in ([attention.q, attention.k, attention.v], [ffn.gate, ffn.up] if ffn.layout == "gated" else []):
            if len(members) > 1 and all(m is not None and type(m) is nn.Linear for m in members):
                groups.append([path_of[id(m)] for m in members])
    return groups


def _weight_and_bias(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight (out, in), bias) of an nn.Linear or GPT-2's Conv1D (whose weight is stored (in, out))."""
    from mindset.models.anatomy import is_conv1d

    if isinstance(module, nn.Linear):
        return module.weight, module.bias
    if is_conv1d(module):
        return module.weight.T, module.bias
    raise MindsetError(f"a {type(module).__name__} is not a projection int8 can replace (nn.Linear or GPT-2's Conv1D)")


def int8_targets(model: nn.Module, *, head: bool = True) -> list[str]:
    """Module paths of the projections `--dtype int8` replaces: every Linear (or Conv1D) inside an attention
    block or MLP, and the output head when `head` (it is untied from the embedding, which stays fp32)."""
    from mindset.models.anatomy import blocks, is_projection

    prefixes = tuple(p + "." for b in blocks(model) for p in (b.attn_path, b.mlp_path))
    names = [name for name, module in model.named_modules() if name.startswith(prefixes) and is_projection(module)]
    output = model.get_output_embeddings() if head else None
    if isinstance(output, nn.Linear):
        names += [name for name, module in model.named_modules() if module is output]
    return names


def quantize_int8(model: nn.Module, *, head: bool = True, kernel: bool = True, fuse: bool = True) -> nn.Module:
    """Replace `int8_targets(model)` in place by Int8WeightLinear layers; returns the model, marked int8.
    fuse (with kernel): projections that read the same input share one kernel call (`Fusion`)."""
    groups = fusion_groups(model) if fuse and kernel else []
    for name in int8_targets(model, head=head):
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, Int8WeightLinear(getattr(owner, child), kernel=kernel))
    for paths in groups:
        Fusion([model.get_submodule(path) for path in paths])
    model.mindset_int8 = True
    return model


def is_int8(model) -> bool:
    """Whether a model (HF model or LoadedModel) holds int8 weight layers."""
    model = model.model if hasattr(model, "tokenizer") and hasattr(model, "model") else model
    return bool(getattr(model, "mindset_int8", False)) or any(isinstance(m, Int8WeightLinear) for m in model.modules())


def refuse_int8(model, what: str) -> None:
    """A clear error where int8 weights cannot apply (training, surgery, saving)."""
    if is_int8(model):
        raise MindsetError(f"{what} needs float weights, but this model was loaded with --dtype int8 (inference only); load it with --dtype float32")


def check_int8_device(device: str | torch.device | None) -> str | torch.device:
    """The device an int8 load runs on: 'auto' means the CPU (even with a GPU present); another device is
    an error, since the kernel mindset relies on is torch's CPU one. Unknown names are left to resolve_device."""
    if device is None or str(device) == "auto":
        device = "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        return device
    if kind != "cpu":
        raise MindsetError(f"--dtype int8 runs on the CPU (torch's int8-weight kernel), not on {device}; use --device cpu, or --dtype bfloat16 on a GPU")
    if not kernel_available():
        raise MindsetError(f"--dtype int8 needs torch's int8 kernel (torch >= 2.3), and this torch is {torch.__version__}; upgrade torch or use --dtype float32")
    return device
