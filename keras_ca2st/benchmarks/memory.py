"""Memory planner: peak training memory per clip and the largest batch that fits.

    ca2st bench memory --preset cast_base --precision bf16 --budget-gib 70
    ca2st bench memory --tiny --budget-gib 3          # CPU, tiny models

For each gradient-checkpointing mode, one training step of the preset (random
weights, the package's recipe optimizer) runs in a fresh process at a few
batch sizes, and the peak memory of the step is read where the device keeps
it: `torch.cuda.max_memory_allocated` on a CUDA device, JAX's
`peak_bytes_in_use`, else the process's peak resident memory (CPU). From two
batch sizes comes the memory per clip and the fixed part; the largest batch
under the budget is then searched by running it, not by extrapolating: the
extrapolation only picks where the search starts.
"""

import argparse
import json
import os
import subprocess
import sys

from keras_ca2st.benchmarks.training_step import cuda_available, model_worker

MODES = ("none", "frozen", "all")
GIB = 2**30


def measure(preset, batch, precision, checkpointing, tiny, backend, timeout):
    """Peak bytes of one training step at `batch`, in a fresh process.

    Returns `None` when the step does not fit (out of memory) or fails.
    """
    spec = dict(
        model=preset,
        batch=batch,
        steps=1,
        precision=precision,
        gradient_checkpointing=checkpointing,
    )
    command = [sys.executable, "-m", "keras_ca2st.benchmarks.memory", "--worker"]
    command += [json.dumps(spec)] + (["--tiny"] if tiny else [])
    env = dict(os.environ, KERAS_BACKEND=backend)
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode or not lines:
        return None
    return json.loads(lines[-1])["peak"]["bytes"]


def plan(
    preset,
    precision,
    checkpointing,
    budget,
    tiny,
    backend,
    timeout,
    log=print,
    max_trials=12,
):
    """Memory per clip, fixed memory and the largest batch under `budget` bytes.

    Returns a dict: `per_clip`, `fixed` (bytes), `largest_batch` (0 when not
    even one clip fits; a lower bound when `max_trials` ran out first, with
    `searched: False`) and `trials` (`{batch: peak bytes or None}`).
    """
    trials = {}

    def peak(batch):
        if batch not in trials:
            trials[batch] = measure(
                preset, batch, precision, checkpointing, tiny, backend, timeout
            )
            shown = (
                "did not fit"
                if trials[batch] is None
                else (f"{trials[batch] / GIB:.2f} GiB")
            )
            log(f"    {checkpointing:6} batch {batch:4d}: {shown}")
        return trials[batch]

    def fits(batch):
        if batch not in trials and len(trials) >= max_trials:
            raise _OutOfTrials
        value = peak(batch)
        return value is not None and value <= budget

    first, second = peak(1), peak(2)
    result = dict(
        per_clip=None, fixed=None, largest_batch=0, searched=True, trials=trials
    )
    if first is None or second is None:
        return result
    per_clip = max(second - first, 1)
    result.update(per_clip=per_clip, fixed=first - per_clip)
    if not fits(1):
        return result
    low = 1
    try:
        # Start where the straight line says, then find the edge by running.
        guess = max(1, int((budget - result["fixed"]) // per_clip))
        low, high = (guess, None) if fits(guess) else (1, guess)
        while high is None:  # grow until a batch does not fit
            candidate = low * 2
            if fits(candidate):
                low = candidate
            else:
                high = candidate
        while high - low > 1:
            middle = (low + high) // 2
            if fits(middle):
                low = middle
            else:
                high = middle
    except _OutOfTrials:
        result["searched"] = False
    result["largest_batch"] = low
    return result


class _OutOfTrials(Exception):
    pass


def worker(spec, tiny):
    """Runs in a subprocess: one training step, prints its peak memory."""
    result = model_worker(
        spec["model"],
        spec["batch"],
        spec["steps"],
        tiny,
        precision=spec["precision"],
        gradient_checkpointing=spec["gradient_checkpointing"],
        warmup=1,
    )
    print(json.dumps(result))


def run(preset, precision, budget_gib, modes, tiny, backend, timeout):
    device = "CUDA" if not tiny else "CPU, tiny models (not GPU figures)"
    print(
        f"## Memory plan: {preset}, {precision}, backend {backend}, budget "
        f"{budget_gib:g} GiB, {device}\n"
    )
    rows = []
    for mode in modes:
        result = plan(preset, precision, mode, budget_gib * GIB, tiny, backend, timeout)
        rows.append(dict(gradient_checkpointing=mode, **result))
    print("\n| checkpointing | per clip | fixed | largest batch |")
    print("|---|---|---|---|")
    for row in rows:
        per_clip = (
            "n/a" if row["per_clip"] is None else f"{row['per_clip'] / GIB:.3f} GiB"
        )
        fixed = "n/a" if row["fixed"] is None else f"{row['fixed'] / GIB:.2f} GiB"
        print(
            f"| {row['gradient_checkpointing']} | {per_clip} | {fixed} | "
            f"{row['largest_batch']} |"
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="cast_base")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="bf16")
    parser.add_argument(
        "--budget-gib",
        type=float,
        default=None,
        help="memory budget (default: the device's, or 4 GiB on a CPU)",
    )
    parser.add_argument(
        "--checkpointing", nargs="+", choices=MODES, default=list(MODES)
    )
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "torch"))
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--tiny", action="store_true", help="tiny models even on a GPU")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker), args.tiny)
        return 0
    tiny = args.tiny or not cuda_available()
    budget = args.budget_gib or (device_memory_gib() if not tiny else 4.0)
    rows = run(
        args.preset,
        args.precision,
        budget,
        args.checkpointing,
        tiny,
        args.backend,
        args.timeout,
    )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=1)
    return 0


def device_memory_gib():
    """The first CUDA device's memory, asked in a child process."""
    probe = "import torch; print(torch.cuda.get_device_properties(0).total_memory)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return int(out.stdout.strip()) / GIB


if __name__ == "__main__":
    sys.exit(main())
