# %% [markdown]
# # Switching `KERAS_BACKEND`: one model on torch, JAX and TensorFlow
#
# keras_ca2st is written against Keras 3 only, so every model runs on torch, JAX and
# TensorFlow. This guide builds one tiny CA²ST under torch, saves it as a `.keras` file,
# loads that file under JAX and under TensorFlow, checks that all three compute the same
# logits from the same inputs, and times a forward pass and a training step on each.
#
# **What you need:** Python 3.11+ with the three backends
# (`pip install -c .ci/constraints.txt -e ".[torch,jax,tensorflow,demo]"`), a CPU, and
# about a minute. Nothing is downloaded.
#
# Keras reads `KERAS_BACKEND` once, when it is first imported, so a process has one
# backend for its whole life. The notebook itself never builds a model: it writes a small
# worker script and runs it once per backend, each time in a fresh Python process with
# its own `KERAS_BACKEND`.

# %%
# ── Settings ──────────────────────────────────────────────────────────────────
# tiny (a CPU, about a minute)   # full size (ViT-B CA²ST on a GPU)
WIDTH = 16  #                      768
LAYERS = 1  #                      12
FRAMES = 8  #                      16 (8 CLIP frames, 8 VideoMAE tubelets)
IMAGE_SIZE = 32  #                 224
AUDIO_FRAMES = 128  #              1024 (10.24 s of fbank)
BATCH = 2  #                       8 clips per GPU
WARMUP = 2  #                      5 (the first calls compile)
REPS = 5  #                        20
SEED = 0

# %%
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from IPython.display import Image, Markdown

settings = dict(
    seed=SEED,
    width=WIDTH,
    layers=LAYERS,
    frames=FRAMES,
    image_size=IMAGE_SIZE,
    audio_frames=AUDIO_FRAMES,
    classes=4,
    batch=BATCH,
    warmup=WARMUP,
    reps=REPS,
)
Path("settings.json").write_text(json.dumps(settings, indent=1))
print("this notebook runs on Python", sys.version.split()[0], "in", os.getcwd())

# %% [markdown]
# ## 1. The worker script
#
# `backend_worker.py` does one backend's part; it never names a backend, it only reads
# the one its process was started with (`keras.config.backend()`):
#
# - `save tiny_torch.keras` builds a tiny CA²ST (seeded), fills every weight with random
#   values (B-CA's up-projections start at zero, which would hide the exchange from the
#   comparison), writes fixed random inputs to `inputs.npz` and saves the model;
# - `load FILE [OTHER...]` loads the saved model (`keras.saving.load_model`, safe mode:
#   nothing in a `.keras` file runs as code) and runs it on the same inputs; any `OTHER`
#   file is loaded too and its weights compared with the first one's;
# - either way it writes the logits to `logits_<backend>_<file>.npy`, and times a forward
#   pass (`predict_on_batch`) and a training step (`train_on_batch`, plain SGD): a few
#   warm-up calls first (they compile), then the median of a few more. `--save-as` saves
#   the loaded model again, now from this backend.

# %%
WORKER = '''"""One backend's part of guide 04 (KERAS_BACKEND is read when Keras is imported).

KERAS_BACKEND=torch python backend_worker.py save tiny_torch.keras
KERAS_BACKEND=jax python backend_worker.py load tiny_torch.keras --save-as tiny_jax.keras
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import keras
import numpy as np

from keras_ca2st import (
    CA2ST,
    ASTEncoder,
    CA2STBackbone,
    CLIPVisionEncoder,
    VideoMAEEncoder,
)

BACKEND = keras.config.backend()
HOW_IT_RUNS = {
    "torch": "eager",
    "jax": "jax.jit (XLA)",
    "tensorflow": "tf.function graph",
}


def build(settings):
    """A tiny CA²ST: three experts, every pair exchanging through B-CA."""
    size = dict(
        hidden_dim=settings["width"],
        num_layers=settings["layers"],
        num_heads=2,
        intermediate_dim=2 * settings["width"],
    )
    video = dict(
        image_size=settings["image_size"], patch_size=8, num_frames=settings["frames"]
    )
    experts = {
        "spatial": CLIPVisionEncoder(**video, **size),
        "temporal": VideoMAEEncoder(**video, **size),
        "audio": ASTEncoder(
            num_time_frames=settings["audio_frames"], patch_size=16, stride=16, **size
        ),
    }
    pairs = [
        {"experts": ["spatial", "temporal"]},
        {"experts": ["spatial", "audio"]},
        {"experts": ["temporal", "audio"]},
    ]
    backbone = CA2STBackbone(experts=experts, pairs=pairs, cross_attention_heads=2)
    return CA2ST(backbone, num_classes=settings["classes"])


def randomize(model, seed):
    """Random values in every float weight."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            rng.normal(0.0, 0.2, w.shape).astype(w.dtype)
            if "float" in str(w.dtype)
            else keras.ops.convert_to_numpy(w)
            for w in model.weights
        ]
    )


def median_ms(step, warmup, reps):
    """Median wall time of `step()` in milliseconds, after `warmup` calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return 1e3 * statistics.median(times)


def compiled(model):
    # Plain SGD: one update op per weight keeps graph building and compiling short
    # (a real run uses AdamW, `fit_with_recipe`: a few more ops per weight).
    model.compile(
        optimizer=keras.optimizers.SGD(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["save", "load"])
    parser.add_argument("models", nargs="+", help="saved models (.keras)")
    parser.add_argument("--save-as", help="save the first model again from here")
    args = parser.parse_args()
    settings = json.loads(Path("settings.json").read_text())

    path = args.models[0]
    if args.mode == "save":
        keras.utils.set_random_seed(settings["seed"])
        model = build(settings)
        randomize(model, settings["seed"])
        rng = np.random.default_rng(settings["seed"] + 1)
        shapes = model.backbone.clip_spec.input_shapes()
        inputs = {
            name: rng.normal(size=(settings["batch"], *shapes[name])).astype("float32")
            for name in ("video", "audio")  # the time intervals take their default
        }
        np.savez("inputs.npz", **inputs)
        model.save(path)
    else:
        inputs = dict(np.load("inputs.npz"))
        model = keras.saving.load_model(path, compile=False)
    compiled(model)
    logits = keras.ops.convert_to_numpy(model.predict_on_batch(inputs))
    np.save(f"logits_{BACKEND}_{Path(path).stem}.npy", logits)
    print(f"{BACKEND:>10}: {args.mode} {path}, logits {logits.shape}")
    # Further files: are their weights those of the first, bit for bit?
    weights = {}
    for other in args.models[1:]:
        loaded = keras.saving.load_model(other, compile=False).get_weights()
        pairs = zip(model.get_weights(), loaded, strict=True)
        weights[Path(other).stem] = max(float(np.max(np.abs(a - b))) for a, b in pairs)
        print(
            f"{BACKEND:>10}: load {other}, weights vs {path}: "
            f"max |Δ| = {weights[Path(other).stem]}"
        )
    if args.save_as:
        model.save(args.save_as)
        print(f"{BACKEND:>10}: saved {args.save_as}")

    labels = np.arange(settings["batch"]) % settings["classes"]
    warmup, reps = settings["warmup"], settings["reps"]
    timing = {
        "forward": median_ms(lambda: model.predict_on_batch(inputs), warmup, reps),
        "train step": median_ms(
            lambda: model.train_on_batch(inputs, labels), warmup, reps
        ),
        "runs as": HOW_IT_RUNS[BACKEND],
        "parameters": int(model.count_params()),
        "weights": weights,
    }
    Path(f"timing_{BACKEND}.json").write_text(json.dumps(timing))
    print(
        f"{BACKEND:>10}: forward {timing['forward']:.1f} ms, "
        f"train step {timing['train step']:.1f} ms ({timing['runs as']})"
    )


if __name__ == "__main__":
    main()
'''
Path("backend_worker.py").write_text(WORKER)
print(f"wrote backend_worker.py ({len(WORKER.splitlines())} lines)")

# %% [markdown]
# ## 2. One process per backend
#
# Each run gets a copy of this notebook's environment with `KERAS_BACKEND` set. Torch
# builds and saves; JAX loads torch's file and saves it again; TensorFlow loads torch's
# file and reads JAX's. They run one after the other, so the timings do not share the
# CPU. Most of each process's time is importing its framework and compiling the steps.
#
# Two settings keep these CPU numbers about the backends rather than about the machine:
#
# - every process computes on **one CPU thread** (`OMP_NUM_THREADS` for torch,
#   `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS` for TensorFlow, XLA's own flags
#   for JAX). A model this small gains nothing from threads, and on a shared CPU, thread
#   pools waiting for each other made torch's step ten times slower here;
# - the JAX process gets cheaper XLA compile settings: at this size compiling costs
#   seconds and a step milliseconds (measured here, the step times do not change with
#   them). Leave both out for real models.

# %%
ONE_THREAD = dict(
    OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1"
)
JAX_XLA_FLAGS = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
    "--xla_cpu_use_fusion_emitters=false "
    "--xla_cpu_multi_thread_eigen=false"
)


def run_worker(backend, *arguments):
    env = dict(os.environ, KERAS_BACKEND=backend, **ONE_THREAD)
    if backend == "jax":
        env["XLA_FLAGS"] = JAX_XLA_FLAGS
    command = [sys.executable, "backend_worker.py", *arguments]
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{backend} worker failed:\n{done.stderr[-3000:]}")
    print(done.stdout, end="")
    print(f"{'':>10}  ({time.perf_counter() - began:.0f} s for the whole process)")


run_worker("torch", "save", "tiny_torch.keras")
run_worker("jax", "load", "tiny_torch.keras", "--save-as", "tiny_jax.keras")
run_worker("tensorflow", "load", "tiny_torch.keras", "tiny_jax.keras")

# %% [markdown]
# ## 3. Same weights, same logits
#
# The `.keras` file holds the architecture (a JSON config) and the weights (an HDF5 store
# of plain arrays): nothing in it belongs to one backend. Below, the logits torch computed
# before saving are compared with those JAX and TensorFlow computed after loading; and the
# file JAX saved again is compared, weight by weight, with the one torch wrote.

# %%
logits = {
    path.stem[len("logits_") :]: np.load(path) for path in Path().glob("logits_*")
}
saved = logits["torch_tiny_torch"]
print("logits of the first clip under torch:", saved[0])
print(f"largest logit magnitude: {np.abs(saved).max():.3f}\n")
for backend in ("jax", "tensorflow"):
    difference = np.abs(logits[f"{backend}_tiny_torch"] - saved).max()
    print(f"saved by torch, run by {backend:10}  max |Δ logit|  = {difference:.1e}")
    assert difference < 1e-5, backend
resaved = json.loads(Path("timing_tensorflow.json").read_text())["weights"]["tiny_jax"]
print(f"re-saved by jax, read by tensorflow  max |Δ weight| = {resaved}")

# %% [markdown]
# The weights come back bit for bit, and the logits agree to a unit or two in the last
# place of float32 (its spacing near 0.5 is 6e-8): the backends sum in different orders,
# and that is all. Every digit that matters is the same. A difference of 1e-5 or more
# would mean something else differs — a weight not loaded, a different default (an
# epsilon, an activation's approximation) — and the test suite checks for exactly that
# on every backend (`tests/models/test_ca2st.py`).
#
# ## 4. Forward and training-step time per backend

# %%
from keras_ca2st.reports.training_plots import plot_bars, results_table

timings = {
    backend: json.loads(Path(f"timing_{backend}.json").read_text())
    for backend in ("torch", "jax", "tensorflow")
}
Markdown(
    results_table(
        timings,
        {
            "forward": "forward (ms)",
            "train step": "train step (ms)",
            "runs as": "the step runs as",
            "parameters": "parameters",
        },
    ).replace("| model |", "| backend |")
)

# %%
bars = {
    backend: {"forward": t["forward"], "train step": t["train step"]}
    for backend, t in timings.items()
}
plot_bars(
    bars,
    "milliseconds (median)",
    path="backend_timings.png",
    title=f"Tiny CA²ST, batch {BATCH}, one CPU thread",
)
Image("backend_timings.png")

# %% [markdown]
# **These are tiny-model timings on a CPU** (one thread of a shared 2-core machine; run
# again, they move by tens of percent). A model this small does almost no arithmetic, so
# the numbers measure each backend's overhead per call: Python dispatch of every
# operation on torch, which runs eagerly, against one compiled XLA program on JAX and one
# TensorFlow graph. They say nothing about full-size training.
#
# On a GPU with the ViT-B experts the arithmetic dominates, and what counts is which
# attention each backend runs: the experts' self-attention goes through PyTorch's
# `scaled_dot_product_attention` (flash / memory-efficient kernels) on torch and
# `jax.nn.dot_product_attention` (cuDNN or XLA) on JAX, while TensorFlow keeps the
# written-out path; the B-CA T2S / S2T windows use the package's fused Triton kernels on
# torch with CUDA (guide 06). Mixed precision (`dtype="mixed_bfloat16"`), batch size and
# gradient checkpointing then matter more than the backend's per-call overhead.
# `python -m keras_ca2st.benchmarks.gpu_check OUT_DIR` measures CAST-B and CA²ST-B
# training steps on a GPU (torch with and without the kernels, and JAX), and
# `ca2st bench kernels` the attention core alone.
#
# **Read next:** [05 Data-parallel and multi-host training](05_distributed_training.ipynb)
# runs the same kind of per-backend subprocesses to train on several devices and hosts;
# [06 The fused kernels](06_fused_kernels.ipynb) explains the torch-only T2S / S2T
# kernels; [03 Pretrained weights and presets](03_pretrained_weights_and_presets.ipynb)
# loads converted weights, which like these `.keras` files work on every backend.
