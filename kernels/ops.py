"""Torch custom ops around the Triton windowed-attention kernels.

`keras_ca2st::time_window_attention` (T2S) and `keras_ca2st::space_window_attention`
(S2T) take `(query (B, T, N, C), key_value (B, T, N', 2C), num_heads)` in any strides
and return `(out (B, T, N, C), lse (B, H, T, N) fp32)`. Each has a fake
implementation (shapes only, for `torch.compile` and meta tensors), an autograd
formula (gradients for `query` and `key_value`; `lse` is not differentiable) and a
backward op of its own, so eager mode, `model.fit` and `torch.compile` all work.
Both are registered by one helper, `_register_window_op`; the op names are the
windows' `kernel` names (`windows.py`).
"""

from typing import NamedTuple

import torch

from . import triton_launch as _kernels
from .windows import get_window

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_inputs(query, key_value, num_heads, window):
    """Raise `ValueError` unless the kernel of `window` takes these inputs.

    Args:
        query, key_value, num_heads: as `time_window_attention`.
        window: a window name or `Window` with a fused kernel (`"time"`, `"space"`).
    """
    window = get_window(window)
    if window.kernel not in KERNELS:
        raise ValueError(f"The {window.name!r} window has no fused kernel.")
    if query.ndim != 4 or key_value.ndim != 4:
        raise ValueError(
            f"Expected query (B, T, N, C) and key_value (B, T, N', 2C); got "
            f"{tuple(query.shape)} and {tuple(key_value.shape)}."
        )
    batch, frames, patches, channels = query.shape
    if key_value.shape[:2] != (batch, frames) or key_value.shape[3] != 2 * channels:
        raise ValueError(
            f"key_value {tuple(key_value.shape)} does not match query "
            f"{tuple(query.shape)}: expected ({batch}, {frames}, N', {2 * channels})."
        )
    window.check_grids(query.shape[1:3], key_value.shape[1:3])
    if num_heads < 1 or channels % num_heads:
        raise ValueError(f"{channels} channels do not split into {num_heads} heads.")
    if channels // num_heads > _kernels.MAX_HEAD_DIM:
        raise ValueError(f"head_dim {channels // num_heads} > {_kernels.MAX_HEAD_DIM}.")
    max_frames = KERNELS[window.kernel].max_frames
    if max_frames is not None and frames > max_frames:
        raise ValueError(f"{window.name} window {frames} > {max_frames}.")
    if query.dtype not in _DTYPES or key_value.dtype != query.dtype:
        raise ValueError(
            f"Expected query and key_value of one dtype in {_DTYPES}; got "
            f"{query.dtype} and {key_value.dtype}."
        )
    if query.device != key_value.device:
        raise ValueError("query and key_value must be on the same device.")
    if min(query.shape) == 0 or min(key_value.shape) == 0:
        raise ValueError("Empty inputs are not supported by the kernels.")


class WindowOp(NamedTuple):
    """One registered window kernel: its forward and backward custom ops.

    `op(query, key_value, num_heads) → (out, lse)`;
    `backward_op(grad_out, query, key_value, [out,] lse, num_heads) →
    (d_query, d_key_value)`; `max_frames` is the longest T the kernel takes
    (`None`: any).
    """

    op: object
    backward_op: object
    max_frames: int | None


def _register_window_op(kernel, forward, backward, saves_output, max_frames=None):
    """Register `keras_ca2st::<kernel>` and `..._backward` with fakes and autograd.

    Args:
        kernel: the op name, a window's `kernel` (`"time_window_attention"`, ...).
        forward: `(query, key_value, num_heads) → (out, lse)` running the kernels.
        backward: `(grad_out, query, key_value, [out,] lse, num_heads) →
            (d_query, d_key_value)`.
        saves_output: whether the backward needs the forward output `out` (S2T's
            Δ = rowsum(dO∘O); T2S recomputes it in registers).
        max_frames: the longest T the kernel takes, checked by `check_inputs`.
    """
    saved = "Tensor query, Tensor key_value, " + (
        "Tensor out, " if saves_output else ""
    )
    forward_op = torch.library.custom_op(
        f"keras_ca2st::{kernel}",
        forward,
        mutates_args=(),
        schema="(Tensor query, Tensor key_value, int num_heads) -> (Tensor, Tensor)",
    )
    backward_op = torch.library.custom_op(
        f"keras_ca2st::{kernel}_backward",
        backward,
        mutates_args=(),
        schema=f"(Tensor grad_out, {saved}Tensor lse, int num_heads) -> (Tensor, Tensor)",
    )

    @forward_op.register_fake
    def _(query, key_value, num_heads):
        batch, frames, patches, _ = query.shape
        out = query.new_empty(query.shape)
        lse = query.new_empty((batch, num_heads, frames, patches), dtype=torch.float32)
        return out, lse

    @backward_op.register_fake
    def _(grad_out, query, key_value, *saved_and_heads):
        return query.new_empty(query.shape), key_value.new_empty(key_value.shape)

    def setup_context(ctx, inputs, output):
        query, key_value, num_heads = inputs
        out, lse = output
        ctx.save_for_backward(query, key_value, *([out] if saves_output else []), lse)
        ctx.num_heads = num_heads
        ctx.mark_non_differentiable(lse)

    def backward_formula(ctx, grad_out, grad_lse):
        if grad_out is None:
            return None, None, None
        # Incoming grads may be expanded (stride 0): the kernels want real strides.
        d_query, d_key_value = backward_op(
            grad_out.contiguous(), *ctx.saved_tensors, ctx.num_heads
        )
        return d_query, d_key_value, None

    forward_op.register_autograd(backward_formula, setup_context=setup_context)
    return WindowOp(forward_op, backward_op, max_frames)


KERNELS = {
    "time_window_attention": _register_window_op(
        "time_window_attention",
        _kernels.time_window_forward,
        _kernels.time_window_backward,
        saves_output=False,
        max_frames=_kernels.MAX_TIME_WINDOW,
    ),
    "space_window_attention": _register_window_op(
        "space_window_attention",
        _kernels.space_window_forward,
        _kernels.space_window_backward,
        saves_output=True,
    ),
}
"""The registered window kernels by name (a window's `kernel`)."""

time_window_attention_op = KERNELS["time_window_attention"].op
time_window_attention_backward_op = KERNELS["time_window_attention"].backward_op
space_window_attention_op = KERNELS["space_window_attention"].op
space_window_attention_backward_op = KERNELS["space_window_attention"].backward_op


# --- Python API ---------------------------------------------------------------------


def _window_attention(window, query, key_value, num_heads):
    window = get_window(window)
    check_inputs(query, key_value, num_heads, window)
    return KERNELS[window.kernel].op(query, key_value, num_heads)[0]


def time_window_attention(query, key_value, num_heads):
    """Fused T2S attention (window = time) of `query` over `key_value`.

    For each (b, n) the T queries at `query[b, :, n]` attend to the T keys at
    `key_value[b, :, n]`; head `h` owns channels `[h·D, (h+1)·D)`, `D = C / H`,
    softmax scale `D^-0.5`.

    Args:
        query: `(B, T, N, C)` torch tensor, any strides (e.g. a CLS-sliced view).
        key_value: `(B, T, N, 2C)`, keys in columns `[:C]`, values in `[C:]`.
        num_heads: number of heads `H`.

    Returns:
        `(B, T, N, C)` contiguous, in the query dtype.
    """
    return _window_attention("time", query, key_value, num_heads)


def space_window_attention(query, key_value, num_heads):
    """Fused S2T attention (window = space) of `query` over `key_value`.

    For each frame (b, t) the N queries at `query[b, t]` attend to the N' keys at
    `key_value[b, t]`; heads and scale as in `time_window_attention`.

    Args:
        query: `(B, T, N, C)` torch tensor, any strides.
        key_value: `(B, T, N', 2C)`, keys in columns `[:C]`, values in `[C:]`.
        num_heads: number of heads `H`.

    Returns:
        `(B, T, N, C)` contiguous, in the query dtype.
    """
    return _window_attention("space", query, key_value, num_heads)
