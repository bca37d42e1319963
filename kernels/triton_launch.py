"""Launches of the Triton windowed cross-attention kernels of B-CA (SPEC §5, §12).

The kernels are one file per phase: T2S, window = time, in `triton_time_window.py`
(several windows packed per program), S2T, window = space, in
`triton_space_window.py` (FlashAttention-2). This module holds what they share:
the launch configurations, the limits, one `Launch` description per kernel launch
and the forward / backward runners the torch custom ops (`ops.py`) call.

Memory layout (both kernels)
----------------------------
The kernels read the stream tensors where they already lie; nothing is regrouped:

    query      (B, T, N, C)    any strides, e.g. the CLIP stream (B·T, 1+N, C)
                               viewed as (B, T, 1+N, C) and sliced [:, :, 1:]
    key_value  (B, T, N', 2C)  any strides; keys are columns [0, C), values [C, 2C)
    out        (B, T, N, C)    written contiguous: the layout `out_proj` consumes
    lse        (B, H, T, N)    fp32 natural-log log-sum-exp of each query row,
                               kept for the backward

Head h owns columns [h·D, (h+1)·D) with D = C/H, so a head is a column offset into
the row of a token and every (token, head) tile row is D contiguous elements.
Grid axis 0 always carries the window×head index (head fastest, so programs that
run together read neighbouring column chunks of the same rows); axis 1, when
used, carries a block of queries or keys inside the window (axes 1 and 2 are
capped at 65,535, axis 0 is not).

Numerics: scores are scaled by softmax_scale·log2(e) and exponentiated with
exp2; accumulation is fp32; P and dS are cast to the input dtype before the
second matmul, as in FlashAttention. fp32 inputs use IEEE fp32 dots. Under
`TRITON_INTERPRET=1` bf16 arithmetic is not emulated correctly, so bf16 tiles
are upcast to fp32 there (`UPCAST`).

The pure PyTorch reference of both ops is `reference.py` beside this file.
"""

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .triton_space_window import (
    space_bwd_preprocess,
    space_window_bwd,
    space_window_fwd,
)
from .triton_time_window import time_window_bwd, time_window_fwd

LOG2E = 1.4426950408889634

# Launch configurations for 16-bit inputs, and smaller tiles for fp32 inputs (whose
# IEEE dots run on the CUDA cores with the operands in registers; the 16-bit
# tiles spill there, see `compile_check.py`).
# T2S: windows are packed BLOCK_M // BLOCK_T per program.
# S2T: BLOCK_M queries per forward program, BLOCK_N keys per inner step; a backward
# program owns key block BLOCK_N1 (looping over BLOCK_M1 queries) and query block
# BLOCK_M2 (looping over BLOCK_N2 keys), BLOCK_N1 == BLOCK_M2.
CONFIGS = {
    "time_fwd": dict(BLOCK_M=64, num_warps=4, num_stages=1),
    "time_bwd": dict(BLOCK_M=32, num_warps=4, num_stages=1),
    "space_fwd": dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=2),
    "space_pre": dict(BLOCK_M=64, num_warps=4),
    "space_bwd": dict(BLOCK_M1=32, BLOCK_N1=64, BLOCK_M2=64, BLOCK_N2=32, num_warps=4),
}
CONFIGS_FP32 = {
    "time_fwd": dict(BLOCK_M=32, num_warps=4, num_stages=1),
    "time_bwd": dict(BLOCK_M=32, num_warps=4, num_stages=1),
    "space_fwd": dict(BLOCK_M=32, BLOCK_N=32, num_warps=4, num_stages=2),
    "space_pre": dict(BLOCK_M=64, num_warps=4),
    "space_bwd": dict(BLOCK_M1=16, BLOCK_N1=32, BLOCK_M2=32, BLOCK_N2=16, num_warps=4),
}


def _config(name, dtype):
    return (CONFIGS_FP32 if dtype == torch.float32 else CONFIGS)[name]


MAX_TIME_WINDOW = 64  # longest T the packed T2S tile takes (BLOCK_T <= BLOCK_M)
MAX_HEAD_DIM = 64  # largest head dim `compile_check.py` compiles (spill-free)


# ----------------------------------------------------------------------------------
# Launches. Each `*_launch` function describes one kernel launch (kernel, grid,
# positional arguments, constexprs, options) on given tensors; the forward and
# backward functions below allocate the outputs and run them, and
# `compile_check.py` compiles the very same descriptions offline for sm_90.
# ----------------------------------------------------------------------------------

INTERPRETED = not isinstance(time_window_fwd, triton.runtime.JITFunction)
"""Whether the kernels were built for the Triton interpreter (`TRITON_INTERPRET=1`
when this module was first imported)."""

if INTERPRETED == isinstance(tl.standard.sum, triton.runtime.JITFunction):
    # Triton's own `@jit` library (tl.sum, tl.max) was decorated when `triton` was
    # first imported, under the other setting; mixing the two cannot run.
    raise RuntimeError(
        "TRITON_INTERPRET was changed after Triton had been imported (Keras's torch "
        "backend imports Triton), so Triton's library and these kernels disagree on "
        "interpreter mode. Set TRITON_INTERPRET in the environment before Python "
        "starts (for pytest: in the top-level conftest.py)."
    )


class Launch(NamedTuple):
    kernel: object
    grid: tuple
    args: tuple
    constexprs: dict
    options: dict

    def __call__(self):
        self.kernel[self.grid](*self.args, **self.constexprs, **self.options)


def _head_constexprs(query, num_heads, upcast=None):
    head_dim = query.shape[-1] // num_heads
    if upcast is None:
        upcast = INTERPRETED and query.dtype == torch.bfloat16
    precision = "ieee" if (query.dtype == torch.float32 or upcast) else "tf32"
    return dict(
        HEAD_DIM=head_dim,
        BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
        UPCAST=upcast,
        DOT_PRECISION=precision,
    )


def _time_blocks(frames, cfg):
    block_t = triton.next_power_of_2(frames)
    return block_t, max(cfg["BLOCK_M"], block_t)


def time_forward_launch(query, key_value, out, lse, num_heads, upcast=None):
    batch, frames, patches, channels = query.shape
    const = _head_constexprs(query, num_heads, upcast)
    cfg = _config("time_fwd", query.dtype)
    block_t, block_m = _time_blocks(frames, cfg)
    num_windows = batch * patches
    grid = (triton.cdiv(num_windows, block_m // block_t) * num_heads,)
    args = (
        *(query, key_value, out, lse),
        *query.stride(),
        *key_value.stride(),
        *out.stride()[:3],
        *(num_heads, frames, patches, num_windows, channels),
        const["HEAD_DIM"] ** -0.5 * LOG2E,
    )
    const.update(BLOCK_T=block_t, BLOCK_M=block_m)
    options = dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return Launch(time_window_fwd, grid, args, const, options)


def time_backward_launch(
    grad_out, query, key_value, lse, d_query, d_key_value, num_heads, upcast=None
):
    batch, frames, patches, channels = query.shape
    const = _head_constexprs(query, num_heads, upcast)
    cfg = _config("time_bwd", query.dtype)
    block_t, block_m = _time_blocks(frames, cfg)
    num_windows = batch * patches
    grid = (triton.cdiv(num_windows, block_m // block_t) * num_heads,)
    args = (
        *(query, key_value, grad_out, lse, d_query, d_key_value),
        *query.stride(),
        *key_value.stride(),
        *grad_out.stride()[:3],
        *d_query.stride()[:3],
        *d_key_value.stride()[:3],
        *(num_heads, frames, patches, num_windows, channels),
        const["HEAD_DIM"] ** -0.5,
    )
    const.update(BLOCK_T=block_t, BLOCK_M=block_m)
    options = dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return Launch(time_window_bwd, grid, args, const, options)


def space_forward_launch(query, key_value, out, lse, num_heads, upcast=None):
    batch, frames, q_len, channels = query.shape
    const = _head_constexprs(query, num_heads, upcast)
    cfg = _config("space_fwd", query.dtype)
    grid = (batch * frames * num_heads, triton.cdiv(q_len, cfg["BLOCK_M"]))
    args = (
        *(query, key_value, out, lse),
        *query.stride(),
        *key_value.stride(),
        *out.stride()[:3],
        *(num_heads, frames, q_len, key_value.shape[2], channels),
        const["HEAD_DIM"] ** -0.5 * LOG2E,
    )
    const.update(BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"])
    options = dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return Launch(space_window_fwd, grid, args, const, options)


def space_preprocess_launch(out, grad_out, delta, num_heads):
    batch, frames, q_len, _ = out.shape
    const = _head_constexprs(out, num_heads, upcast=False)
    del const["UPCAST"], const["DOT_PRECISION"]
    cfg = _config("space_pre", out.dtype)
    grid = (batch * frames * num_heads, triton.cdiv(q_len, cfg["BLOCK_M"]))
    args = (
        *(out, grad_out, delta),
        *out.stride()[:3],
        *grad_out.stride()[:3],
        *(num_heads, frames, q_len),
    )
    const.update(BLOCK_M=cfg["BLOCK_M"])
    return Launch(
        space_bwd_preprocess, grid, args, const, dict(num_warps=cfg["num_warps"])
    )


def space_backward_launch(
    grad_out, query, key_value, lse, delta, d_query, d_key_value, num_heads, upcast=None
):
    batch, frames, q_len, channels = query.shape
    kv_len = key_value.shape[2]
    const = _head_constexprs(query, num_heads, upcast)
    cfg = _config("space_bwd", query.dtype)
    assert cfg["BLOCK_N1"] == cfg["BLOCK_M2"]
    blocks = triton.cdiv(max(q_len, kv_len), cfg["BLOCK_N1"])
    grid = (batch * frames * num_heads, blocks)
    args = (
        *(query, key_value, grad_out, lse, delta, d_query, d_key_value),
        *query.stride(),
        *key_value.stride(),
        *grad_out.stride()[:3],
        *d_query.stride()[:3],
        *d_key_value.stride()[:3],
        *(num_heads, frames, q_len, kv_len, channels),
        const["HEAD_DIM"] ** -0.5,
    )
    const.update({k: cfg[k] for k in ("BLOCK_M1", "BLOCK_N1", "BLOCK_M2", "BLOCK_N2")})
    return Launch(space_window_bwd, grid, args, const, dict(num_warps=cfg["num_warps"]))


def _outputs(query, num_heads):
    batch, frames, patches, _ = query.shape
    out = torch.empty(query.shape, dtype=query.dtype, device=query.device)
    lse = torch.empty(
        (batch, num_heads, frames, patches), dtype=torch.float32, device=query.device
    )
    return out, lse


def _grads(query, key_value):
    return (
        torch.empty(query.shape, dtype=query.dtype, device=query.device),
        torch.empty(key_value.shape, dtype=key_value.dtype, device=key_value.device),
    )


def time_window_forward(query, key_value, num_heads):
    """T2S forward: returns `(out (B, T, N, C), lse (B, H, T, N) fp32)`."""
    out, lse = _outputs(query, num_heads)
    time_forward_launch(query, key_value, out, lse, num_heads)()
    return out, lse


def time_window_backward(grad_out, query, key_value, lse, num_heads):
    """T2S backward: returns `(d_query (B, T, N, C), d_key_value (B, T, N, 2C))`."""
    grad_out = grad_out.contiguous()  # incoming grads may be expanded (stride 0)
    d_query, d_key_value = _grads(query, key_value)
    time_backward_launch(
        grad_out, query, key_value, lse, d_query, d_key_value, num_heads
    )()
    return d_query, d_key_value


def space_window_forward(query, key_value, num_heads):
    """S2T forward: returns `(out (B, T, N, C), lse (B, H, T, N) fp32)`."""
    out, lse = _outputs(query, num_heads)
    space_forward_launch(query, key_value, out, lse, num_heads)()
    return out, lse


def space_window_backward(grad_out, query, key_value, out, lse, num_heads):
    """S2T backward: returns `(d_query (B, T, N, C), d_key_value (B, T, N', 2C))`."""
    grad_out = grad_out.contiguous()  # incoming grads may be expanded (stride 0)
    delta = torch.empty_like(lse)
    space_preprocess_launch(out, grad_out, delta, num_heads)()
    d_query, d_key_value = _grads(query, key_value)
    space_backward_launch(
        grad_out, query, key_value, lse, delta, d_query, d_key_value, num_heads
    )()
    return d_query, d_key_value
