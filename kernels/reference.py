"""Pure PyTorch references for the windowed-attention kernels (`triton_attention.py`).

They spell out the semantics the kernels implement, in the regroup + einsum form of
the reference CAST code, and return the same `(out, lse)` pair. Scores, softmax and
the weighted sum are computed in fp32 from the given inputs; `out` is cast back to
the query dtype, `lse` stays fp32 with shape (B, H, T, N).
"""

import torch


def _split(query, key_value, num_heads):
    channels = query.shape[-1]
    if key_value.shape[-1] != 2 * channels:
        raise ValueError(
            f"key_value must have 2·C = {2 * channels} channels, got "
            f"{key_value.shape[-1]}."
        )
    head_dim = channels // num_heads
    key = key_value[..., :channels]
    value = key_value[..., channels:]
    return key, value, head_dim


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


def time_window_attention_reference(query, key_value, num_heads):
    """T2S: for each (b, n) the T queries at (b, ·, n) attend to the T keys there.

    Args:
        query: `(B, T, N, C)`.
        key_value: `(B, T, N, 2C)`, keys in columns `[:C]`, values in `[C:]`.
        num_heads: heads; head `h` owns channels `[h·C/H, (h+1)·C/H)`.

    Returns:
        `(out (B, T, N, C) in the query dtype, lse (B, H, T, N) fp32)`.
    """
    key, value, head_dim = _split(query, key_value, num_heads)
    batch, frames, patches, channels = query.shape

    def windows(x):  # (B, T, N, C) → (B·N, T, C)
        return x.permute(0, 2, 1, 3).reshape(batch * patches, frames, channels)

    out, lse = _attend(
        windows(query), windows(key), windows(value), num_heads, head_dim
    )
    out = out.reshape(batch, patches, frames, channels).permute(0, 2, 1, 3)
    lse = lse.reshape(batch, patches, num_heads, frames).permute(0, 2, 3, 1)
    return out.to(query.dtype).contiguous(), lse.contiguous()


def space_window_attention_reference(query, key_value, num_heads):
    """S2T: for each frame (b, t) the N queries attend to the N' keys of the frame.

    Args:
        query: `(B, T, N, C)`.
        key_value: `(B, T, N', 2C)`, keys in columns `[:C]`, values in `[C:]`.
        num_heads: heads; head `h` owns channels `[h·C/H, (h+1)·C/H)`.

    Returns:
        `(out (B, T, N, C) in the query dtype, lse (B, H, T, N) fp32)`.
    """
    key, value, head_dim = _split(query, key_value, num_heads)
    batch, frames, q_len, channels = query.shape
    kv_len = key.shape[2]
    out, lse = _attend(
        query.reshape(batch * frames, q_len, channels),
        key.reshape(batch * frames, kv_len, channels),
        value.reshape(batch * frames, kv_len, channels),
        num_heads,
        head_dim,
    )
    out = out.reshape(batch, frames, q_len, channels)
    lse = lse.reshape(batch, frames, num_heads, q_len).permute(0, 2, 1, 3)
    return out.to(query.dtype).contiguous(), lse.contiguous()
