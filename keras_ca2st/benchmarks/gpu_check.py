"""The one prepared GPU check: kernels, attention core, training steps, memory, fit.

    python -m keras_ca2st.benchmarks.gpu_check OUT_DIR            # on a GPU
    python -m keras_ca2st.benchmarks.gpu_check OUT_DIR --tiny     # CPU, tiny

Writes `OUT_DIR/gpu_check.json` and `OUT_DIR/gpu_check.md`, section by section
as each ends (a section that fails or runs out of time is recorded as such and
the others still run), within `--budget-s` seconds (480 by default):

1. environment: the device, its memory, the library versions;
2. matmul: the measured bf16 matmul rate (the MFU denominator);
3. kernels: the Triton T2S / S2T kernels against the pure torch reference,
   forward and backward, fp32 / fp16 / bf16, CAST-B shapes and awkward ones;
4. attention: the attention-core benchmark (Triton vs regroup + SDPA / einsum,
   share of the measured copy bandwidth) and the issue's targets;
5. training: CAST-B and CA²ST-B training steps in bf16 at batch 8 and 32,
   torch without any fused path, torch with all of them, and JAX: clips/s,
   peak memory and MFU (FLOPs counted by `torch.utils.flop_counter` on the
   torch step: forward, activation gradients, trainable-weight gradients);
6. memory: the largest CAST-B batch that fits, without and with gradient
   checkpointing (`keras_ca2st.benchmarks.memory`);
7. fit: `fit_with_recipe` for a few steps under torch DDP (NCCL, world size
   1, through `torchrun`) and JAX data-parallel.

Without a CUDA device (or with `--tiny`) every section runs on tiny shapes on
the CPU, the Triton kernels in the interpreter; the report then says in its
first line that its figures are not GPU figures.

The project's GPU machine has Python 3.12, torch, Triton and JAX with CUDA but
no Keras or keras-hub and no package index: `--download-wheels DIR`, run where
pip can reach PyPI, saves the wheels this check needs there; on the GPU
machine install them first:

    pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl
    PYTHONPATH=/tmp/site:. python -m keras_ca2st.benchmarks.gpu_check $OUT
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

from keras_ca2st.benchmarks import training_step

# Wheels the GPU machine lacks: Keras, keras-hub and what they import there.
GPU_WHEELS = (
    "keras==3.15.1",
    "keras-hub==0.32.0",
    "absl-py",
    "namex",
    "optree",
    "rich",
    "markdown-it-py",
    "mdurl",
    "pygments",
    "h5py",
    "ml-dtypes",
    "regex",
    "kagglehub",
    "safetensors",
    "packaging",
    "tqdm",
    "requests",
    "pyyaml",
)
SECTIONS = (
    "environment",
    "matmul",
    "kernels",
    "attention",
    "training",
    "memory",
    "fit",
)
# (batch, frames, patches, key patches, channels, heads); CAST-B first.
KERNEL_CASES = {
    "time": {
        "cast_b": (2, 8, 196, 196, 384, 12),
        "t5_n13_d24": (2, 5, 13, 13, 48, 2),
        "t3_n7_d8": (1, 3, 7, 7, 32, 4),
    },
    "space": {
        "cast_b": (2, 8, 196, 196, 384, 12),
        "n70_k77_d24": (1, 2, 70, 77, 48, 2),
        "n37_k130_d32": (2, 1, 37, 130, 32, 1),
    },
}
TINY_KERNEL_CASES = {
    window: {k: v for k, v in cases.items() if k != "cast_b"}
    for window, cases in KERNEL_CASES.items()
}
# Absolute / relative tolerances against the fp32 reference on the same inputs.
TOLERANCE = {"float32": (2e-5, 2e-5), "float16": (4e-3, 4e-3), "bfloat16": (3e-2, 3e-2)}


# === Sections (each runs in a child process: `--section NAME`) ===


def section_environment(tiny):
    import torch

    info = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.cuda.is_available() and not tiny,
    )
    for name in ("triton", "jax", "keras", "keras_hub"):
        try:
            info[name] = __import__(name).__version__
        except Exception as error:  # missing on the GPU machine: say so
            info[name] = f"unavailable ({type(error).__name__})"
    if info["cuda"]:
        properties = torch.cuda.get_device_properties(0)
        info.update(device=properties.name, memory_gib=properties.total_memory / 2**30)
    else:
        info["device"] = "CPU (NOT GPU figures)"
    return info


def section_matmul(tiny):
    """bf16 matmul TFLOP/s: the best of a few timed large products."""
    import torch

    cuda = torch.cuda.is_available() and not tiny
    size = 8192 if cuda else 512
    device = "cuda" if cuda else "cpu"
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    best = float("inf")
    for _ in range(5 if cuda else 2):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10 if cuda else 1):
            a @ b
        if cuda:
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / (10 if cuda else 1))
    return dict(size=size, tflops=2 * size**3 / best / 1e12)


def section_kernels(tiny):
    import torch

    from keras_ca2st.kernels import ops, reference

    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    functions = {
        "time": (
            ops.time_window_attention_op,
            reference.time_window_attention_reference,
        ),
        "space": (
            ops.space_window_attention_op,
            reference.space_window_attention_reference,
        ),
    }
    rows = []
    cases = TINY_KERNEL_CASES if device == "cpu" else KERNEL_CASES
    for window, window_cases in cases.items():
        kernel, plain = functions[window]
        for case_name, case in window_cases.items():
            for dtype_name, (atol, rtol) in TOLERANCE.items():
                dtype = getattr(torch, dtype_name)
                inputs = _kernel_inputs(case, dtype, device)
                got = _forward_backward(kernel, *inputs, case[-1])
                want = _forward_backward(plain, *(x.float() for x in inputs), case[-1])
                errors = {
                    name: float((g.float() - w).abs().max())
                    for name, g, w in zip(("out", "dq", "dkv"), got, want, strict=True)
                }
                passed = all(
                    bool(torch.allclose(g.float(), w, atol=atol, rtol=rtol))
                    for g, w in zip(got, want, strict=True)
                )
                rows.append(
                    dict(
                        window=window,
                        case=case_name,
                        dtype=dtype_name,
                        max_error=errors,
                        passed=passed,
                    )
                )
    return dict(device=device, rows=rows, all_passed=all(r["passed"] for r in rows))


def _kernel_inputs(case, dtype, device):
    import torch

    batch, frames, patches, kv_patches, channels, _ = case
    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

    # A CLS-sliced (strided) query and a column slice of a wider projection.
    stream = randn(batch * frames, 1 + patches, channels)
    query = stream.view(batch, frames, 1 + patches, channels)[:, :, 1:]
    key_value = randn(batch, frames, kv_patches, 3 * channels)[..., channels:]
    grad = randn(batch, frames, patches, channels)
    return query, key_value, grad


def _forward_backward(function, query, key_value, grad, heads):
    query = query.detach().requires_grad_()
    key_value = key_value.detach().requires_grad_()
    out, _ = function(query, key_value, heads)
    out.backward(grad)
    return out.detach(), query.grad, key_value.grad


def section_attention(tiny):
    import torch

    from keras_ca2st.benchmarks import attention

    cuda = torch.cuda.is_available() and not tiny
    device = "cuda" if cuda else "cpu"
    batches = [8, 32] if cuda else [1]
    shape = attention.CAST_B if cuda else attention.TINY
    copy_gbs = attention.copy_bandwidth(device)
    rows = attention.bench_attention(batches, shape, device, "bfloat16", reps=5)
    return dict(
        shape=shape,
        copy_gbs=copy_gbs,
        rows=rows,
        targets=attention.check_targets(rows, copy_gbs) if cuda else [],
    )


def section_memory(tiny):
    from keras_ca2st.benchmarks import memory

    budget = memory.device_memory_gib() * 0.95 if not tiny else 4.0
    rows = []
    # Tiny (CPU): one mode and a few trials, to show the section runs.
    for mode in ("frozen",) if tiny else ("none", "frozen", "all"):
        result = memory.plan(
            "cast_base",
            "bf16",
            mode,
            budget * memory.GIB,
            tiny,
            "torch",
            300,
            max_trials=2 if tiny else 12,
        )
        rows.append(dict(gradient_checkpointing=mode, budget_gib=budget, **result))
    return dict(rows=rows)


def fit_worker(kind, tiny, steps):
    """`fit_with_recipe` for a few steps under a distribution kind; one JSON line."""
    import keras
    import numpy as np

    from keras_ca2st.training import Recipe, fit_with_recipe, setup_distribution

    dist = setup_distribution(kind)
    batch = 2 if tiny else 8
    with dist.scope():
        model = training_step.benchmark_model("cast_base", tiny, "bf16")
    rng = np.random.default_rng(0)
    inputs = {
        name: rng.standard_normal((batch * steps, *shape)).astype("float32")
        for name, shape in model.backbone.input_shapes().items()
        if not name.endswith("_times")
    }
    labels = rng.integers(0, 10, batch * steps)
    recipe = Recipe(epochs=1, batch_size=batch, warmup_epochs=0, mixed_precision="bf16")
    start = time.perf_counter()
    history = fit_with_recipe(
        model, (inputs, labels), recipe, distribution=dist, verbose=0
    )
    return dict(
        kind=dist.kind,
        replicas=dist.num_replicas,
        backend=keras.config.backend(),
        loss=float(history.history["loss"][-1]),
        seconds=time.perf_counter() - start,
    )


# === Orchestration ===


def _child(section, tiny, timeout, env=None, module_args=()):
    """Runs `--section NAME` in a fresh process; returns its JSON or an error."""
    command = [sys.executable, "-m", "keras_ca2st.benchmarks.gpu_check"]
    command += list(module_args) or ["--section", section]
    command += ["--tiny"] if tiny else []
    environment = dict(os.environ, **(env or {}))
    try:
        done = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {timeout} s")
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return dict(error=" / ".join(tail)[-600:] or f"exit {done.returncode}")
    return json.loads(lines[-1])


def _training(tiny, deadline, matmul_tflops):
    rows = []
    # Tiny (CPU): one model and batch, to show the section runs.
    batches = (1,) if tiny else (8, 32)
    runs = (
        ("torch, no fused path", "torch", "off"),
        ("torch, fused", "torch", "triton" if tiny else "auto"),
        ("jax", "jax", "auto"),
    )
    for model in ("cast",) if tiny else ("cast", "ca2st"):
        flops = None
        for batch in batches:
            for label, backend, mode in runs:
                row = dict(model=model, batch=batch, run=label)
                left = deadline - time.perf_counter()
                if left < 20:
                    rows.append(dict(row, error="skipped: out of time budget"))
                    continue
                spec = dict(
                    model=model,
                    batch=batch,
                    steps=2 if tiny else 5,
                    precision="bf16",
                    count_flops=backend == "torch" and mode == "off",
                )
                env = dict(KERAS_BACKEND=backend, KERAS_CA2ST_FUSED_ATTENTION=mode)
                if tiny and backend == "torch":
                    env["TRITON_INTERPRET"] = "1"
                result = _child(
                    None,
                    tiny,
                    min(left, 240),
                    env=env,
                    module_args=[
                        "--training-worker",
                        json.dumps(spec),
                    ],
                )
                row.update(result)
                if "flops" in row:
                    flops = row["flops"] / batch  # per clip
                if "step_ms" in row and flops and matmul_tflops:
                    step_flops = flops * batch
                    row["mfu"] = (
                        step_flops / (row["step_ms"] * 1e-3) / (matmul_tflops * 1e12)
                    )
                rows.append(row)
    return dict(rows=rows)


def _fit(tiny, deadline):
    rows = []
    torch_env = dict(KERAS_BACKEND="torch")
    left = deadline - time.perf_counter()
    if left > 30:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=1",
            "--master_port=29517",
            "-m",
            "keras_ca2st.benchmarks.gpu_check",
            "--fit-worker",
            "torch-ddp",
        ] + (["--tiny"] if tiny else [])
        try:
            done = subprocess.run(
                command,
                env=dict(os.environ, **torch_env),
                capture_output=True,
                text=True,
                timeout=min(left, 240),
            )
            lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
            rows.append(
                json.loads(lines[-1])
                if lines and not done.returncode
                else dict(kind="torch-ddp", error=(done.stderr or done.stdout)[-600:])
            )
        except subprocess.TimeoutExpired:
            rows.append(dict(kind="torch-ddp", error="timed out"))
    left = deadline - time.perf_counter()
    if left > 30:
        result = _child(
            None,
            tiny,
            min(left, 240),
            env=dict(KERAS_BACKEND="jax"),
            module_args=["--fit-worker", "jax-data-parallel"],
        )
        rows.append(
            dict(kind="jax-data-parallel", **result) if "error" in result else result
        )
    return dict(rows=rows)


def run_check(out_dir, tiny, budget_s):
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    deadline = start + budget_s
    report = dict(tiny=tiny, budget_s=budget_s, sections={})

    def record(name, result):
        result["seconds"] = round(time.perf_counter() - began, 1)
        report["sections"][name] = result
        write_report(out_dir, report)
        print(
            f"{name}: {'error' if 'error' in result else 'done'} "
            f"({result['seconds']} s)",
            flush=True,
        )

    torch_env = dict(KERAS_BACKEND="torch")
    if tiny:
        torch_env["TRITON_INTERPRET"] = "1"
    # On a GPU each torch section runs in its own process, so that a crash
    # loses one section only; the tiny CPU run shares one process among them.
    torch_sections = [("environment", "matmul", "kernels", "attention")]
    if not tiny:
        torch_sections = [(name,) for name in torch_sections[0]]
    for group in torch_sections:
        began = time.perf_counter()
        left = deadline - began
        if left < 15:
            for name in group:
                record(name, dict(error="skipped: out of time budget"))
            continue
        results = _child(",".join(group), tiny, min(left, 300), env=torch_env)
        for name in group:
            record(
                name, results.get(name, results) if "error" not in results else results
            )
    for name in ("training", "memory", "fit"):
        began = time.perf_counter()
        left = deadline - began
        if left < 15:
            record(name, dict(error="skipped: out of time budget"))
        elif name == "training":
            matmul = report["sections"].get("matmul", {}).get("tflops")
            record(name, _training(tiny, deadline, matmul))
        elif name == "fit":
            record(name, _fit(tiny, deadline))
        else:
            result = _child(name, tiny, min(left, 300), env=torch_env)
            record(name, result.get(name, result))
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_report(out_dir, report)
    return report


def write_report(out_dir, report):
    with open(os.path.join(out_dir, "gpu_check.json"), "w") as file:
        json.dump(report, file, indent=1)
    with open(os.path.join(out_dir, "gpu_check.md"), "w") as file:
        file.write(markdown(report))


def markdown(report):
    sections = report["sections"]
    lines = ["# GPU check", ""]
    if report["tiny"]:
        lines += ["**CPU run on tiny shapes: these are NOT GPU figures.**", ""]
    env = sections.get("environment", {})
    if env:
        lines += [
            "device: "
            + str(env.get("device"))
            + ", "
            + ", ".join(
                f"{k} {env.get(k)}"
                for k in ("python", "torch", "triton", "jax", "keras")
            ),
            "",
        ]
    if "tflops" in sections.get("matmul", {}):
        lines += [
            f"measured bf16 matmul rate: {sections['matmul']['tflops']:.1f} TFLOP/s",
            "",
        ]
    kernels = sections.get("kernels", {})
    if "rows" in kernels:
        lines += [
            "## Kernels vs reference (forward and backward)",
            "",
            "| window | case | dtype | max error out / dq / dkv | pass |",
            "|---|---|---|---|---|",
        ]
        for r in kernels["rows"]:
            e = r["max_error"]
            lines.append(
                f"| {r['window']} | {r['case']} | {r['dtype']} | "
                f"{e['out']:.1e} / {e['dq']:.1e} / {e['dkv']:.1e} | "
                f"{'yes' if r['passed'] else 'NO'} |"
            )
        lines.append("")
    attention = sections.get("attention", {})
    if "rows" in attention:
        lines += [
            "## Attention core, bf16",
            "",
            "| op | batch | path | fwd+bwd ms | GB/s |",
            "|---|---|---|---|---|",
        ]
        for r in attention["rows"]:
            if "error" in r:
                lines.append(f"| {r['op']} | {r['batch']} | {r['path']} | failed | |")
            else:
                lines.append(
                    f"| {r['op']} | {r['batch']} | {r['path']} | "
                    f"{r['fwd_bwd_ms']:.3f} | {r['fwd_bwd_gbs']:.1f} |"
                )
        lines += [""] + list(attention.get("targets", [])) + [""]
    training = sections.get("training", {})
    if "rows" in training:
        lines += [
            "## Training steps, bf16",
            "",
            "| model | batch | run | clips/s | peak GiB | MFU |",
            "|---|---|---|---|---|---|",
        ]
        for r in training["rows"]:
            if "error" in r:
                lines.append(
                    f"| {r['model']} | {r['batch']} | {r['run']} | {r['error'][:80]} | | |"
                )
                continue
            mfu = f"{100 * r['mfu']:.1f} %" if "mfu" in r else "n/a"
            lines.append(
                f"| {r['model']} | {r['batch']} | {r['run']} | {r['clips_per_s']:.2f} | "
                f"{r['peak']['bytes'] / 2**30:.2f} | {mfu} |"
            )
        lines.append("")
    memory = sections.get("memory", {})
    if "rows" in memory:
        lines += [
            "## Largest CAST-B batch, bf16",
            "",
            "| checkpointing | per clip GiB | largest batch |",
            "|---|---|---|",
        ]
        for r in memory["rows"]:
            per_clip = (
                "n/a" if r.get("per_clip") is None else f"{r['per_clip'] / 2**30:.3f}"
            )
            lines.append(
                f"| {r['gradient_checkpointing']} | {per_clip} | {r['largest_batch']} |"
            )
        lines.append("")
    fit = sections.get("fit", {})
    if "rows" in fit:
        lines += [
            "## model.fit, data-parallel settings",
            "",
            "| kind | replicas | loss | seconds |",
            "|---|---|---|---|",
        ]
        for r in fit["rows"]:
            if "error" in r:
                lines.append(f"| {r.get('kind')} | failed: {r['error'][:80]} | | |")
            else:
                lines.append(
                    f"| {r['kind']} | {r['replicas']} | {r['loss']:.4f} | {r['seconds']:.1f} |"
                )
        lines.append("")
    for name, result in sections.items():
        if "error" in result:
            lines.append(f"- {name}: {result['error']}")
    return "\n".join(lines) + "\n"


def download_wheels(directory):
    """Saves the wheels the GPU machine lacks (run where pip reaches PyPI)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "--platform",
        "manylinux_2_28_x86_64",
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux2014_x86_64",
        "--platform",
        "any",
        "-d",
        directory,
        *GPU_WHEELS,
    ]
    return subprocess.call(command)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", nargs="?")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes even on a GPU")
    parser.add_argument("--budget-s", type=float, default=480)
    parser.add_argument("--download-wheels", metavar="DIR")
    parser.add_argument("--section", help=argparse.SUPPRESS)  # NAME[,NAME...]
    parser.add_argument("--training-worker", help=argparse.SUPPRESS)
    parser.add_argument("--fit-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.download_wheels)
    if args.section:
        results = {}
        for name in args.section.split(","):
            results[name] = globals()[f"section_{name}"](args.tiny)
        print(json.dumps(results))
        return 0
    if args.training_worker:
        spec = json.loads(args.training_worker)
        result = training_step.model_worker(
            spec["model"],
            spec["batch"],
            spec["steps"],
            args.tiny,
            precision=spec["precision"],
            count_flops=spec["count_flops"],
        )
        print(json.dumps(result))
        return 0
    if args.fit_worker:
        result = fit_worker(args.fit_worker, args.tiny, steps=3)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(result))
        return 0
    if not args.out_dir:
        parser.error("give OUT_DIR")
    tiny = args.tiny or not training_step.cuda_available()
    report = run_check(args.out_dir, tiny, args.budget_s)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
