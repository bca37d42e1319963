# %% [markdown]
# # The fused kernels: T2S and S2T in Triton
#
# CAST's bottleneck cross-attention (B-CA) attends inside *windows*: T2S (window = time)
# and S2T (window = space). This guide explains what the package's two Triton kernels
# fuse and why that matters, checks them against the pure-torch reference — forward and
# backward, float32 and bfloat16 — shows the switch that turns them on and off inside a
# model, and runs the attention-core benchmark behind `ca2st bench kernels`.
#
# **What you need:** torch and Triton (`pip install -c .ci/constraints.txt -e
# ".[torch,triton,demo]"`), and about half a minute. A GPU is *not* needed: without one,
# the kernels run in the **Triton interpreter** on the CPU (`TRITON_INTERPRET=1`), which
# executes the same kernel code with numpy. That checks that they compute the right
# numbers; it says nothing about their speed. This notebook ran on a CPU, in the
# interpreter.
#
# Triton reads `TRITON_INTERPRET` when it is first imported — and Keras's torch backend
# imports it — so the first cell sets it, with `KERAS_BACKEND`, before anything else.

# %%
import os

os.environ["TRITON_INTERPRET"] = "1"  # before torch / Keras / Triton are imported
os.environ["KERAS_BACKEND"] = "torch"  # the kernels are torch ops

import keras
import torch
from IPython.display import Image, Markdown

from keras_ca2st import kernels

print(
    f"Keras {keras.__version__} on {keras.config.backend()}, torch {torch.__version__}"
)
print(f"CUDA: {torch.cuda.is_available()}, Triton interpreter: {kernels.interpreted()}")
print("kernels available on CPU tensors:", kernels.available(torch.zeros(1)))

# %%
# ── Settings ──────────────────────────────────────────────────────────────────
# tiny (interpreter on a CPU)   # CAST-B on a GPU (SPEC §12; `ca2st bench kernels`)
BATCH = 1  #                      8 and 32
FRAMES = 4  #                     8 (time steps T)
PATCHES = 9  #                    196 (14 × 14 patches N per frame)
CHANNELS = 32  #                  384 (the B-CA bottleneck: 768 / 2)
HEADS = 2  #                      12 (head dim 32)
BENCH_DTYPE = "float32"  #        "bfloat16"
BENCH_REPS = 3  #                 triton.testing.do_bench (25 ms warm-up, 100 ms)

# %% [markdown]
# ## 1. What the kernels fuse
#
# CLIP (space) and VideoMAE (time) share one token grid: `T` time steps × `N` patches,
# `C` bottleneck channels. A window is a choice of which tokens attend to which:
#
# | direction | window | windows | queries × keys | at CAST-B |
# |---|---|---|---|---|
# | T2S (CLIP queries, VideoMAE keys) | time: one per patch position | `B·N` | `T × T` | `B·196` windows of 8 × 8 |
# | S2T (VideoMAE queries, CLIP keys) | space: one per frame | `B·T` | `N × N'` | `B·8` windows of 196 × 196 |
#
# The reference code (and the plain `keras.ops` path) **regroups**: it copies queries,
# keys and values into `(windows, L, C)` tensors with permute / reshape, runs attention
# (einsum + softmax, or `scaled_dot_product_attention`), and copies the result back to
# `(B, T, N, C)`. Each copy reads and writes a whole tensor. The kernels read every window
# **where it already lies** — the query is even a strided view of the CLIP stream with
# its CLS token sliced off — split heads by column offset, keep the softmax in registers
# (log-sum-exp saved for the backward), and write the output once, in the layout the
# output projection reads. T2S does about 4 flops per byte moved, so it is bound by
# memory traffic: the copies are most of its cost. S2T is a FlashAttention-2 loop over the 196
# keys of a frame, with a masked tail. Both have their own backward kernels, registered
# as torch custom ops (`torch.ops.keras_ca2st.*`) with autograd and fake
# implementations, so eager mode, `model.fit` and `torch.compile` all use them.
#
# The windows, cut by the same `group` the model runs (`keras_ca2st.kernels.windows`):

# %%
import numpy as np

from keras_ca2st.kernels.windows import NUMPY_OPS, get_window

grid = np.zeros((BATCH, FRAMES, PATCHES, CHANNELS))  # (B, T, N, C)
for name in ("time", "space"):
    window = get_window(name)
    q, kv = window.group(
        grid, np.zeros((BATCH, FRAMES, PATCHES, 2 * CHANNELS)), NUMPY_OPS
    )
    print(
        f"{name:5} window: queries {q.shape}, keys/values {kv.shape}, "
        f"fused kernel: {window.kernel}"
    )

# %% [markdown]
# What the regrouping costs in memory traffic at CAST-B (bf16, per clip, forward): the
# minimum is reading `q`, `k`, `v` once and writing `out` once (plus one fp32
# log-sum-exp per row and head); regrouping adds a read and a write of `q`, `k`, `v` on
# the way in and of `out` on the way back, before attention itself reads them again.

# %%
from keras_ca2st.benchmarks.attention import CAST_B, min_bytes

unit = CAST_B["frames"] * CAST_B["patches"] * CAST_B["channels"] * 2  # one tensor
for window, label in (("time", "T2S"), ("space", "S2T")):
    fused = min_bytes(window, 1, *CAST_B.values(), 2, backward=False)
    regroup = fused + 2 * 4 * unit  # + read and write of q, k, v and out
    print(
        f"{label}: fused {fused / 1e6:.1f} MB, regroup + attention ≥ "
        f"{regroup / 1e6:.1f} MB per clip ({regroup / fused:.1f}× the traffic)"
    )

# %% [markdown]
# ## 2. Correctness against the reference, forward and backward
#
# `kernels.time_window_attention(query, key_value, num_heads)` and
# `kernels.space_window_attention(...)` are the public ops; `key_value` holds the keys
# in its first `C` channels and the values in the last `C`.
# `kernels.time_window_attention_reference` / `space_window_attention_reference` spell
# out the same attention in plain torch (regroup + einsum, fp32 softmax) and return
# `(out, lse)`. Below, the query is a strided view of a CLIP-like stream with its CLS
# row sliced off, as in the model; S2T gets more key patches than query patches
# (`N' ≠ N`). Gradients flow back through torch autograd on both sides.

# %%
TOLERANCE = {torch.float32: 2e-5, torch.bfloat16: 3e-2}  # the tests' atol and rtol


def attend(fn, stream, key_value, grad, dtype):
    """out, d stream, d key_value of `fn` on the CLS-sliced view of `stream`."""
    stream = stream.to(dtype).detach().clone().requires_grad_()
    key_value = key_value.to(dtype).detach().clone().requires_grad_()
    query = stream.view(BATCH, FRAMES, 1 + PATCHES, CHANNELS)[:, :, 1:]
    out = fn(query, key_value, HEADS)
    out.backward(grad.to(dtype))
    return [x.detach().float() for x in (out, stream.grad, key_value.grad)]


def reference_out(reference):
    return lambda query, key_value, heads: reference(query, key_value, heads)[0]


generator = torch.Generator().manual_seed(0)
rows = {}
for window, label in (("time", "T2S"), ("space", "S2T")):
    key_patches = PATCHES if window == "time" else PATCHES + 3
    shape = (BATCH, FRAMES, key_patches, 2 * CHANNELS)
    stream = torch.randn(BATCH * FRAMES, 1 + PATCHES, CHANNELS, generator=generator)
    key_value = torch.randn(*shape, generator=generator)
    grad = torch.randn(BATCH, FRAMES, PATCHES, CHANNELS, generator=generator)
    fused = getattr(kernels, f"{window}_window_attention")
    reference = getattr(kernels, f"{window}_window_attention_reference")
    want = attend(reference_out(reference), stream, key_value, grad, torch.float32)
    for dtype in (torch.float32, torch.bfloat16):
        got = attend(fused, stream, key_value, grad, dtype)
        tolerance = TOLERANCE[dtype]
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=tolerance, rtol=tolerance)
        errors = [float((g - w).abs().max()) for g, w in zip(got, want, strict=True)]
        rows[f"{label} {str(dtype)[6:]}"] = dict(
            zip(("out", "d_query", "d_key_value"), errors, strict=True),
            tolerance=tolerance,
            largest=float(max(w.abs().max() for w in want)),
        )
    print(f"{label}: query {tuple(want[0].shape)}, keys/values {shape}: matches")

# %%
from keras_ca2st.reports.training_plots import results_table

Markdown(
    results_table(
        rows,
        {
            "out": "max error, out",
            "d_query": "max error, d query",
            "d_key_value": "max error, d key/value",
            "tolerance": "tests' tolerance",
            "largest": "largest reference value",
        },
    ).replace("| model |", "| kernel, dtype |")
)

# %% [markdown]
# In float32 the kernels match the reference to the last bits (they use IEEE fp32 dot
# products; only the summation order differs). In bfloat16 the inputs themselves are
# rounded to 8 bits of mantissa (relative error 4e-3), so errors of 1e-2 on values of
# order 1–5 are what bf16 allows; the reference ran in float32 on the unrounded inputs.
# Under the interpreter bf16 tiles are computed in fp32 (numpy has no bf16 arithmetic);
# on a GPU the kernels do bf16 matmuls with fp32 accumulation, as FlashAttention does.
# The test suite (`tests/kernels/`) checks more awkward shapes — frame counts that are
# not powers of two, patch counts that leave tails in every block, masked head dims —
# in fp32, fp16 and bf16, and `torch.library.opcheck` on every op.
#
# ## 3. The switch: `auto`, `triton`, `off`
#
# Inside a model the kernels are picked by one switch, read on every call:
#
# - `"auto"` (default): on torch, the Triton kernels for T2S / S2T when the tensors are on
#   a CUDA device and Triton is installed; `scaled_dot_product_attention` for the
#   space-time and global (audio ↔ visual) windows; on JAX `jax.nn.dot_product_attention`;
#   the plain `keras.ops` path otherwise (TensorFlow, torch on a CPU);
# - `"triton"`: like `"auto"`, but T2S / S2T always use the kernels, on any device —
#   on a CPU that needs the interpreter; this is how the tests check kernels in a model;
# - `"off"`: never fused, always the plain path.
#
# Set it with `keras_ca2st.kernels.set_fused_attention(mode)` for the process, the
# `fused_attention(mode)` context manager for a block of code, or the environment
# variable `KERAS_CA2ST_FUSED_ATTENTION=auto|triton|off`. Below, a tiny CAST (CLIP +
# VideoMAE, T2S and S2T in its one block) runs under each mode; its autograd graph shows
# which kernels ran, and the features and weight gradients of `"triton"` match `"off"`.

# %%
import re

from keras_ca2st import CA2STBackbone, CLIPVisionEncoder, VideoMAEEncoder
from keras_ca2st.kernels import fused_attention, fused_attention_mode

keras.utils.set_random_seed(0)
size = dict(
    image_size=32,
    patch_size=8,
    num_frames=2 * FRAMES,  # CLIP takes every other frame, VideoMAE 2-frame tubelets
    hidden_dim=2 * CHANNELS,
    num_layers=1,
    num_heads=HEADS,
    intermediate_dim=4 * CHANNELS,
)
cast = CA2STBackbone(
    experts={"spatial": CLIPVisionEncoder(**size), "temporal": VideoMAEEncoder(**size)},
    pairs=[{"experts": ["spatial", "temporal"]}],
    cross_attention_heads=HEADS,
)
# Random values everywhere: B-CA's up-projections start at zero, which would hide the
# exchange from the comparison.
rng = np.random.default_rng(0)
cast.set_weights(
    [
        rng.normal(0, 0.2, w.shape).astype(w.dtype)
        if "float" in str(w.dtype)
        else keras.ops.convert_to_numpy(w)
        for w in cast.weights
    ]
)
video = torch.tensor(
    rng.normal(size=(BATCH, 2 * FRAMES, 32, 32, 3)), dtype=torch.float32
)


def fused_ops(tensor):
    """The keras_ca2st kernels in the autograd graph that computed `tensor`."""
    found, seen, todo = set(), set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        match = re.search(r"keras_ca2st_(\w+?)_default", node.name())
        if match:
            found.add(f"keras_ca2st::{match[1]}")
        todo.extend(next_node for next_node, _ in node.next_functions)
    return sorted(found)


def run(mode):
    """Features, weight gradients and the fused kernels that ran under `mode`."""
    with fused_attention(mode):
        features = cast({"video": video})
        loss = sum((f**2).sum() for f in features.values())
        grads = torch.autograd.grad(loss, [w.value for w in cast.trainable_weights])
    return {k: f.detach() for k, f in features.items()}, grads, fused_ops(loss)


print("mode now:", fused_attention_mode())
results = {mode: run(mode) for mode in ("auto", "triton", "off")}
for mode, (_, _, ops) in results.items():
    print(f"{mode:>6}: {ops or 'no fused op (plain keras.ops path)'}")
(features, grads, _), (plain, plain_grads, _) = results["triton"], results["off"]
feature_error = max(float((features[k] - plain[k]).abs().max()) for k in plain)
grad_error = max(
    float((a - b).abs().max()) for a, b in zip(grads, plain_grads, strict=True)
)
largest = max(float(g.abs().max()) for g in plain_grads)
print(f"\ntriton vs off: features max |Δ| = {feature_error:.1e}")
print(f"{'':15}weight gradients max |Δ| = {grad_error:.1e} (largest {largest:.1f})")
assert feature_error < 1e-5 and grad_error < 1e-5 * max(1.0, largest)

# %% [markdown]
# On this CPU `"auto"` keeps the plain path (the tensors are not on a CUDA device), as
# every torch user without a GPU gets; `"triton"` forced the kernels (here through the
# interpreter) and gave the same features and gradients.
#
# ## 4. The benchmark: `ca2st bench kernels`
#
# On a GPU:
#
# ```bash
# ca2st bench kernels --skip-model          # attention core only, CAST-B, bf16, batch 8 and 32
# ca2st bench kernels                       # + CAST-B / CA²ST-B training steps (torch ± kernels, JAX)
# python -m keras_ca2st.benchmarks.gpu_check OUT_DIR   # everything, one call, ≤ 8 minutes
# ```
#
# It times T2S and S2T forward and forward + backward along three paths: `triton` (the
# kernels), `regroup+einsum` (the reference code's way) and `regroup+sdpa` (the same
# regrouping around `scaled_dot_product_attention`), and reports the achieved bandwidth
# against the device's measured copy bandwidth and the targets (T2S ≥ 3× faster than
# regroup+sdpa and ≥ 60% of the copy bandwidth; S2T ≥ 1.3×). Without a GPU the command
# runs tiny shapes in the interpreter, in a child process started with the right
# environment; it takes about a minute here, so this notebook calls the same function
# directly, on this guide's tiny shape:

# %%
from keras_ca2st.benchmarks.attention import bench_attention

# One thread: tiny shapes gain nothing from more, and on a shared CPU, thread pools
# waiting for each other would time the machine's load rather than the code.
torch.set_num_threads(1)
shape = dict(frames=FRAMES, patches=PATCHES, channels=CHANNELS, heads=HEADS)
bench = bench_attention([BATCH], shape, "cpu", BENCH_DTYPE, reps=BENCH_REPS)
Markdown(
    results_table(
        {f"{r['op']} {r['path']}": r for r in bench},
        {"fwd_ms": "forward (ms)", "fwd_bwd_ms": "forward + backward (ms)"},
    ).replace("| model |", "| op, path |")
    + f"\n\n*CPU, Triton interpreter, {BENCH_DTYPE}, shape {shape}, batch {BATCH}:"
    " not GPU figures.*"
)

# %%
from keras_ca2st.reports.training_plots import plot_bars

timings = {}  # path → {op: ms}, one colour per path
for r in bench:
    timings.setdefault(r["path"], {})[r["op"]] = r["fwd_bwd_ms"]
plot_bars(
    timings,
    "forward + backward, ms (log scale)",
    path="kernel_bench.png",
    title="CPU, Triton interpreter: NOT GPU timings",
    groups=["regroup+einsum", "regroup+sdpa", "triton"],
    log=True,
)
Image("kernel_bench.png")

# %% [markdown]
# **These timings come from a CPU, with the Triton kernels in the interpreter**, which
# runs each kernel program in Python with numpy: it is orders of magnitude slower than
# the compiled kernel, so `triton` is the slowest bar here. The numbers show that the
# benchmark runs end to end and nothing about the kernels' speed. The GPU figures — the
# attention core at CAST-B shapes, the share of the copy bandwidth, the targets, and
# whole CAST-B / CA²ST-B training steps with and without the kernels — come from
# `python -m keras_ca2st.benchmarks.gpu_check OUT_DIR` on a CUDA GPU, which writes them to
# `OUT_DIR/gpu_check.md` and `OUT_DIR/gpu_check.json` (`ca2st bench kernels` prints the
# same attention table).
#
# **Read next:** [04 Switching `KERAS_BACKEND`](04_switching_backends.ipynb) for what
# each backend runs instead (JAX: `jax.nn.dot_product_attention`; TensorFlow: the plain
# path), [05 Data-parallel and multi-host training](05_distributed_training.ipynb) to
# train on several GPUs, and [07 Audio-visual models](07_audio_visual_models.ipynb) for
# the global audio ↔ visual windows, which go to `scaled_dot_product_attention`.
