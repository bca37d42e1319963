"""Pure PyTorch references for the windowed-attention kernels (`triton_launch.py`).

They spell out the semantics the kernels implement, in the regroup + einsum form of
the reference CAST code (the regrouping is the windows' `cut` / `ungroup`, see
`windows.py`), and return the same `(out, lse)` pair. Scores, softmax and the
weighted sum are computed in fp32 from the given inputs; `out` is cast back to the
query dtype, `lse` stays fp32 with shape (B, H, T, N).
"""

import torch

from .windows import TORCH_OPS, get_window


def _head_dim(query, key_value, num_heads):
    channels = query.shape[-1]
    if key_value.shape[-1] != 2 * channels:
        raise ValueError(
            f"key_value must have 2·C = {2 * channels} channels, got "
            f"{key_value.shape[-1]}."
        )
    return channels // num_heads


def _attend(q, k, v, num_heads, head_dim):
    """Softmax attention on windows `(W, L, C)`; returns fp32 `(W, Lq, C)`, lse."""
    windows, q_len, k_len = q.shape[0], q.shape[1], k.shape[1]
    q = q.float().reshape(windows, q_len, num_heads, head_dim)
    k = k.float().reshape(windows, k_len, num_heads, head_dim)
    v = v.float().reshape(windows, k_len, num_heads, head_dim)
    scores = torch.einsum("wqhd,wkhd->whqk", q, k) * head_dim**-0.5
    lse = torch.logsumexp(scores, dim=-1)  # (W, H, Lq)
    weights = torch.softmax(scores, dim=-1)
    out = torch.einsum("whqk,wkhd->wqhd", weights, v)
    return out.reshape(windows, q_len, num_heads * head_dim), lse


def window_attention_reference(window, query, key_value, num_heads):
    """Softmax attention of `query` over `key_value` inside the windows of `window`.

    The windows are cut and put back by the window's own `group` / `ungroup`.

    Args:
        window: a window name or `Window` (`"time"`, `"space"`, ...).
        query: `(B, T, N, C)`.
        key_value: `(B, T, N', 2C)`, keys in columns `[:C]`, values in `[C:]`.
        num_heads: heads; head `h` owns channels `[h·C/H, (h+1)·C/H)`.

    Returns:
        `(out (B, T, N, C) in the query dtype, lse (B, H, T, N) fp32)`.
    """
    window = get_window(window)
    head_dim = _head_dim(query, key_value, num_heads)
    channels = query.shape[-1]
    q, k, v = (
        window.cut(x, TORCH_OPS)
        for x in (query, key_value[..., :channels], key_value[..., channels:])
    )
    out, lse = _attend(q, k, v, num_heads, head_dim)
    out = window.ungroup(out, query.shape, TORCH_OPS)
    # lse (W, H, Lq) is ungrouped like an output with one channel per head.
    lse_shape = (*query.shape[:-1], num_heads)
    lse = window.ungroup(lse.transpose(1, 2), lse_shape, TORCH_OPS).permute(0, 3, 1, 2)
    return out.to(query.dtype).contiguous(), lse.contiguous()


def time_window_attention_reference(query, key_value, num_heads):
    """T2S: for each (b, n) the T queries at (b, ·, n) attend to the T keys there.

    Arguments and returns as `window_attention_reference`, with `N' == N`.
    """
    return window_attention_reference("time", query, key_value, num_heads)


def space_window_attention_reference(query, key_value, num_heads):
    """S2T: for each frame (b, t) the N queries attend to the N' keys of the frame.

    Arguments and returns as `window_attention_reference`.
    """
    return window_attention_reference("space", query, key_value, num_heads)
