"""Offline compile of the windowed-attention kernels for a GPU target; no GPU needed.

Every kernel launch of the forward and backward passes is described at CAST-B shapes
(B = 8, T = 8, N = 196, 12 heads, C = 384 and, for the bottleneck-ratio-1 ablation,
C = 768; the query a CLS-sliced view of the CLIP stream, as in the model) on meta tensors, specialised the way Triton specialises a
real launch (arguments equal to 1 become constants, pointers and integers divisible
by 16 get the divisibility hint), and compiled with `triton.compile` for
`GPUTarget("cuda", arch, 32)` down to a cubin. ptxas's own report gives the
registers, the spill stores/loads and the stack frame of each kernel.

    python -m keras_ca2st.kernels.compile_check            # sm_90, bf16 fp16 fp32
    python -m keras_ca2st.kernels.compile_check --json

Exit status 1 if a kernel does not compile or spills registers. Runs with
`KERAS_BACKEND=torch` and without `TRITON_INTERPRET` (the interpreter replaces the
compiler); `main` restarts Python with that environment when needed.
"""

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys

# torch, Triton and the kernels are imported inside the functions: `main` may first
# have to restart Python with a suitable environment (see `main`).
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def cast_b_launches(dtype, batch=8, frames=8, patches=196, channels=384, heads=12):
    """`(name, Launch)` for every kernel launch of T2S and S2T, on meta tensors."""
    import torch

    from . import triton_launch as ta

    dtype = getattr(torch, DTYPES.get(dtype, str(dtype).replace("torch.", "")))

    def empty(*shape, dtype=dtype):
        return torch.empty(shape, dtype=dtype, device="meta")

    stream = empty(batch * frames, 1 + patches, channels)  # CLIP stream with CLS
    query = stream.view(batch, frames, 1 + patches, channels)[:, :, 1:]
    key_value = empty(batch, frames, patches, 2 * channels)
    out, grad_out = empty(*query.shape), empty(*query.shape)
    lse = empty(batch, heads, frames, patches, dtype=torch.float32)
    delta = empty(*lse.shape, dtype=torch.float32)
    d_query, d_key_value = empty(*query.shape), empty(*key_value.shape)
    grads = (d_query, d_key_value)
    return [
        ("t2s_fwd", ta.time_forward_launch(query, key_value, out, lse, heads, False)),
        (
            "t2s_bwd",
            ta.time_backward_launch(
                grad_out, query, key_value, lse, *grads, heads, False
            ),
        ),
        ("s2t_fwd", ta.space_forward_launch(query, key_value, out, lse, heads, False)),
        ("s2t_bwd_pre", ta.space_preprocess_launch(out, grad_out, delta, heads)),
        (
            "s2t_bwd",
            ta.space_backward_launch(
                grad_out, query, key_value, lse, delta, *grads, heads, False
            ),
        ),
    ]


def specialize(launch):
    """Signature, constexprs and attributes of `launch` as a real launch gets them."""
    import torch

    types = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
    signature, constexprs, attrs = {}, {}, {}
    for index, (name, value) in enumerate(
        zip(launch.kernel.arg_names, launch.args, strict=False)
    ):
        if isinstance(value, torch.Tensor):
            signature[name] = "*" + types[value.dtype]
            if (value.storage_offset() * value.element_size()) % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            if value == 1:
                signature[name] = "constexpr"
                constexprs[name] = 1
                continue
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
            if value % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
        elif isinstance(value, float):
            signature[name] = "fp32"
        else:
            raise TypeError(f"{name}: unexpected launch argument {value!r}")
    for name, value in launch.constexprs.items():
        signature[name] = "constexpr"
        constexprs[name] = value
    return signature, constexprs, attrs


_PTXAS = re.compile(
    r"(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, "
    r"(?P<loads>\d+) bytes spill loads.*?Used (?P<regs>\d+) registers",
    re.S,
)


def compile_launch(launch, arch=90):
    """Compile `launch` for `GPUTarget("cuda", arch, 32)`; ptxas's resource report."""
    import triton
    from triton.backends.compiler import GPUTarget

    signature, constexprs, attrs = specialize(launch)
    source = triton.compiler.ASTSource(
        fn=launch.kernel, signature=signature, constexprs=constexprs, attrs=attrs
    )
    log = io.StringIO()
    knobs = triton.knobs
    saved = (knobs.compilation.always_compile, knobs.nvidia.dump_ptxas_log)
    try:
        knobs.compilation.always_compile = True  # ptxas must run to report
        knobs.nvidia.dump_ptxas_log = True
        with contextlib.redirect_stdout(log):
            kernel = triton.compile(
                source, target=GPUTarget("cuda", arch, 32), options=launch.options
            )
    finally:
        knobs.compilation.always_compile, knobs.nvidia.dump_ptxas_log = saved
    match = _PTXAS.search(log.getvalue())
    if match is None or not kernel.asm.get("cubin"):
        raise RuntimeError(f"No cubin or ptxas report:\n{log.getvalue()}")
    return dict(
        kernel=launch.kernel.__name__,
        registers=int(match["regs"]),
        spill_stores=int(match["stores"]),
        spill_loads=int(match["loads"]),
        stack=int(match["stack"]),
        shared=kernel.metadata.shared,
        num_warps=kernel.metadata.num_warps,
    )


# Bottleneck widths: CAST-B (C = 384, head_dim 32) and the bottleneck-ratio-1
# ablation (C = 768, head_dim 64, the largest head dim the kernels accept).
WIDTHS = {"d32": 384, "d64": 768}


def check(arch=90, dtypes=("bf16", "fp16", "fp32"), widths=tuple(WIDTHS)):
    """Compile every launch for each dtype and width; one report dict per kernel."""
    from . import triton_launch as ta

    if ta.INTERPRETED:
        raise RuntimeError("Unset TRITON_INTERPRET: the interpreter does not compile.")
    reports = []
    for width, dtype_name in ((w, d) for w in widths for d in dtypes):
        launches = cast_b_launches(dtype_name, channels=WIDTHS[width])
        for name, launch in launches:
            report = dict(name=name, dtype=dtype_name, width=width, arch=f"sm_{arch}")
            try:
                report.update(compile_launch(launch, arch))
                report["ok"] = report["spill_stores"] == 0 == report["spill_loads"]
            except Exception as error:  # a compile failure is a check failure
                report.update(ok=False, error=f"{type(error).__name__}: {error}")
            reports.append(report)
    return reports


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp16", "fp32"])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    if os.environ.get("KERAS_BACKEND") != "torch" or os.environ.get("TRITON_INTERPRET"):
        # Importing this package loaded Keras's default backend (TensorFlow, whose
        # LLVM clashes with Triton's), or the interpreter is on: restart cleanly.
        env = dict(os.environ, KERAS_BACKEND="torch")
        env.pop("TRITON_INTERPRET", None)
        command = [sys.executable, "-m", "keras_ca2st.kernels.compile_check"]
        return subprocess.call(
            command + (sys.argv[1:] if argv is None else argv), env=env
        )
    reports = check(args.arch, args.dtypes)
    if args.json:
        print(json.dumps(reports))
    else:
        print(
            f"{'kernel':12} {'dtype':5} {'width':5} {'regs':>4} {'spill st/ld':>11} "
            f"{'stack':>5} {'smem':>6}  status"
        )
        for r in reports:
            if "error" in r:
                print(
                    f"{r['name']:12} {r['dtype']:5} {r['width']:5} FAILED {r['error']}"
                )
                continue
            spills = f"{r['spill_stores']}/{r['spill_loads']}"
            print(
                f"{r['name']:12} {r['dtype']:5} {r['width']:5} {r['registers']:4d} "
                f"{spills:>11} "
                f"{r['stack']:5d} {r['shared']:6d}  {'ok' if r['ok'] else 'SPILLS'}"
            )
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
