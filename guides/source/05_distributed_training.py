# %% [markdown]
# # Data-parallel and multi-host training
#
# One switch, `setup_distribution("data-parallel")`, picks the data-parallel engine of the
# active Keras backend: `keras.distribution.DataParallel` on JAX, DDP under `torchrun` on
# torch, `tf.distribute` mirrored strategies on TensorFlow. This guide runs each engine for
# real on this machine's CPU — two processes acting as two hosts — and checks that the two
# processes end with the same weights as one process trained on the same global batches.
#
# **What you need:** the package with all three backends
# (`pip install -c .ci/constraints.txt -e ".[torch,jax,tensorflow]"`), a CPU with two
# cores, and about a minute. Each run is its own process, since a process has one
# backend.
#
# ## How the engines split the work
#
# | engine | processes | who splits a global batch |
# |---|---|---|
# | JAX `DataParallel` | one per host; each sees every local device | each process feeds its shard (`shard_indices`), the mesh spans every device of every host |
# | torch DDP (`torchrun`) | one per device | each rank feeds its shard; gradients are all-reduced (NCCL on GPUs, gloo on CPUs) |
# | TensorFlow `MirroredStrategy` / `MultiWorkerMirroredStrategy` | one per host | every worker feeds whole global batches; `tf.distribute` gives each replica its part |
#
# The same code serves all three: `dist.shard_indices(n)` and
# `dist.per_process_batch_size(global_batch)` say what *this* process feeds.

# %%
# ── Settings ──────────────────────────────────────────────────────────────────
# tiny (CPU, two processes per run)     # full size (per host: 8 GPUs)
NUM_SAMPLES = 16  #                       the training set (a VideoDataset)
GLOBAL_BATCH = 4  #                       64 = 8 per GPU × 8 GPUs (× hosts)
EPOCHS = 2  #                             30
WIDTH, BLOCKS = 16, 1  #                  a preset: CAST.from_preset("cast_base")
# On GPUs: torchrun --nproc_per_node=8 (NCCL), and JAX / TensorFlow see 8 local devices.

# %%
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from IPython.display import Image, Markdown

from keras_ca2st.reports.training_plots import plot_training_curves, results_table

# %% [markdown]
# ## The training script
#
# Written once, started on every host. It builds a tiny classifier on one CLIP expert (any
# model of the package trains the same way; one small expert keeps the compile short on a
# CPU), compiles it with the package's recipe (layer-decayed AdamW, warm-up + cosine; the
# learning rate scales with the number of replicas) and fits it with the data this process
# feeds. Each process saves its weights, so we can compare them afterwards.

# %%
SCRIPT = f'''"""A tiny classifier trained data-parallel with the engine of the active backend.

    python train_data_parallel.py OUT_DIR [--one-process]
"""
import json
import os
import sys

import keras
import numpy as np

from keras_ca2st.experts import CLIPVisionEncoder
from keras_ca2st.models import CA2STBackbone, VideoClassifier
from keras_ca2st.training import Recipe, compile_with_recipe, setup_distribution

NUM_SAMPLES, GLOBAL_BATCH, EPOCHS = {NUM_SAMPLES}, {GLOBAL_BATCH}, {EPOCHS}
WIDTH, BLOCKS = {WIDTH}, {BLOCKS}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
dist = setup_distribution("none" if "--one-process" in sys.argv else "data-parallel")
recipe = Recipe(epochs=EPOCHS, batch_size=GLOBAL_BATCH, base_learning_rate=0.5,
                warmup_epochs=1, seed=0)
shape = dict(image_size=32, patch_size=8, num_frames=4, hidden_dim=WIDTH,
             num_layers=BLOCKS, num_heads=2, intermediate_dim=2 * WIDTH)
keras.utils.set_random_seed(0)  # every process builds the same model
with dist.scope():
    backbone = CA2STBackbone(experts={{"spatial": CLIPVisionEncoder(**shape)}})
    model = VideoClassifier(backbone, num_classes=3)
    compile_with_recipe(model, recipe, NUM_SAMPLES // GLOBAL_BATCH, dist)

def weights():
    return {{f"{{i:04d}}": keras.ops.convert_to_numpy(w.value)
            for i, w in enumerate(model.weights)}}

if dist.is_chief:
    np.savez(os.path.join(out, "weights_initial.npz"), **weights())
rng = np.random.default_rng(1)  # the same data on every process
video = rng.normal(size=(NUM_SAMPLES, 4, 32, 32, 3)).astype("float32")
labels = rng.integers(0, 3, NUM_SAMPLES)
mine = dist.shard_indices(NUM_SAMPLES)  # what this process feeds
history = model.fit(
    {{"video": video[mine]}}, labels[mine],
    batch_size=dist.per_process_batch_size(GLOBAL_BATCH),
    epochs=EPOCHS, shuffle=False, verbose=0,
    callbacks=dist.callbacks(),
)
np.savez(os.path.join(out, f"weights_process{{dist.process_index}}.npz"), **weights())
with open(os.path.join(out, f"result_process{{dist.process_index}}.json"), "w") as f:
    json.dump({{"kind": dist.kind, "replicas": dist.num_replicas,
               "processes": dist.num_processes, "feeds": len(mine),
               "loss": history.history["loss"]}}, f)
'''
Path("train_data_parallel.py").write_text(SCRIPT)
print(f"wrote train_data_parallel.py ({len(SCRIPT.splitlines())} lines)")

# %% [markdown]
# ## Launching: one process, and two processes acting as two hosts
#
# Every host runs the same command; only the environment (or `torchrun`'s flags) says which
# host it is and where the first one listens. On real hosts, replace `localhost` with the
# first host's address and start one command per host; the output directory must be on a
# file system every host sees (checkpoints are written by process 0).
#
# - **JAX**: `KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:port,host1:port`,
#   `KERAS_DISTRIBUTION_NUM_PROCESSES=2`, `KERAS_DISTRIBUTION_PROCESS_ID=0|1`
#   (`setup_distribution` calls `keras.distribution.initialize()`).
# - **torch**: `torchrun --nnodes 2 --node_rank 0|1 --nproc_per_node 1
#   --rdzv-backend c10d --rdzv-endpoint host0:port`.
# - **TensorFlow**: `TF_CONFIG` naming both workers and this one's index.
#
# The three processes of a run share this machine's two cores, so each computes on one
# thread, and JAX gets XLA's cheaper compile settings (at this size compiling costs
# seconds and a step milliseconds). Leave both out on GPUs.


# %%
CPU_SHARING = dict(
    OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1"
)
JAX_CPU_FLAGS = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
    "--xla_cpu_multi_thread_eigen=false"
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_host_commands(engine, out):
    """The command and environment of each of the two 'hosts' of one engine."""
    script = [sys.executable, "train_data_parallel.py", out]
    port, second = free_port(), free_port()
    hosts = []
    for index in range(2):
        env = {"KERAS_BACKEND": engine}
        command = script
        if engine == "jax":
            # Two CPU devices per host: the mesh spans 2 hosts × 2 devices.
            env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
            env.update(
                KERAS_DISTRIBUTION_JOB_ADDRESSES=f"localhost:{port},localhost:{second}",
                KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                KERAS_DISTRIBUTION_PROCESS_ID=str(index),
            )
        elif engine == "torch":
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node_rank",
                str(index),
                "--nproc_per_node",
                "1",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"localhost:{port}",
                "--rdzv-id",
                "guide",
                *script[1:],
            ]
        else:
            cluster = {"worker": [f"localhost:{port}", f"localhost:{second}"]}
            env["TF_CONFIG"] = json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            )
        hosts.append((command, env))
    return hosts


def start(command, env):
    if env["KERAS_BACKEND"] == "jax":
        env = {**env, "XLA_FLAGS": f"{JAX_CPU_FLAGS} {env.get('XLA_FLAGS', '')}"}
    return subprocess.Popen(
        command,
        env={**os.environ, **CPU_SHARING, **env},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def run_engine(engine):
    """One process and two 'hosts', started together; returns their results."""
    out = Path("runs") / engine
    began = time.perf_counter()
    jobs = [
        start(
            [
                sys.executable,
                "train_data_parallel.py",
                str(out / "one_process"),
                "--one-process",
            ],
            {"KERAS_BACKEND": engine},
        )
    ]
    jobs += [start(c, e) for c, e in two_host_commands(engine, str(out / "two_hosts"))]
    for job in jobs:
        output, _ = job.communicate(timeout=600)
        if job.returncode:
            raise RuntimeError(f"{engine} run failed:\n{output[-3000:]}")
    seconds = time.perf_counter() - began
    return out, seconds


for command, env in two_host_commands("jax", "runs/jax/two_hosts"):
    print(" ".join(f"{k}={v}" for k, v in env.items()), " ".join(command[1:]))

# %% [markdown]
# ## Run every engine


# %%
def weights(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def max_difference(a, b):
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


rows, histories = {}, {}
for engine in ("jax", "torch", "tensorflow"):
    out, seconds = run_engine(engine)
    one = weights(out / "one_process" / "weights_process0.npz")
    host = [weights(out / "two_hosts" / f"weights_process{i}.npz") for i in range(2)]
    first = json.loads((out / "two_hosts" / "result_process0.json").read_text())
    alone = json.loads((out / "one_process" / "result_process0.json").read_text())
    histories[f"{engine}, one process"] = {"loss": alone["loss"]}
    histories[f"{engine}, two hosts"] = {"loss": first["loss"]}
    rows[engine] = {
        "engine": first["kind"],
        "replicas": first["replicas"],
        "samples fed per process": first["feeds"],
        "host 0 vs host 1 (max abs)": max_difference(host[0], host[1]),
        "two hosts vs one process (max abs)": max_difference(host[0], one),
        "seconds": round(seconds, 1),
    }
    print(f"{engine}: done in {seconds:.0f}s")
Markdown(results_table(rows, key_title="backend"))

# %% [markdown]
# Both hosts hold the same weights (difference 0: one all-reduced update applied on each),
# and they equal the one-process run up to float32 rounding: data parallelism changed where
# the work ran, not what was learned. JAX and torch processes each fed half of every global
# batch (on JAX each host split its half again over its two devices: 4 replicas);
# TensorFlow workers fed whole global batches and `tf.distribute` split them.
#
# The epoch losses agree as well:

# %%
plot_training_curves(
    histories, ("loss",), "losses.png", title="Epoch loss: one process vs two hosts"
)
Image("losses.png")

# %% [markdown]
# ## The same with `ca2st train`
#
# The command takes the same switch and the same environment, so a real run on two hosts
# of 8 GPUs each is (one line per host; `HOST0` is the first host's address):
#
# ```bash
# # torch: 16 ranks, NCCL
# torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --rdzv-backend c10d \
#   --rdzv-endpoint HOST0:29500 -m keras_ca2st.cli.main train --preset ca2st_base \
#   --dataset kinetics_sound ... --distribution data-parallel --output-dir /shared/run
# # JAX: one process per host, every local GPU in the mesh
# KERAS_BACKEND=jax KERAS_DISTRIBUTION_JOB_ADDRESSES=HOST0:1234,HOST1:1234 \
#   KERAS_DISTRIBUTION_NUM_PROCESSES=2 KERAS_DISTRIBUTION_PROCESS_ID=0 \
#   ca2st train ... --distribution data-parallel --output-dir /shared/run
# # TensorFlow: TF_CONFIG on every worker
# KERAS_BACKEND=tensorflow TF_CONFIG='{"cluster": {"worker": ["HOST0:2222", "HOST1:2222"]},
#   "task": {"type": "worker", "index": 0}}' ca2st train ... --distribution data-parallel
# ```
#
# `--batch-size` is the global batch over every replica; the learning rate follows it
# (`--lr` is per 256 samples). On one host, drop the multi-host parts:
# `torchrun --nproc_per_node 8 -m keras_ca2st.cli.main train ...`, or plain `ca2st train`
# on JAX and TensorFlow, which use every local device.
#
# ## Read next
#
# - **06 The fused kernels** — what makes each replica's B-CA fast on a GPU.
# - **02 Fine-tune on your own videos** — the recipe, checkpoints and resume that these
#   runs use.
