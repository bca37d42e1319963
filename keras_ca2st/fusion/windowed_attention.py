"""Windowed multi-head cross-attention: the attention core of B-CA.

Both video streams share one token grid (frames T × patches N, index t·N + n), so a
window is a choice of axis: `"time"` attends along T for each patch position (T2S in
CAST), `"space"` along N within each frame (S2T), `"space_time"` over the whole
clip, and `"global"` takes flat token sequences of any lengths (audio pairs). Each
kind is one object of `keras_ca2st.kernels.windows` (`get_window`), which cuts the
windows and puts them back.

The plain path below is backend-agnostic `keras.ops`. `fused_windowed_attention` is
the single dispatch point to backend-specific fused kernels; it returns `None` when
no fused path applies and the plain path runs.
"""

from keras import ops

from keras_ca2st.kernels.windows import WINDOWS, get_window

# `WINDOWS` and `get_window` are re-exported for the rooms above fusion (models),
# which do not import the kernels room directly.
__all__ = [
    "WINDOWS",
    "fused_windowed_attention",
    "get_window",
    "reference_windowed_attention",
    "windowed_cross_attention",
]


def windowed_cross_attention(query, key_value, window, num_heads):
    """Multi-head attention of `query` over `key_value` inside windows.

    Args:
        query: `(B, T, N, C)` for the `"time"`, `"space"` and `"space_time"` windows,
            `(B, Lq, C)` for `"global"`.
        key_value: the keys and values packed on the last axis, `(..., 2C)`: keys are
            columns `[:C]`, values `[C:]`. `(B, T, N', 2C)` with `N' == N` for `"time"`
            and any `N'` for `"space"` / `"space_time"`; `(B, Lk, 2C)` for `"global"`.
        window: one of `"time"`, `"space"`, `"space_time"`, `"global"` (or a
            `Window`).
        num_heads: heads; head `h` owns channels `[h·C/H, (h+1)·C/H)`.

    Returns:
        The attention output with the shape of `query`; softmax scale `(C/H)^-0.5`,
        no mask, no dropout.
    """
    window = get_window(window)
    fused = fused_windowed_attention(query, key_value, window, num_heads)
    if fused is not None:
        return fused
    return reference_windowed_attention(query, key_value, window, num_heads)


def reference_windowed_attention(
    query, key_value, window, num_heads, return_weights=False
):
    """The plain `keras.ops` path of `windowed_cross_attention` (same arguments).

    With `return_weights=True` it returns `(output, weights)`: the softmax
    weights of every window, `(W, heads, Lq, Lk)` float32, windows in the order
    of `window.cut` (the explain feature reads them).
    """
    window = get_window(window)
    channels = query.shape[-1]
    q, k, v = (
        window.cut(x)
        for x in (query, key_value[..., :channels], key_value[..., channels:])
    )
    out, weights = _attend(q, k, v, num_heads, channels // num_heads)
    out = window.ungroup(out, query.shape)
    return (out, weights) if return_weights else out


def _attend(query, key, value, num_heads, head_dim):
    """Multi-head softmax attention on `(W, L, C)` windows: output and weights."""
    windows, q_len, k_len = ops.shape(query)[0], query.shape[1], key.shape[1]
    q = ops.reshape(query, (windows, q_len, num_heads, head_dim))
    k = ops.reshape(key, (windows, k_len, num_heads, head_dim))
    v = ops.reshape(value, (windows, k_len, num_heads, head_dim))
    scores = ops.einsum("wqhd,wkhd->whqk", q * (head_dim**-0.5), k)
    weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
    out = ops.einsum("whqk,wkhd->wqhd", ops.cast(weights, v.dtype), v)
    return ops.reshape(out, (windows, q_len, num_heads * head_dim)), weights


def fused_windowed_attention(query, key_value, window, num_heads):
    """Dispatch point to fused kernels; `None` means "use the plain path".

    torch: the Triton kernels of `keras_ca2st.kernels` for the `"time"` and
    `"space"` windows on CUDA tensors, `scaled_dot_product_attention` for
    `"space_time"` and `"global"`; JAX: `jax.nn.dot_product_attention` (cuDNN on
    GPUs where it applies); TensorFlow: none. `KERAS_CA2ST_FUSED_ATTENTION` or
    `keras_ca2st.kernels.set_fused_attention` (`"auto"`, `"triton"`, `"off"`) can
    force the Triton kernels on any device (on CPU under `TRITON_INTERPRET=1`) or
    turn every fused path off. Backend imports happen inside the dispatch.
    """
    from keras import backend

    from keras_ca2st.kernels import dispatch

    return dispatch.fused_windowed_attention(
        backend.backend(), query, key_value, window, num_heads
    )
