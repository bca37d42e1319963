"""Benchmark of whole-model training steps: CAST-B and CA²ST-B, with and without
the fused kernels, on torch and JAX.

    python -m keras_ca2st.benchmarks.training_step --models cast --batch 8
    python -m keras_ca2st.benchmarks.attention --skip-attention   # the same, after
                                                                  # the device line

`model.train_on_batch` on random clips, mixed_bfloat16: clips/s and peak memory of
each model for torch without the kernels (`KERAS_CA2ST_FUSED_ATTENTION=off`),
torch with them (`auto`), and JAX; one subprocess per run
(`python -m keras_ca2st.benchmarks.training_step --worker ...`), since the Keras
backend is fixed per process.

Without a CUDA device (or with `--tiny`) the models are two-block, width-64
versions of the presets on the CPU, the Triton kernels in the interpreter: the
numbers only show that the benchmark runs end to end.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def cuda_available():
    """Whether torch sees a CUDA device, asked in a child process.

    The caller may not be able to import torch safely: Keras's default backend
    (TensorFlow) may already be loaded, and its LLVM clashes with Triton's.
    """
    probe = "import torch; print(torch.cuda.is_available())"
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True
    ).stdout.strip()
    return found == "True"


def _shrink(spec):
    """A two-block, width-64 version of a preset spec for the CPU run."""
    backbone = json.loads(json.dumps(spec["backbone"]))
    for expert in backbone["experts"].values():
        config = expert["config"]
        config.update(hidden_dim=64, num_layers=2, num_heads=2, intermediate_dim=128)
        if "image_size" in config:
            config["image_size"] = 32
        if expert["class_name"] == "ASTEncoder":
            config.update(num_time_frames=66, frequency_bins=32, position_grid=[2, 8])
    for pair in backbone.get("pairs", []):
        if pair.get("layers"):
            pair["layers"] = [1]
    backbone["cross_attention_heads"] = 2
    return backbone


PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def benchmark_model(preset, tiny, precision="bf16", gradient_checkpointing="none"):
    """The model a benchmark trains: `preset` (e.g. `"cast_base"`) with random
    weights and 400 classes, or its two-block width-64 version (`tiny`)."""
    from keras_ca2st import models
    from keras_ca2st.presets import load_preset_spec

    policy = PRECISIONS[precision]
    spec = load_preset_spec(preset)
    model_cls = getattr(models, spec["model_class"])
    if tiny:
        backbone = models.CA2STBackbone(
            **_shrink(spec),
            dtype=policy,
            gradient_checkpointing=gradient_checkpointing,
        )
        return model_cls(backbone=backbone, num_classes=10)
    return model_cls.from_preset(
        preset,
        num_classes=400,
        load_weights=False,
        dtype=policy,
        gradient_checkpointing=gradient_checkpointing,
    )


def model_worker(
    preset,
    batch,
    steps,
    tiny,
    precision="bf16",
    gradient_checkpointing="none",
    warmup=2,
    count_flops=False,
):
    """Runs in a subprocess with KERAS_BACKEND set; returns the step figures.

    `peak` is the peak memory of the timed steps (the warm-up, which builds
    the optimizer and compiles, is left out where the device can reset its
    counter: CUDA). With `count_flops` (torch), `flops` is what one training
    step executes, counted by `torch.utils.flop_counter`: the forward, the
    activation gradients and the gradients of the trainable weights only.
    """
    import keras
    import numpy as np

    backend = keras.config.backend()
    model = benchmark_model(
        preset if preset.endswith("_base") else f"{preset}_base",
        tiny,
        precision,
        gradient_checkpointing,
    )
    model.compile()
    rng = np.random.default_rng(0)
    shapes = model.backbone.encoder.input_shapes()
    inputs = {
        name: rng.standard_normal((batch, *shape)).astype("float32")
        for name, shape in shapes.items()
        if not name.endswith("_times")
    }
    labels = rng.integers(0, 10, size=(batch,))
    for _ in range(warmup):  # compile / warm-up
        model.train_on_batch(inputs, labels)
    sync = _sync_fn(backend)
    sync()
    _reset_peak(backend)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(inputs, labels)
    sync()
    seconds = (time.perf_counter() - start) / steps
    result = dict(
        clips_per_s=batch / seconds, step_ms=seconds * 1e3, peak=_peak(backend)
    )
    model.predict_on_batch(inputs)  # compile / warm-up
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(inputs)
    sync()
    result["forward_ms"] = (time.perf_counter() - start) / steps * 1e3
    if count_flops and backend == "torch":
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            model.train_on_batch(inputs, labels)
        result["flops"] = counter.get_total_flops()
    return result


def _reset_peak(backend):
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def _sync_fn(backend):
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.synchronize
    return lambda: None  # train_on_batch returns host values: already synchronous


def _peak(backend):
    """Peak device memory in bytes (GPU), else the process's peak RSS."""
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return dict(bytes=torch.cuda.max_memory_allocated(), kind="cuda")
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return dict(
                bytes=stats["peak_bytes_in_use"], kind=jax.devices()[0].platform
            )
    import resource

    return dict(
        bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, kind="rss"
    )


def bench_models(models, batch, steps, tiny, timeout):
    runs = [
        ("torch eager", "torch", "off"),
        ("torch + kernels", "torch", "triton" if tiny else "auto"),
        ("jax", "jax", "auto"),
    ]
    rows = []
    for model_name in models:
        for label, backend, mode in runs:
            env = dict(os.environ, KERAS_BACKEND=backend)
            env["KERAS_CA2ST_FUSED_ATTENTION"] = mode
            if tiny and backend == "torch":
                env["TRITON_INTERPRET"] = "1"
            command = [sys.executable, "-m", "keras_ca2st.benchmarks.training_step"]
            command += ["--worker"]
            command += [json.dumps(dict(model=model_name, batch=batch, steps=steps))]
            command += ["--tiny"] if tiny else []
            row = dict(model=model_name, run=label, mode=mode)
            try:
                done = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=timeout
                )
                lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
                if done.returncode or not lines:
                    tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                    row["error"] = " / ".join(tail)[:300] or f"exit {done.returncode}"
                else:
                    row.update(json.loads(lines[-1]))
            except subprocess.TimeoutExpired:
                row["error"] = f"timed out after {timeout} s"
            rows.append(row)
            print(f"  {model_name:6} {label:16} {_model_cells(row)}", flush=True)
    return rows


def _model_cells(row):
    if "error" in row:
        return f"failed: {row['error']}"
    peak = row["peak"]
    return (
        f"{row['clips_per_s']:.2f} clips/s, {row['step_ms']:.0f} ms/step, "
        f"peak {peak['bytes'] / 2**30:.2f} GiB ({peak['kind']})"
    )


def print_models(rows):
    print("| model | run | clips/s | ms/step | peak memory |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['run']} | failed: {r['error']} | | |")
            continue
        peak = r["peak"]
        print(
            f"| {r['model']} | {r['run']} | {r['clips_per_s']:.2f} | "
            f"{r['step_ms']:.0f} | {peak['bytes'] / 2**30:.2f} GiB ({peak['kind']}) |"
        )


def run(models, batch, steps, tiny, timeout):
    """Print the training-step table; returns the exit status (1: no models)."""
    batch = batch or (1 if tiny else 8)
    steps = steps or (2 if tiny else 10)
    scale = "tiny 2-block versions (CPU)" if tiny else "CAST-B / CA²ST-B"
    print(f"\n## Training step, mixed_bfloat16, batch {batch}, {scale}\n")
    try:
        import keras_ca2st.models  # noqa: F401  (the model part needs them)

        rows = bench_models(models, batch, steps, tiny, timeout)
        print()
        print_models(rows)
    except Exception as error:
        print(f"model benchmark skipped: cannot import the models ({error!r})")
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["cast", "ca2st"])
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--tiny", action="store_true", help="CPU sizes even on a GPU")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        spec = json.loads(args.worker)
        result = model_worker(
            spec["model"],
            spec["batch"],
            spec["steps"],
            args.tiny,
            precision=spec.get("precision", "bf16"),
            gradient_checkpointing=spec.get("gradient_checkpointing", "none"),
            count_flops=spec.get("count_flops", False),
        )
        print(json.dumps(result))
        return 0
    tiny = args.tiny or not cuda_available()
    return run(args.models, args.batch, args.steps, tiny, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
