"""Torch custom ops around the Triton windowed-attention kernels.

`keras_ca2st::time_window_attention` (T2S) and `keras_ca2st::space_window_attention`
(S2T) take `(query (B, T, N, C), key_value (B, T, N', 2C), num_heads)` in any strides
and return `(out (B, T, N, C), lse (B, H, T, N) fp32)`. Each has a fake
implementation (shapes only, for `torch.compile` and meta tensors), an autograd
formula (gradients for `query` and `key_value`; `lse` is not differentiable) and a
backward op of its own, so eager mode, `model.fit` and `torch.compile` all work.
"""

import torch

from . import triton_attention as _kernels

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_inputs(query, key_value, num_heads, window):
    """Raise `ValueError` unless the kernels take these inputs."""
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
    if window == "time" and key_value.shape[2] != patches:
        raise ValueError("The time window needs as many key positions as queries.")
    if num_heads < 1 or channels % num_heads:
        raise ValueError(f"{channels} channels do not split into {num_heads} heads.")
    if channels // num_heads > _kernels.MAX_HEAD_DIM:
        raise ValueError(f"head_dim {channels // num_heads} > {_kernels.MAX_HEAD_DIM}.")
    if window == "time" and frames > _kernels.MAX_TIME_WINDOW:
        raise ValueError(f"time window {frames} > {_kernels.MAX_TIME_WINDOW}.")
    if query.dtype not in _DTYPES or key_value.dtype != query.dtype:
        raise ValueError(
            f"Expected query and key_value of one dtype in {_DTYPES}; got "
            f"{query.dtype} and {key_value.dtype}."
        )
    if query.device != key_value.device:
        raise ValueError("query and key_value must be on the same device.")
    if min(query.shape) == 0 or min(key_value.shape) == 0:
        raise ValueError("Empty inputs are not supported by the kernels.")


def _fake_forward(query, key_value, num_heads):
    batch, frames, patches, _ = query.shape
    out = query.new_empty(query.shape)
    lse = query.new_empty((batch, num_heads, frames, patches), dtype=torch.float32)
    return out, lse


def _fake_backward(query, key_value):
    return query.new_empty(query.shape), key_value.new_empty(key_value.shape)


# --- T2S, window = time -------------------------------------------------------------


@torch.library.custom_op("keras_ca2st::time_window_attention", mutates_args=())
def time_window_attention_op(
    query: torch.Tensor, key_value: torch.Tensor, num_heads: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """T2S attention; returns `(out, lse)`."""
    return _kernels.time_window_forward(query, key_value, num_heads)


@time_window_attention_op.register_fake
def _(query, key_value, num_heads):
    return _fake_forward(query, key_value, num_heads)


@torch.library.custom_op("keras_ca2st::time_window_attention_backward", mutates_args=())
def time_window_attention_backward_op(
    grad_out: torch.Tensor,
    query: torch.Tensor,
    key_value: torch.Tensor,
    lse: torch.Tensor,
    num_heads: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients `(d_query, d_key_value)` of T2S attention."""
    return _kernels.time_window_backward(grad_out, query, key_value, lse, num_heads)


@time_window_attention_backward_op.register_fake
def _(grad_out, query, key_value, lse, num_heads):
    return _fake_backward(query, key_value)


def _time_setup_context(ctx, inputs, output):
    query, key_value, num_heads = inputs
    _, lse = output
    ctx.save_for_backward(query, key_value, lse)
    ctx.num_heads = num_heads
    ctx.mark_non_differentiable(lse)


def _time_backward(ctx, grad_out, grad_lse):
    query, key_value, lse = ctx.saved_tensors
    if grad_out is None:
        return None, None, None
    d_query, d_key_value = time_window_attention_backward_op(
        grad_out.contiguous(), query, key_value, lse, ctx.num_heads
    )
    return d_query, d_key_value, None


time_window_attention_op.register_autograd(
    _time_backward, setup_context=_time_setup_context
)


# --- S2T, window = space ------------------------------------------------------------


@torch.library.custom_op("keras_ca2st::space_window_attention", mutates_args=())
def space_window_attention_op(
    query: torch.Tensor, key_value: torch.Tensor, num_heads: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """S2T attention; returns `(out, lse)`."""
    return _kernels.space_window_forward(query, key_value, num_heads)


@space_window_attention_op.register_fake
def _(query, key_value, num_heads):
    return _fake_forward(query, key_value, num_heads)


@torch.library.custom_op(
    "keras_ca2st::space_window_attention_backward", mutates_args=()
)
def space_window_attention_backward_op(
    grad_out: torch.Tensor,
    query: torch.Tensor,
    key_value: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    num_heads: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients `(d_query, d_key_value)` of S2T attention."""
    return _kernels.space_window_backward(
        grad_out, query, key_value, out, lse, num_heads
    )


@space_window_attention_backward_op.register_fake
def _(grad_out, query, key_value, out, lse, num_heads):
    return _fake_backward(query, key_value)


def _space_setup_context(ctx, inputs, output):
    query, key_value, num_heads = inputs
    out, lse = output
    ctx.save_for_backward(query, key_value, out, lse)
    ctx.num_heads = num_heads
    ctx.mark_non_differentiable(lse)


def _space_backward(ctx, grad_out, grad_lse):
    query, key_value, out, lse = ctx.saved_tensors
    if grad_out is None:
        return None, None, None
    d_query, d_key_value = space_window_attention_backward_op(
        grad_out.contiguous(), query, key_value, out, lse, ctx.num_heads
    )
    return d_query, d_key_value, None


space_window_attention_op.register_autograd(
    _space_backward, setup_context=_space_setup_context
)


# --- Python API ---------------------------------------------------------------------


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
    check_inputs(query, key_value, num_heads, "time")
    return time_window_attention_op(query, key_value, num_heads)[0]


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
    check_inputs(query, key_value, num_heads, "space")
    return space_window_attention_op(query, key_value, num_heads)[0]
