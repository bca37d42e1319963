"""Backend dispatch of windowed cross-attention to fused kernels.

`keras_ca2st.fusion.windowed_attention.fused_windowed_attention` calls
`fused_windowed_attention` here; `None` means "no fused path, use the plain
`keras.ops` path". Every backend import is local to its branch, so this module
imports on any backend, with or without torch, JAX or Triton installed.

| backend | "time" / "space" | "space_time" / "global" |
|---|---|---|
| torch, CUDA tensors | Triton kernels (`ops.py`) | `scaled_dot_product_attention` |
| torch, other devices | plain path (kernels when forced) | `scaled_dot_product_attention` |
| jax | `jax.nn.dot_product_attention` | `jax.nn.dot_product_attention` |
| tensorflow | plain path | plain path |

`jax.nn.dot_product_attention` runs cuDNN's fused attention on GPUs for 16-bit
inputs when cuDNN takes the shapes, and XLA's einsum attention (fused under `jit`)
otherwise. The mode switch (`config.py`: `"auto"`, `"triton"`, `"off"`) can force
the Triton kernels (`"triton"`) or turn every fused path off (`"off"`).
"""

from .config import ENV_VAR, fused_attention_mode


def fused_windowed_attention(backend, query, key_value, window, num_heads):
    """Fused windowed attention on `backend`, or `None` when none applies.

    Arguments as `keras_ca2st.fusion.windowed_attention.windowed_cross_attention`,
    plus the Keras backend name.
    """
    mode = fused_attention_mode()
    if mode == "off":
        return None
    if backend == "torch":
        return _torch_attention(query, key_value, window, num_heads, mode == "triton")
    if backend == "jax":
        return _jax_attention(query, key_value, window, num_heads)
    return None


# --- torch --------------------------------------------------------------------------


def _torch_attention(query, key_value, window, num_heads, forced):
    import torch

    if not (isinstance(query, torch.Tensor) and isinstance(key_value, torch.Tensor)):
        return None
    if key_value.dtype != query.dtype:
        key_value = key_value.to(query.dtype)
    if window in ("space_time", "global"):
        return _torch_sdpa(query, key_value, num_heads)

    from . import unavailable_reason

    if not forced and query.device.type != "cuda":
        return None
    reason = unavailable_reason(query)
    if reason is not None:
        if forced:
            raise RuntimeError(
                f"{ENV_VAR}=triton, but the kernels cannot run: {reason}."
            )
        return None
    from . import ops

    try:
        ops.check_inputs(query, key_value, num_heads, window)
    except ValueError:
        if forced:
            raise
        return None
    if window == "time":
        return ops.time_window_attention(query, key_value, num_heads)
    return ops.space_window_attention(query, key_value, num_heads)


def _torch_sdpa(query, key_value, num_heads):
    """SDPA with one window per clip (`"space_time"`, `"global"`)."""
    import torch.nn.functional as F

    channels = query.shape[-1]
    head_dim = channels // num_heads
    batch = query.shape[0]
    q = query.reshape(batch, -1, channels)
    kv = key_value.reshape(batch, -1, 2 * channels)

    def heads(x):  # (B, L, C) → (B, H, L, D), a view
        return x.unflatten(-1, (num_heads, head_dim)).transpose(1, 2)

    out = F.scaled_dot_product_attention(
        heads(q),
        heads(kv[..., :channels]),
        heads(kv[..., channels:]),
        scale=head_dim**-0.5,
    )
    return out.transpose(1, 2).reshape(query.shape)


# --- JAX ----------------------------------------------------------------------------


def _jax_attention(query, key_value, window, num_heads):
    import jax.numpy as jnp

    query = jnp.asarray(query)
    key_value = jnp.asarray(key_value).astype(query.dtype)
    channels = query.shape[-1]
    if window == "time":  # windows are patch positions: (B·N, T, C)
        batch, frames, patches = query.shape[:3]
        q = jnp.swapaxes(query, 1, 2).reshape(-1, frames, channels)
        kv = jnp.swapaxes(key_value, 1, 2).reshape(-1, frames, 2 * channels)
        out = _jax_dpa(q, kv, num_heads)
        return jnp.swapaxes(out.reshape(-1, patches, frames, channels), 1, 2)
    if window == "space":  # windows are frames: (B·T, N, C)
        q = query.reshape(-1, query.shape[2], channels)
        kv = key_value.reshape(-1, key_value.shape[2], 2 * channels)
    else:  # "space_time", "global": one window per clip
        q = query.reshape(query.shape[0], -1, channels)
        kv = key_value.reshape(key_value.shape[0], -1, 2 * channels)
    return _jax_dpa(q, kv, num_heads).reshape(query.shape)


def _jax_dpa(q, kv, num_heads):
    """`jax.nn.dot_product_attention` on `(W, L, C)` windows; cuDNN when it can."""
    import jax
    import jax.numpy as jnp

    windows, q_len, channels = q.shape
    head_dim = channels // num_heads
    split = (num_heads, head_dim)
    query = q.reshape(windows, q_len, *split)
    key = kv[..., :channels].reshape(windows, -1, *split)
    value = kv[..., channels:].reshape(windows, -1, *split)
    scale = head_dim**-0.5
    out = None
    if (
        jax.default_backend() == "gpu"
        and q.dtype in (jnp.bfloat16, jnp.float16)
        and head_dim % 8 == 0
        and head_dim <= 128
    ):
        try:
            out = jax.nn.dot_product_attention(
                query, key, value, scale=scale, implementation="cudnn"
            )
        except Exception:  # cuDNN missing or shapes it does not take: XLA below
            out = None
    if out is None:
        out = jax.nn.dot_product_attention(query, key, value, scale=scale)
    return out.reshape(windows, q_len, channels)
