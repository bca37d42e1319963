"""Backend dispatch of windowed cross-attention to fused kernels.

`keras_ca2st.fusion.windowed_attention.fused_windowed_attention` calls
`fused_windowed_attention` here; `None` means "no fused path, use the plain
`keras.ops` path". Every backend import is local to its branch, so this module
imports on any backend, with or without torch, JAX or Triton installed.

Windows come from `windows.py`: each names its Triton kernel (`Window.kernel`) or
none, and cuts / restores its `(W, L, C)` windows (`group` / `ungroup`) for SDPA and
JAX.

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
from .windows import NUMPY_OPS, TORCH_OPS, get_window


def fused_windowed_attention(backend, query, key_value, window, num_heads):
    """Fused windowed attention on `backend`, or `None` when none applies.

    Arguments as `keras_ca2st.fusion.windowed_attention.windowed_cross_attention`
    (`window` a name or a `Window`), plus the Keras backend name.
    """
    mode = fused_attention_mode()
    if mode == "off":
        return None
    window = get_window(window)
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
    if window.kernel is None:  # one window per clip: SDPA takes it whole
        q, kv = window.group(query, key_value, TORCH_OPS)
        return window.ungroup(_torch_sdpa(q, kv, num_heads), query.shape, TORCH_OPS)

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
    # Looked up by name at call time, so `ops.<kernel>` is the one place to wrap.
    return getattr(ops, window.kernel)(query, key_value, num_heads)


def _torch_sdpa(q, kv, num_heads):
    """`scaled_dot_product_attention` on `(W, L, C)` windows."""
    import torch.nn.functional as F

    channels = q.shape[-1]
    head_dim = channels // num_heads

    def heads(x):  # (W, L, C) → (W, H, L, D), a view
        return x.unflatten(-1, (num_heads, head_dim)).transpose(1, 2)

    out = F.scaled_dot_product_attention(
        heads(q),
        heads(kv[..., :channels]),
        heads(kv[..., channels:]),
        scale=head_dim**-0.5,
    )
    return out.transpose(1, 2).reshape(q.shape)


# --- JAX ----------------------------------------------------------------------------


def _jax_attention(query, key_value, window, num_heads):
    import jax.numpy as jnp

    query = jnp.asarray(query)
    key_value = jnp.asarray(key_value).astype(query.dtype)
    q, kv = window.group(query, key_value, NUMPY_OPS)
    return window.ungroup(_jax_dpa(q, kv, num_heads), query.shape, NUMPY_OPS)


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
