"""Triton kernels of T2S, window = time: several windows packed per program.

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

The memory layout, the grid and the numerics shared with the S2T kernels are
described in `triton_launch.py`, which launches these kernels.
"""

import triton
import triton.language as tl


@triton.jit
def time_window_fwd(
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
def time_window_bwd(
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
