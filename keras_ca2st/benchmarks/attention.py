"""Benchmark of the B-CA attention core: fused Triton kernels vs regrouping.

    python -m keras_ca2st.benchmarks.attention                 # everything
    python -m keras_ca2st.benchmarks.attention --skip-model    # attention core only
    python keras_ca2st/benchmarks/attention.py --batch 8 32 --model-batch 8
    ca2st bench kernels --skip-model --batch 8

Forward and forward+backward of T2S (window = time) and S2T (window = space) at
CAST-B shapes (T = 8, N = 196, C = 384, 12 heads, bf16; batch 8 and 32), the query
a CLS-sliced view of the CLIP stream as in the model, for three paths:

- `triton`: the fused kernels of `keras_ca2st.kernels`;
- `regroup+einsum`: the reference code's way: regroup windows with permute /
  reshape copies (the windows' own `cut` / `ungroup`), einsum scores, fp32
  softmax, einsum, regroup back;
- `regroup+sdpa`: the same regrouping around `scaled_dot_product_attention`.

Achieved bandwidth = the minimum HBM traffic of the op (every input read once,
every output written once) / time, printed against the device's measured
device-to-device copy bandwidth. Targets (H100/H200): T2S ≥ 3× faster than
regroup+sdpa and ≥ 60 % of the copy bandwidth; S2T ≥ 1.3× faster than
regroup+sdpa.

Unless `--skip-model`, the whole-model training step benchmark follows
(`training_step.py`: CAST-B and CA²ST-B, torch with and without the kernels, JAX).

Without a CUDA device everything runs on tiny shapes on the CPU (the Triton kernels
in the interpreter, a two-block model) so that the script is exercised end to end;
those numbers are labelled as NOT GPU measurements and mean nothing for the targets.

The script re-runs itself in a child process with `KERAS_BACKEND=torch` (and,
without a GPU, `TRITON_INTERPRET=1`) set from the start; see `_run_in_child`. `--sweep`
also times candidate launch configurations of the kernels (`CONFIGS` in
`keras_ca2st/kernels/triton_launch.py`). This file uses absolute imports so that it
also runs as a plain script.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from keras_ca2st.benchmarks import training_step
from keras_ca2st.kernels.windows import TORCH_OPS, get_window

CAST_B = dict(frames=8, patches=196, channels=384, heads=12)
TINY = dict(frames=8, patches=13, channels=64, heads=2)


def _regroup(query, key_value, window):
    """Windows as the reference code builds them: `(W, L, C)` copies of q, k, v."""
    channels = query.shape[-1]
    key, value = key_value[..., :channels], key_value[..., channels:]
    return tuple(get_window(window).cut(x, TORCH_OPS) for x in (query, key, value))


def _ungroup(out, query, window):
    return get_window(window).ungroup(out, query.shape, TORCH_OPS).contiguous()


def regroup_einsum(query, key_value, window, heads):
    import torch

    q, k, v = _regroup(query, key_value, window)
    windows, q_len, channels = q.shape
    head_dim = channels // heads
    q = q.reshape(windows, q_len, heads, head_dim) * head_dim**-0.5
    k = k.reshape(windows, -1, heads, head_dim)
    v = v.reshape(windows, -1, heads, head_dim)
    scores = torch.einsum("wqhd,wkhd->whqk", q, k)
    weights = scores.float().softmax(-1).to(v.dtype)
    out = torch.einsum("whqk,wkhd->wqhd", weights, v).reshape(windows, q_len, channels)
    return _ungroup(out, query, window)


def regroup_sdpa(query, key_value, window, heads):
    import torch.nn.functional as F

    q, k, v = _regroup(query, key_value, window)
    windows, q_len, channels = q.shape
    head_dim = channels // heads

    def split(x):
        return x.unflatten(-1, (heads, head_dim)).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    out = out.transpose(1, 2).reshape(windows, q_len, channels)
    return _ungroup(out, query, window)


def fused(query, key_value, window, heads):
    from keras_ca2st import kernels

    return getattr(kernels, get_window(window).kernel)(query, key_value, heads)


PATHS = {
    "triton": fused,
    "regroup+einsum": regroup_einsum,
    "regroup+sdpa": regroup_sdpa,
}


def _timer(cuda, reps):
    """Milliseconds per call of `fn` (median)."""
    if cuda:
        import triton.testing

        def measure(fn):
            return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")

        return measure

    def measure(fn):
        fn()  # warm-up
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    return measure


def copy_bandwidth(device):
    """Measured device-to-device copy bandwidth in GB/s (read + write)."""
    import torch

    if device != "cuda":
        return None
    import triton.testing

    x = torch.empty(512 * 2**20, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), return_mode="median")
    return 2 * x.numel() / (ms * 1e-3) / 1e9


def min_bytes(window, batch, frames, patches, channels, heads, element, backward):
    """Minimum HBM traffic: every input read once, every output written once."""
    unit = batch * frames * patches * channels * element  # one (B, T, N, C) tensor
    rows = batch * frames * patches * heads * 4  # one fp32 value per row and head
    forward = 4 * unit + rows  # read q, k, v; write out, lse
    if not backward:
        return forward
    # read q, k, v, dO (+ O for S2T's Δ), lse; write dq, dk, dv (+ Δ for S2T)
    bwd = (7 * unit + rows) if window == "time" else (8 * unit + 3 * rows)
    return forward + bwd


def bench_attention(batches, shape, device, dtype_name, reps):
    import torch

    dtype = getattr(torch, dtype_name)
    cuda = device == "cuda"
    measure = _timer(cuda, reps)
    rows = []
    frames, patches, channels, heads = (
        shape["frames"],
        shape["patches"],
        shape["channels"],
        shape["heads"],
    )
    for batch in batches:
        gen = torch.Generator(device="cpu").manual_seed(0)

        def randn(*s, g=gen):
            return torch.randn(*s, generator=g).to(device=device, dtype=dtype)

        stream = randn(batch * frames, 1 + patches, channels).requires_grad_()
        query = stream.view(batch, frames, 1 + patches, channels)[:, :, 1:]
        key_value = randn(batch, frames, patches, 2 * channels).requires_grad_()
        grad = randn(batch, frames, patches, channels)
        for window, label in (("time", "T2S"), ("space", "S2T")):
            for path, fn in PATHS.items():
                inputs = (query, key_value, window, heads)

                def forward(fn=fn, inputs=inputs):
                    with torch.no_grad():
                        return fn(*inputs)

                def train(fn=fn, inputs=inputs, wrt=(stream, key_value), grad=grad):
                    return torch.autograd.grad(fn(*inputs), wrt, grad)

                try:
                    fwd_ms, step_ms = measure(forward), measure(train)
                except Exception as error:  # report, keep going
                    rows.append(
                        dict(op=label, batch=batch, path=path, error=repr(error))
                    )
                    continue
                element = torch.finfo(dtype).bits // 8
                args = (window, batch, frames, patches, channels, heads, element)
                rows.append(
                    dict(
                        op=label,
                        batch=batch,
                        path=path,
                        fwd_ms=fwd_ms,
                        fwd_bwd_ms=step_ms,
                        fwd_gbs=min_bytes(*args, False) / (fwd_ms * 1e-3) / 1e9,
                        fwd_bwd_gbs=min_bytes(*args, True) / (step_ms * 1e-3) / 1e9,
                    )
                )
    return rows


def print_attention(rows, copy_gbs):
    print(
        "| op | batch | path | fwd ms | fwd+bwd ms | fwd+bwd GB/s | % copy BW "
        "| speed-up vs sdpa |"
    )
    print("|---|---|---|---|---|---|---|---|")
    sdpa = {
        (r["op"], r["batch"]): r["fwd_bwd_ms"]
        for r in rows
        if r["path"] == "regroup+sdpa" and "error" not in r
    }
    for r in rows:
        if "error" in r:
            print(f"| {r['op']} | {r['batch']} | {r['path']} | failed: {r['error']} |")
            continue
        share = f"{100 * r['fwd_bwd_gbs'] / copy_gbs:.0f} %" if copy_gbs else "n/a"
        base = sdpa.get((r["op"], r["batch"]))
        speedup = f"{base / r['fwd_bwd_ms']:.2f}×" if base else "n/a"
        print(
            f"| {r['op']} | {r['batch']} | {r['path']} | {r['fwd_ms']:.3f} | "
            f"{r['fwd_bwd_ms']:.3f} | {r['fwd_bwd_gbs']:.1f} | {share} | {speedup} |"
        )


def check_targets(rows, copy_gbs):
    """The issue's targets on the attention core (fwd+bwd), per batch."""
    lines = []
    by_key = {(r["op"], r["batch"], r["path"]): r for r in rows if "error" not in r}
    for (op, batch, path), r in sorted(by_key.items()):
        if path != "triton" or (op, batch, "regroup+sdpa") not in by_key:
            continue
        speedup = by_key[(op, batch, "regroup+sdpa")]["fwd_bwd_ms"] / r["fwd_bwd_ms"]
        need = 3.0 if op == "T2S" else 1.3
        ok = speedup >= need
        text = f"{op} batch {batch}: {speedup:.2f}× vs regroup+sdpa (target ≥{need}×)"
        if op == "T2S" and copy_gbs:
            share = r["fwd_bwd_gbs"] / copy_gbs
            ok = ok and share >= 0.6
            text += f", {100 * share:.0f} % of copy bandwidth (target ≥60 %)"
        lines.append(f"{'PASS' if ok else 'MISS'}  {text}")
    return lines


def _sweep_candidates():
    def grid(**axes):
        import itertools

        keys = list(axes)
        return [
            dict(zip(keys, v, strict=True)) for v in itertools.product(*axes.values())
        ]

    return {
        "time_fwd": grid(BLOCK_M=(32, 64, 128), num_warps=(2, 4, 8), num_stages=(1,)),
        "time_bwd": grid(BLOCK_M=(16, 32, 64), num_warps=(2, 4, 8), num_stages=(1,)),
        "space_fwd": grid(
            BLOCK_M=(64, 128), BLOCK_N=(32, 64), num_warps=(4, 8), num_stages=(1, 2, 3)
        ),
        "space_bwd": [
            dict(BLOCK_M1=m1, BLOCK_N1=n1, BLOCK_M2=n1, BLOCK_N2=n2, num_warps=w)
            for m1 in (16, 32)
            for n1 in (32, 64, 128)
            for n2 in (16, 32)
            for w in (4, 8)
        ],
    }


def sweep_configs(batch, shape, device, dtype_name, limit=None):
    """Time the kernels under candidate launch configurations (16-bit table)."""
    import torch

    from keras_ca2st.kernels import triton_launch

    dtype = getattr(torch, dtype_name)
    measure = _timer(device == "cuda", reps=2)
    frames, patches, channels, heads = (shape[k] for k in CAST_B)
    stream = torch.randn(batch * frames, 1 + patches, channels, device=device)
    stream = stream.to(dtype).requires_grad_()
    query = stream.view(batch, frames, 1 + patches, channels)[:, :, 1:]
    key_value = torch.randn(batch, frames, patches, 2 * channels, device=device)
    key_value = key_value.to(dtype).requires_grad_()
    grad = torch.randn(batch, frames, patches, channels, device=device, dtype=dtype)
    table = triton_launch.CONFIGS
    print("| config | candidate | ms | |")
    print("|---|---|---|---|")
    for name, candidates in _sweep_candidates().items():
        window = "time" if name.startswith("time") else "space"
        backward = name.endswith("bwd")
        default, results = dict(table[name]), []
        for candidate in candidates[:limit]:
            table[name] = candidate

            def run(window=window, backward=backward):
                if not backward:
                    with torch.no_grad():
                        return fused(query, key_value, window, heads)
                out = fused(query, key_value, window, heads)
                return torch.autograd.grad(out, (stream, key_value), grad)

            try:
                results.append((measure(run), candidate))
            except Exception as error:  # e.g. out of shared memory
                print(f"| {name} | {candidate} | failed: {type(error).__name__} | |")
        table[name] = default
        for ms, candidate in sorted(results, key=lambda r: r[0]):
            mark = "current" if candidate == default else ""
            print(
                f"| {name}{' (fwd+bwd)' if backward else ''} | {candidate} | "
                f"{ms:.3f} | {mark} |"
            )


_CHILD = "_KERAS_CA2ST_BENCH_CHILD"


def _run_in_child(argv, tiny):
    """Re-run this script in a process whose environment is right from the start.

    Keras's torch backend imports Triton, and Triton reads `TRITON_INTERPRET` when
    it is imported, so both `KERAS_BACKEND=torch` and (without a GPU)
    `TRITON_INTERPRET=1` must be set before Python starts; TensorFlow, which Keras
    loads by default, must not be imported before Triton (their LLVMs clash).
    """
    env = dict(os.environ, KERAS_BACKEND="torch", **{_CHILD: "1"})
    if tiny or not training_step.cuda_available():
        env["TRITON_INTERPRET"] = "1"
    command = [sys.executable, "-m", "keras_ca2st.benchmarks.attention", *argv]
    return subprocess.call(command, env=env)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=None)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument("--skip-attention", action="store_true")
    parser.add_argument("--models", nargs="+", default=["cast", "ca2st"])
    parser.add_argument("--model-batch", type=int, default=None)
    parser.add_argument("--model-steps", type=int, default=None)
    parser.add_argument("--model-timeout", type=int, default=1800)
    parser.add_argument("--tiny", action="store_true", help="CPU sizes even on a GPU")
    parser.add_argument(
        "--sweep", action="store_true", help="also time candidate kernel configs"
    )
    args = parser.parse_args(argv)

    if os.environ.get(_CHILD) != "1":
        return _run_in_child(sys.argv[1:] if argv is None else argv, args.tiny)

    import torch

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda:
        args.tiny = True
        print(
            "NO CUDA DEVICE: tiny shapes on the CPU, Triton kernels in the "
            "interpreter.\nThese timings are NOT GPU measurements and say nothing "
            "about the targets; they only show that the benchmark runs end to end.\n"
        )
    device = "cuda" if cuda else "cpu"
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"device: {name}, torch {torch.__version__}")
    status = 0

    if not args.skip_attention:
        batches = args.batch or ([8, 32] if cuda else [1, 2])
        shape = CAST_B if cuda else TINY
        print(f"\n## Attention core, {args.dtype}, shape {shape}, batches {batches}\n")
        copy_gbs = copy_bandwidth(device)
        if copy_gbs:
            print(f"measured device-to-device copy bandwidth: {copy_gbs:.0f} GB/s\n")
        rows = bench_attention(batches, shape, device, args.dtype, reps=5)
        print_attention(rows, copy_gbs)
        if cuda:
            print()
            for line in check_targets(rows, copy_gbs):
                print(line)
        if any("error" in r for r in rows):
            status = 1
        if args.sweep:
            print(f"\n## Kernel launch configurations, batch {batches[0]}\n")
            sweep_configs(batches[0], shape, device, args.dtype, None if cuda else 2)

    if not args.skip_model:
        status |= training_step.run(
            args.models,
            args.model_batch,
            args.model_steps,
            args.tiny,
            args.model_timeout,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
