"""Triton kernels for the two windowed cross-attentions of B-CA (CAST, SPEC §5, §12).

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

T2S, window = time (`_time_window_fwd`, `_time_window_bwd`)
----------------------------------------------------------
For each patch position (b, n) the T queries at (b, ·, n) attend to the T keys at
(b, ·, n): 8×8 windows at CAST-B, far too small for one program each, and
16-bit `tl.dot` needs an inner dimension of at least 16. A program therefore
takes one head of BLOCK_M // BLOCK_T consecutive windows (BLOCK_T = T rounded up
to a power of two) and stacks them into one BLOCK_M-row tile. Tile row r is frame
r % BLOCK_T of window r // BLOCK_T, so

    S = Q Kᵀ (BLOCK_M × BLOCK_M) is block diagonal:  S[r, c] is kept iff
        r // BLOCK_T == c // BLOCK_T (same window) and c % BLOCK_T < T,
        every other entry is -inf (forward) or P = 0 (backward).

The off-diagonal products are wasted tensor-core work (BLOCK_M / BLOCK_T times
the useful FLOPs), but T2S does ≈4 FLOP per byte and is bound by memory by a
wide margin; the tensor cores keep the work off the CUDA cores that the
exponentials need. (An elementwise broadcast over a (windows, T, T, D) tile
would avoid the waste but needs far more registers and layout shuffles.) Each
program holds whole rows of its windows, so the softmax is single pass and the
backward sees every query and key of a window: dQ, dK and dV are written once,
without atomics, and Δ = rowsum(dO∘O) is computed as rowsum(P∘dP) in registers
(the same quantity) instead of re-reading O.

S2T, window = space (`_space_window_fwd`, `_space_bwd_*`)
-------------------------------------------------------
For each frame (b, t) the N queries attend to the N' keys of that frame (196×196
at CAST-B). This is FlashAttention-2: the forward streams BLOCK_N keys at a time
through an online softmax, masking the key tail (196 = 3·64 + 4); the backward
first computes Δ = rowsum(dO∘O) (`_space_bwd_preprocess`), then one program per
(window×head, block) accumulates dK, dV for a key block over all queries
(`_space_bwd_dkdv`) and dQ for a query block over all keys (`_space_bwd_dq`);
no atomics.

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
# T2S: window = time, several windows packed per program
# ----------------------------------------------------------------------------------


@triton.jit
def _time_window_fwd(
    Q,
    KV,
    Out,
    Lse,
    stride_qb,
    stride_qt,
    stride_qn,
    stride_qc,
    stride_kvb,
    stride_kvt,
    stride_kvn,
    stride_kvc,
    stride_ob,
    stride_ot,
    stride_on,
    num_heads,
    frames,
    patches,
    num_windows,
    channels,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_M: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    head = pid % num_heads
    rows = tl.arange(0, BLOCK_M)
    window = (pid // num_heads) * (BLOCK_M // BLOCK_T) + rows // BLOCK_T
    t = rows % BLOCK_T
    b = (window // patches).to(tl.int64)
    n = window % patches
    row_ok = (window < num_windows) & (t < frames)
    d = tl.arange(0, BLOCK_D)
    col = head * HEAD_DIM + d
    mask = row_ok[:, None] & (d < HEAD_DIM)[None, :]

    q_rows = b * stride_qb + t * stride_qt + n * stride_qn
    kv_rows = b * stride_kvb + t * stride_kvt + n * stride_kvn
    q = tl.load(Q + q_rows[:, None] + col[None, :] * stride_qc, mask=mask, other=0.0)
    k = tl.load(KV + kv_rows[:, None] + col[None, :] * stride_kvc, mask=mask, other=0.0)
    v = tl.load(
        KV + kv_rows[:, None] + (channels + col)[None, :] * stride_kvc,
        mask=mask,
        other=0.0,
    )
    if UPCAST:
        q = q.to(tl.float32)
        k = k.to(tl.float32)
        v = v.to(tl.float32)

    # Block-diagonal scores: only entries inside a window (and inside T) count.
    s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
    same_window = (rows // BLOCK_T)[:, None] == (rows // BLOCK_T)[None, :]
    s = tl.where(same_window & (t < frames)[None, :], s, float("-inf"))
    m = tl.max(s, 1)
    p = tl.exp2(s - m[:, None])
    l_sum = tl.sum(p, 1)
    o = tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION) * (1.0 / l_sum)[:, None]

    o_rows = b * stride_ob + t * stride_ot + n * stride_on
    tl.store(
        Out + o_rows[:, None] + col[None, :], o.to(Out.dtype.element_ty), mask=mask
    )
    lse_rows = ((b * num_heads + head) * frames + t) * patches + n
    tl.store(Lse + lse_rows, (m + tl.log2(l_sum)) * 0.6931471805599453, mask=row_ok)


@triton.jit
def _time_window_bwd(
    Q,
    KV,
    DO,
    Lse,
    DQ,
    DKV,
    stride_qb,
    stride_qt,
    stride_qn,
    stride_qc,
    stride_kvb,
    stride_kvt,
    stride_kvn,
    stride_kvc,
    stride_dob,
    stride_dot,
    stride_don,
    stride_dqb,
    stride_dqt,
    stride_dqn,
    stride_dkvb,
    stride_dkvt,
    stride_dkvn,
    num_heads,
    frames,
    patches,
    num_windows,
    channels,
    sm_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_M: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    head = pid % num_heads
    rows = tl.arange(0, BLOCK_M)
    window = (pid // num_heads) * (BLOCK_M // BLOCK_T) + rows // BLOCK_T
    t = rows % BLOCK_T
    b = (window // patches).to(tl.int64)
    n = window % patches
    row_ok = (window < num_windows) & (t < frames)
    d = tl.arange(0, BLOCK_D)
    col = head * HEAD_DIM + d
    mask = row_ok[:, None] & (d < HEAD_DIM)[None, :]

    q_rows = b * stride_qb + t * stride_qt + n * stride_qn
    kv_rows = b * stride_kvb + t * stride_kvt + n * stride_kvn
    do_rows = b * stride_dob + t * stride_dot + n * stride_don
    q = tl.load(Q + q_rows[:, None] + col[None, :] * stride_qc, mask=mask, other=0.0)
    k = tl.load(KV + kv_rows[:, None] + col[None, :] * stride_kvc, mask=mask, other=0.0)
    v = tl.load(
        KV + kv_rows[:, None] + (channels + col)[None, :] * stride_kvc,
        mask=mask,
        other=0.0,
    )
    do = tl.load(DO + do_rows[:, None] + col[None, :], mask=mask, other=0.0)
    lse_rows = ((b * num_heads + head) * frames + t) * patches + n
    lse = tl.load(Lse + lse_rows, mask=row_ok, other=0.0) * 1.4426950408889634
    if UPCAST:
        q = q.to(tl.float32)
        k = k.to(tl.float32)
        v = v.to(tl.float32)
        do = do.to(tl.float32)

    # Recompute P from the saved log-sum-exp; padded rows and columns get P = 0.
    s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
    same_window = (rows // BLOCK_T)[:, None] == (rows // BLOCK_T)[None, :]
    keep = same_window & row_ok[:, None] & (t < frames)[None, :]
    p = tl.where(keep, tl.exp2(s * (sm_scale * 1.4426950408889634) - lse[:, None]), 0.0)

    dv = tl.dot(tl.trans(p).to(do.dtype), do, input_precision=DOT_PRECISION)
    dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
    delta = tl.sum(p * dp, 1)  # == rowsum(dO ∘ O) for the rows of this tile
    ds = p * (dp - delta[:, None])
    dq = tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION) * sm_scale
    dk = tl.dot(tl.trans(ds).to(q.dtype), q, input_precision=DOT_PRECISION) * sm_scale

    dq_rows = b * stride_dqb + t * stride_dqt + n * stride_dqn
    dkv_rows = b * stride_dkvb + t * stride_dkvt + n * stride_dkvn
    tl.store(
        DQ + dq_rows[:, None] + col[None, :], dq.to(DQ.dtype.element_ty), mask=mask
    )
    tl.store(
        DKV + dkv_rows[:, None] + col[None, :], dk.to(DKV.dtype.element_ty), mask=mask
    )
    tl.store(
        DKV + dkv_rows[:, None] + (channels + col)[None, :],
        dv.to(DKV.dtype.element_ty),
        mask=mask,
    )


# ----------------------------------------------------------------------------------
# S2T: window = space, FlashAttention-2
# ----------------------------------------------------------------------------------


@triton.jit
def _space_window_fwd(
    Q,
    KV,
    Out,
    Lse,
    stride_qb,
    stride_qt,
    stride_qn,
    stride_qc,
    stride_kvb,
    stride_kvt,
    stride_kvn,
    stride_kvc,
    stride_ob,
    stride_ot,
    stride_on,
    num_heads,
    frames,
    q_len,
    kv_len,
    channels,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    head = pid % num_heads
    window = pid // num_heads
    b = (window // frames).to(tl.int64)
    t = window % frames
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < q_len
    d = tl.arange(0, BLOCK_D)
    d_ok = d < HEAD_DIM
    col = head * HEAD_DIM + d

    q_base = Q + b * stride_qb + t * stride_qt
    q = tl.load(
        q_base + rows[:, None] * stride_qn + col[None, :] * stride_qc,
        mask=row_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    if UPCAST:
        q = q.to(tl.float32)
    k_base = KV + b * stride_kvb + t * stride_kvt + col[None, :] * stride_kvc
    v_base = k_base + channels * stride_kvc

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for start_n in range(0, kv_len, BLOCK_N):
        keys = start_n + tl.arange(0, BLOCK_N)
        key_ok = keys < kv_len
        kv_mask = key_ok[:, None] & d_ok[None, :]
        k = tl.load(k_base + keys[:, None] * stride_kvn, mask=kv_mask, other=0.0)
        v = tl.load(v_base + keys[:, None] * stride_kvn, mask=kv_mask, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        s = tl.where(key_ok[None, :], s, float("-inf"))  # masked key tail
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new

    o = acc * (1.0 / l_i)[:, None]
    o_base = Out + b * stride_ob + t * stride_ot
    tl.store(
        o_base + rows[:, None] * stride_on + col[None, :],
        o.to(Out.dtype.element_ty),
        mask=row_ok[:, None] & d_ok[None, :],
    )
    lse_base = Lse + ((b * num_heads + head) * frames + t) * q_len
    tl.store(lse_base + rows, (m_i + tl.log2(l_i)) * 0.6931471805599453, mask=row_ok)


@triton.jit
def _space_bwd_preprocess(
    Out,
    DO,
    Delta,
    stride_ob,
    stride_ot,
    stride_on,
    stride_dob,
    stride_dot,
    stride_don,
    num_heads,
    frames,
    q_len,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """Δ[b, h, t, n] = Σ_d dO · O over the head's columns (fp32)."""
    pid = tl.program_id(0)
    head = pid % num_heads
    window = pid // num_heads
    b = (window // frames).to(tl.int64)
    t = window % frames
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < q_len
    d = tl.arange(0, BLOCK_D)
    col = head * HEAD_DIM + d
    mask = row_ok[:, None] & (d < HEAD_DIM)[None, :]
    o = tl.load(
        Out + b * stride_ob + t * stride_ot + rows[:, None] * stride_on + col[None, :],
        mask=mask,
        other=0.0,
    ).to(tl.float32)
    do = tl.load(
        DO
        + b * stride_dob
        + t * stride_dot
        + rows[:, None] * stride_don
        + col[None, :],
        mask=mask,
        other=0.0,
    ).to(tl.float32)
    delta_base = Delta + ((b * num_heads + head) * frames + t) * q_len
    tl.store(delta_base + rows, tl.sum(o * do, 1), mask=row_ok)


@triton.jit
def _space_bwd_dkdv(
    q_base,
    do_base,
    lse_base,
    delta_base,
    k,
    v,
    keys,
    key_ok,
    col,
    d_ok,
    stride_qn,
    stride_qc,
    stride_don,
    q_len,
    sm_scale,
    BLOCK_M1: tl.constexpr,
    BLOCK_N1: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dK, dV of one key block: loop over every query block of the window.

    Works on transposed tiles (keys × queries) so Pᵀ and dSᵀ come out directly.
    """
    dk = tl.zeros([BLOCK_N1, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N1, BLOCK_D], dtype=tl.float32)
    for start_m in range(0, q_len, BLOCK_M1):
        rows = start_m + tl.arange(0, BLOCK_M1)
        row_ok = rows < q_len
        mask = row_ok[:, None] & d_ok[None, :]
        q = tl.load(
            q_base + rows[:, None] * stride_qn + col[None, :] * stride_qc,
            mask=mask,
            other=0.0,
        )
        do = tl.load(
            do_base + rows[:, None] * stride_don + col[None, :], mask=mask, other=0.0
        )
        lse = tl.load(lse_base + rows, mask=row_ok, other=0.0) * 1.4426950408889634
        delta = tl.load(delta_base + rows, mask=row_ok, other=0.0)
        if UPCAST:
            q = q.to(tl.float32)
            do = do.to(tl.float32)
        s_t = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION)
        p_t = tl.exp2(s_t * (sm_scale * 1.4426950408889634) - lse[None, :])
        p_t = tl.where(key_ok[:, None] & row_ok[None, :], p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision=DOT_PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(q.dtype), q, dk, input_precision=DOT_PRECISION)
    return dk * sm_scale, dv


@triton.jit
def _space_bwd_dq(
    k_base,
    v_base,
    q,
    do,
    lse,
    delta,
    d_ok,
    stride_kvn,
    kv_len,
    sm_scale,
    BLOCK_M2: tl.constexpr,
    BLOCK_N2: tl.constexpr,
    BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dQ of one query block: loop over every key block of the window."""
    dq = tl.zeros([BLOCK_M2, BLOCK_D], dtype=tl.float32)
    for start_n in range(0, kv_len, BLOCK_N2):
        keys = start_n + tl.arange(0, BLOCK_N2)
        key_ok = keys < kv_len
        kv_mask = key_ok[:, None] & d_ok[None, :]
        k = tl.load(k_base + keys[:, None] * stride_kvn, mask=kv_mask, other=0.0)
        v = tl.load(v_base + keys[:, None] * stride_kvn, mask=kv_mask, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        p = tl.exp2(s * (sm_scale * 1.4426950408889634) - lse[:, None])
        p = tl.where(key_ok[None, :], p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=DOT_PRECISION)
    return dq * sm_scale


@triton.jit
def _space_window_bwd(
    Q,
    KV,
    DO,
    Lse,
    Delta,
    DQ,
    DKV,
    stride_qb,
    stride_qt,
    stride_qn,
    stride_qc,
    stride_kvb,
    stride_kvt,
    stride_kvn,
    stride_kvc,
    stride_dob,
    stride_dot,
    stride_don,
    stride_dqb,
    stride_dqt,
    stride_dqn,
    stride_dkvb,
    stride_dkvt,
    stride_dkvn,
    num_heads,
    frames,
    q_len,
    kv_len,
    channels,
    sm_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M1: tl.constexpr,
    BLOCK_N1: tl.constexpr,
    BLOCK_M2: tl.constexpr,
    BLOCK_N2: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Program (window×head, j): dK/dV of key block j, then dQ of query block j."""
    pid = tl.program_id(0)
    head = pid % num_heads
    window = pid // num_heads
    b = (window // frames).to(tl.int64)
    t = window % frames
    d = tl.arange(0, BLOCK_D)
    d_ok = d < HEAD_DIM
    col = head * HEAD_DIM + d

    q_base = Q + b * stride_qb + t * stride_qt
    do_base = DO + b * stride_dob + t * stride_dot
    k_base = KV + b * stride_kvb + t * stride_kvt + col[None, :] * stride_kvc
    v_base = k_base + channels * stride_kvc
    lse_base = Lse + ((b * num_heads + head) * frames + t) * q_len
    delta_base = Delta + ((b * num_heads + head) * frames + t) * q_len

    start_n = tl.program_id(1) * BLOCK_N1
    if start_n < kv_len:
        keys = start_n + tl.arange(0, BLOCK_N1)
        key_ok = keys < kv_len
        kv_mask = key_ok[:, None] & d_ok[None, :]
        k = tl.load(k_base + keys[:, None] * stride_kvn, mask=kv_mask, other=0.0)
        v = tl.load(v_base + keys[:, None] * stride_kvn, mask=kv_mask, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        dk, dv = _space_bwd_dkdv(
            q_base,
            do_base,
            lse_base,
            delta_base,
            k,
            v,
            keys,
            key_ok,
            col,
            d_ok,
            stride_qn,
            stride_qc,
            stride_don,
            q_len,
            sm_scale,
            BLOCK_M1,
            BLOCK_N1,
            BLOCK_D,
            UPCAST,
            DOT_PRECISION,
        )
        dkv_ptrs = DKV + b * stride_dkvb + t * stride_dkvt + keys[:, None] * stride_dkvn
        tl.store(dkv_ptrs + col[None, :], dk.to(DKV.dtype.element_ty), mask=kv_mask)
        tl.store(
            dkv_ptrs + (channels + col)[None, :],
            dv.to(DKV.dtype.element_ty),
            mask=kv_mask,
        )

    start_m = tl.program_id(1) * BLOCK_M2
    if start_m < q_len:
        rows = start_m + tl.arange(0, BLOCK_M2)
        row_ok = rows < q_len
        mask = row_ok[:, None] & d_ok[None, :]
        q = tl.load(
            q_base + rows[:, None] * stride_qn + col[None, :] * stride_qc,
            mask=mask,
            other=0.0,
        )
        do = tl.load(
            do_base + rows[:, None] * stride_don + col[None, :], mask=mask, other=0.0
        )
        lse = tl.load(lse_base + rows, mask=row_ok, other=0.0) * 1.4426950408889634
        delta = tl.load(delta_base + rows, mask=row_ok, other=0.0)
        if UPCAST:
            q = q.to(tl.float32)
            do = do.to(tl.float32)
        dq = _space_bwd_dq(
            k_base,
            v_base,
            q,
            do,
            lse,
            delta,
            d_ok,
            stride_kvn,
            kv_len,
            sm_scale,
            BLOCK_M2,
            BLOCK_N2,
            BLOCK_D,
            UPCAST,
            DOT_PRECISION,
        )
        dq_base = DQ + b * stride_dqb + t * stride_dqt
        tl.store(
            dq_base + rows[:, None] * stride_dqn + col[None, :],
            dq.to(DQ.dtype.element_ty),
            mask=mask,
        )


# ----------------------------------------------------------------------------------
# Launches. Each `*_launch` function describes one kernel launch (kernel, grid,
# positional arguments, constexprs, options) on given tensors; the forward and
# backward functions below allocate the outputs and run them, and
# `compile_check.py` compiles the very same descriptions offline for sm_90.
# ----------------------------------------------------------------------------------

INTERPRETED = not isinstance(_time_window_fwd, triton.runtime.JITFunction)
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
    return Launch(_time_window_fwd, grid, args, const, options)


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
    return Launch(_time_window_bwd, grid, args, const, options)


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
    return Launch(_space_window_fwd, grid, args, const, options)


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
        _space_bwd_preprocess, grid, args, const, dict(num_warps=cfg["num_warps"])
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
    return Launch(
        _space_window_bwd, grid, args, const, dict(num_warps=cfg["num_warps"])
    )


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
