"""Triton kernels of S2T, window = space: FlashAttention-2.

For each frame (b, t) the N queries attend to the N' keys of that frame (196×196
at CAST-B). The forward (`space_window_fwd`) streams BLOCK_N keys at a time
through an online softmax, masking the key tail (196 = 3·64 + 4); the backward
first computes Δ = rowsum(dO∘O) (`space_bwd_preprocess`), then one program per
(window×head, block) accumulates dK, dV for a key block over all queries
(`_space_bwd_dkdv`) and dQ for a query block over all keys (`_space_bwd_dq`);
no atomics (`space_window_bwd`).

The memory layout, the grid and the numerics shared with the T2S kernels are
described in `triton_launch.py`, which launches these kernels.
"""

import triton
import triton.language as tl


@triton.jit
def space_window_fwd(
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
def space_bwd_preprocess(
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
def space_window_bwd(
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
