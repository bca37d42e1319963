"""Data-parallel training on each backend's own engine, behind one switch.

`setup_distribution(kind)` is the only dispatch point. Kinds:

- `"none"`: one device.
- `"data-parallel"`: the engine of the active backend (one of the three below).
- `"jax-data-parallel"`: `keras.distribution.DataParallel` over every device;
  `model.fit` shards each global batch over them and the gradients are
  averaged inside the compiled step.
- `"torch-ddp"`: one process per device started by `torchrun`;
  `torch.distributed` (NCCL on GPUs, gloo on CPU) broadcasts rank 0's weights
  when `fit` starts and all-reduces (averages) the gradients of every step
  before the optimizer applies them. Keras 3 has no torch engine for
  `model.fit`, so the context's callback installs the all-reduce in front of
  `model.optimizer.apply`; checkpoints keep the single-process format.
- `"tf-mirrored"`: `tf.distribute.MirroredStrategy` over the local devices
  (`MultiWorkerMirroredStrategy` when `TF_CONFIG` names several workers).

Usage (the same code for every kind):
```python
dist = setup_distribution("data-parallel")           # before building the model
with dist.scope():
    model = CA2ST.from_preset(...)
    model.compile(optimizer=build_optimizer(..., num_replicas=dist.num_replicas),
                  jit_compile=dist.jit_compile, ...)
train = dataset_for(indices=dist.shard_indices(num_samples, seed=0),
                    batch_size=dist.per_process_batch_size(global_batch))
model.fit(train, callbacks=training_callbacks(run_dir, dist),
          verbose=1 if dist.is_chief else 0)
```

Multi-host:
- JAX: start one process per host with `KERAS_DISTRIBUTION_JOB_ADDRESSES`
  (comma-separated `host:port`, the first is the coordinator),
  `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`;
  `setup_distribution` calls `keras.distribution.initialize()` and the mesh
  spans every device of every host. Each process feeds its own shard
  (`shard_indices`) with `per_process_batch_size`.
- torch: `torchrun --nnodes=N --node_rank=R --nproc_per_node=G
  --rdzv_endpoint=HOST:PORT ...` on every host; ranks and world size come
  from the environment. Checkpoints are written by rank 0 and read by every
  rank, so the output directory must be on a shared file system.
- TensorFlow: set `TF_CONFIG` on every worker (cluster and task) and use
  `"tf-mirrored"`; `MultiWorkerMirroredStrategy` is then used. Every worker
  feeds the whole data in global batches (`shard_indices` and
  `per_process_batch_size` say so): `tf.distribute` gives each worker its
  part of every batch.

Guide 05 (`guides/05_distributed_training.ipynb`) runs each engine as two
processes acting as two hosts; its test checks they end with the weights of
one process.
"""

import contextlib
import dataclasses
import functools
import json
import os
import warnings

import keras
import numpy as np

from keras_ca2st.data.views import shard_indices
from keras_ca2st.training.keras_internals import (
    fix_multi_worker_fit,
    transform_gradients_before_apply,
)
from keras_ca2st.training.recipe import DISTRIBUTION_KINDS

KINDS = DISTRIBUTION_KINDS
BACKEND_KINDS = {
    "jax": "jax-data-parallel",
    "torch": "torch-ddp",
    "tensorflow": "tf-mirrored",
}
BUCKET_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass
class DistributionContext:
    """What the training code needs to know about the distribution.

    Attributes:
        kind: the resolved kind (`"none"`, `"jax-data-parallel"`,
            `"torch-ddp"`, `"tf-mirrored"`).
        num_replicas: model replicas in total (devices or processes); the
            global batch is `per-replica batch × num_replicas`.
        num_processes: processes feeding data (1 except torch DDP and
            multi-host runs).
        process_index: this process's index in `[0, num_processes)`.
        strategy: the engine object (`keras.distribution.DataParallel`,
            `tf.distribute.Strategy`), or `None`.
    """

    kind: str = "none"
    num_replicas: int = 1
    num_processes: int = 1
    process_index: int = 0
    strategy: object = None

    @property
    def is_chief(self):
        """Whether this process writes checkpoints, logs and reports."""
        return self.process_index == 0

    @property
    def jit_compile(self):
        """The `jit_compile` to pass to `model.compile` for this kind.

        XLA cannot compile a step whose variables are mirrored on several
        devices, and `torch.compile` of the whole model costs more than it
        saves; JAX always compiles.
        """
        backend = keras.config.backend()
        if backend == "torch" or self.kind == "tf-mirrored":
            return False
        return "auto"

    def scope(self):
        """Context to build and compile the model in (needed by TensorFlow)."""
        if self.kind == "tf-mirrored":
            return self.strategy.scope()
        return contextlib.nullcontext()

    @property
    def data_shards(self):
        """Into how many parts the data is split before `model.fit` sees it.

        One per process, except under TensorFlow: `tf.distribute` splits each
        global batch over its workers and replicas itself, so every worker
        feeds the whole data in global batches.
        """
        return 1 if self.kind == "tf-mirrored" else self.num_processes

    @property
    def data_shard_index(self):
        """Which of the `data_shards` parts this process feeds."""
        return self.process_index if self.data_shards > 1 else 0

    def per_process_batch_size(self, global_batch_size):
        """The batch each process feeds to `model.fit`."""
        if global_batch_size % self.num_replicas:
            raise ValueError(
                f"The global batch {global_batch_size} does not split evenly over "
                f"{self.num_replicas} replicas."
            )
        return global_batch_size // self.data_shards

    def shard_indices(self, num_samples, seed=None, epoch=0):
        """This process's sample indices; see `shard_indices`."""
        return shard_indices(
            num_samples, self.data_shards, self.data_shard_index, seed, epoch
        )

    def callbacks(self):
        """Callbacks `model.fit` needs for this kind.

        List them before any callback that saves or logs (`training_callbacks`
        does), so those see the logs averaged over the ranks.
        """
        if self.kind == "torch-ddp" and self.num_processes > 1:
            return [TorchDataParallelCallback()]
        return []


def setup_distribution(kind="none", devices=None, process_group_backend=None):
    """Sets up data-parallel training for the active backend.

    Call it before building the model.

    Args:
        kind: one of `KINDS`; `"data-parallel"` picks the active backend's
            engine.
        devices: JAX / TensorFlow device names to use (default: all).
        process_group_backend: torch process-group backend (default `"nccl"`
            with CUDA, else `"gloo"`).

    Returns:
        `DistributionContext`.

    Example:
    ```python
    dist = setup_distribution("data-parallel")
    print(dist.kind, dist.num_replicas, dist.is_chief)
    ```
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown distribution {kind!r}; expected one of {KINDS}.")
    backend = keras.config.backend()
    if kind == "data-parallel":
        kind = BACKEND_KINDS.get(backend, "none")
    if kind == "none":
        return DistributionContext()
    needed = {v: k for k, v in BACKEND_KINDS.items()}[kind]
    if backend != needed:
        raise ValueError(
            f"Distribution {kind!r} runs on the {needed} backend, but "
            f"KERAS_BACKEND={backend}; use 'data-parallel' to pick the engine of "
            "the active backend."
        )
    if kind == "jax-data-parallel":
        return _setup_jax(devices)
    if kind == "torch-ddp":
        return _setup_torch(process_group_backend)
    return _setup_tensorflow(devices)


def _setup_jax(devices):
    import jax

    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) > 1:
        keras.distribution.initialize()
    devices = devices or keras.distribution.list_devices()
    # Each process feeds its own shard (`shard_indices`), already split: Keras
    # must not shard it again (it would ask for a `tf.data.Dataset` to do so).
    strategy = keras.distribution.DataParallel(
        devices=devices, auto_shard_dataset=False
    )
    keras.distribution.set_distribution(strategy)
    return DistributionContext(
        kind="jax-data-parallel",
        num_replicas=len(devices),
        num_processes=jax.process_count(),
        process_index=jax.process_index(),
        strategy=strategy,
    )


def _setup_torch(process_group_backend):
    import torch
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ and not dist.is_initialized():
        warnings.warn(
            "torch-ddp without torchrun: training in this single process. Start "
            "it with `torchrun --nproc_per_node=N ...` for data parallelism.",
            stacklevel=3,
        )
        return DistributionContext(kind="torch-ddp")
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available()
        backend = process_group_backend or ("nccl" if use_cuda else "gloo")
        if use_cuda:
            # Keras puts tensors on "cuda", i.e. the current device.
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    world = dist.get_world_size()
    return DistributionContext(
        kind="torch-ddp",
        num_replicas=world,
        num_processes=world,
        process_index=dist.get_rank(),
        strategy=dist.group.WORLD,
    )


def _setup_tensorflow(devices):
    import tensorflow as tf

    workers = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if len(workers.get("worker", [])) > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        fix_multi_worker_fit()
        resolver = strategy.cluster_resolver
        num_processes = len(workers["worker"])
        index = resolver.task_id if resolver is not None else 0
    else:
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        num_processes, index = 1, 0
    return DistributionContext(
        kind="tf-mirrored",
        num_replicas=strategy.num_replicas_in_sync,
        num_processes=num_processes,
        process_index=index,
        strategy=strategy,
    )


# === torch DDP ===


def torch_all_reduce_mean(tensors, group=None, bucket_bytes=BUCKET_BYTES):
    """Averages tensors over the torch process group, in flat buckets.

    `None` entries are passed through. Returns a new list.
    """
    import torch
    import torch.distributed as dist

    world = dist.get_world_size(group)
    result = list(tensors)
    pending, size = [], 0

    def flush():
        if not pending:
            return
        flat = torch.cat([result[i].reshape(-1) for i in pending])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        flat.div_(world)
        offset = 0
        for i in pending:
            count = result[i].numel()
            result[i] = flat[offset : offset + count].view_as(result[i])
            offset += count
        pending.clear()

    last_kind = None
    for index, tensor in enumerate(result):
        if tensor is None:
            continue
        kind = (tensor.dtype, tensor.device)
        if kind != last_kind or size >= bucket_bytes:
            flush()
            size, last_kind = 0, kind
        pending.append(index)
        size += tensor.numel() * tensor.element_size()
    flush()
    return result


def torch_broadcast_variables(variables, src=0, group=None):
    """Copies rank `src`'s values of Keras variables to every rank."""
    import torch.distributed as dist

    for variable in variables:
        dist.broadcast(variable.value.data, src=src, group=group)


def all_reduce_gradients(optimizer, group=None):
    """Makes `optimizer.apply` average the gradients over the process group.

    Installed on the outermost optimizer (e.g. a `LossScaleOptimizer`), so
    every rank sees the same gradients before any decision on them. Idempotent.
    """
    return transform_gradients_before_apply(optimizer, _all_reduce_mean(group))


@functools.cache
def _all_reduce_mean(group):
    # One function per group, so that installing it twice is recognised.
    return lambda grads: torch_all_reduce_mean(grads, group)


class TorchDataParallelCallback(keras.callbacks.Callback):
    """Makes `model.fit` data-parallel over a torch process group.

    At the start of training, rank 0's model (and optimizer) variables are
    broadcast and the gradient all-reduce is installed on `model.optimizer`.
    At the end of every epoch the batch-norm statistics are taken from rank 0
    (as DDP's buffer broadcast does) and the numeric logs are averaged over
    the ranks, so callbacks listed after this one see global figures.
    """

    def on_train_begin(self, logs=None):
        model = self.model
        torch_broadcast_variables(model.weights)
        optimizer = model.optimizer
        if optimizer is not None:
            if optimizer.built:
                torch_broadcast_variables(optimizer.variables)
            all_reduce_gradients(optimizer)

    def on_epoch_end(self, epoch, logs=None):
        import torch

        statistics = [
            w
            for w in self.model.non_trainable_weights
            if w.path.endswith(("moving_mean", "moving_variance"))
        ]
        torch_broadcast_variables(statistics)
        if not logs:
            return
        keys = sorted(k for k, v in logs.items() if np.ndim(v) == 0)
        values = torch.tensor(
            [float(logs[k]) for k in keys],
            dtype=torch.float64,
            device=self.model.weights[0].value.device,
        )
        (values,) = torch_all_reduce_mean([values])
        for key, value in zip(keys, values.tolist(), strict=True):
            logs[key] = value
