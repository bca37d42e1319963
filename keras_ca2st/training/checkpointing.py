"""Checkpoints, resumable training state and logs for `model.fit`.

`TrainingState` writes the whole training state at the end of every epoch —
model weights, optimizer variables (moments, step counter, gradient
accumulators), and the random-generator states of dropout / drop path and of
Python, NumPy and torch — and puts it back when `fit` starts again, so a run
that was killed continues from its last finished epoch with the same weights,
optimizer state and step, and (with deterministic data) ends exactly where an
uninterrupted run ends. Each state is written to new files and then published
by atomically replacing `state.json`, so a kill while writing leaves the
previous state intact.

`DatasetEpoch` ties a dataset's per-epoch shuffle order and augmentation to
the `fit` epoch, and `build_before_fit` keeps Keras from mixing batches of
two epochs, so that a resumed run also sees the batches an uninterrupted run
sees.

`training_callbacks` assembles them with per-epoch weight checkpoints, a CSV
log, TensorBoard (when TensorFlow and tensorboard are installed) and the
distribution's own callbacks, in the order they must run.
"""

import csv as csv_lib
import glob
import importlib.util
import json
import os
import random

import keras
import numpy as np

from keras_ca2st.training.keras_internals import (
    build_metrics_from_batch,
    set_initial_epoch,
)

STATE_FILE = "state.json"


def read_training_state(directory):
    """The last saved state of a run directory (a dict), or `None`."""
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


class DatasetEpoch(keras.callbacks.Callback):
    """Sets each dataset's epoch to the `fit` epoch when the epoch begins.

    `VideoDataset` draws its shuffle order and augmentation from
    `(seed, epoch)`. On its own, its epoch counts the `on_epoch_end` calls
    Keras makes, including one when `fit` starts (after it reads a batch to
    build the metrics); a restarted `fit` would start counting again. With
    this callback `fit` epoch `k` uses dataset epoch `k`, in a fresh run and
    in one that `TrainingState` resumes at epoch `k`, whatever Keras calls
    before. Keras calls `on_epoch_begin` before it starts the epoch's data
    iterator and its worker threads or processes, so every batch of the
    epoch sees the new value.

    Args:
        *datasets: objects with a `set_epoch(epoch)` method, e.g.
            `VideoDataset`s (training and validation).

    Example:
    ```python
    model.fit(train, validation_data=val, epochs=50, shuffle=False,
              callbacks=[DatasetEpoch(train, val), TrainingState("runs/x/state")])
    ```
    """

    def __init__(self, *datasets):
        super().__init__()
        for dataset in datasets:
            if not callable(getattr(dataset, "set_epoch", None)):
                raise TypeError(
                    f"DatasetEpoch needs datasets with a set_epoch(epoch) method; "
                    f"got a {type(dataset).__name__}."
                )
        self.datasets = datasets

    def on_epoch_begin(self, epoch, logs=None):
        for dataset in self.datasets:
            dataset.set_epoch(epoch)


def build_before_fit(model, batch):
    """Builds a compiled model's loss and metrics from `batch`, before `fit`.

    `fit` builds them from the first batch it reads when they are not built
    yet. On the torch and jax backends (Keras 3.15) it reads that batch
    through the dataset's worker pool (`workers > 1`), and then hands the
    batches the pool prefetched meanwhile to the first epoch: every epoch
    starts with the last batches of the one before, and a resumed run's first
    epoch with batches of whatever epoch the dataset was at when `fit`
    started. Built beforehand from a batch read directly, `fit` reads none,
    and each epoch sees exactly its own batches.

    Args:
        model: a compiled model.
        batch: one `(inputs, labels[, sample_weights])` batch of the training
            data, e.g. `train[0]` (only its shapes and dtypes are used).

    Example:
    ```python
    model.compile(optimizer=..., loss=..., metrics=...)
    build_before_fit(model, train[0])
    model.fit(train, epochs=50, callbacks=[DatasetEpoch(train)])
    ```
    """
    build_metrics_from_batch(model, batch)


class TrainingState(keras.callbacks.Callback):
    """Saves the training state every epoch and restores it when `fit` starts.

    Pass the same `directory` and the same `fit` arguments when restarting;
    `fit` then skips the epochs already done. Unlike
    `keras.callbacks.BackupAndRestore`, the state is kept after training ends
    (a finished run restarted does nothing), only the chief process writes,
    and random-generator states are saved too. Epochs are the unit: a run
    killed in the middle of an epoch repeats that epoch from its start.

    Args:
        directory: where the state files go.
        is_chief: whether this process writes (every process reads).

    Attributes:
        restored_epoch: the epoch training resumed at (`None` for a fresh
            start).

    Example:
    ```python
    model.fit(train, epochs=50, callbacks=[TrainingState("runs/k400/state")])
    # Killed during epoch 17: the same command again restores the state saved
    # after epoch 16 and runs epochs 17 to 49.
    ```
    """

    def __init__(self, directory, is_chief=True):
        super().__init__()
        self.directory = os.fspath(directory)
        self.is_chief = is_chief
        self.restored_epoch = None

    def on_train_begin(self, logs=None):
        state = read_training_state(self.directory)
        if state is None:
            return
        model = self.model
        optimizer = model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.directory, state["weights"]))
        if state.get("extra"):
            with np.load(os.path.join(self.directory, state["extra"])) as extra:
                _restore_random_state(model, dict(extra), state.get("random", {}))
        set_initial_epoch(model, state["epoch"])
        self.restored_epoch = int(state["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        if not self.is_chief:
            return
        os.makedirs(self.directory, exist_ok=True)
        done = epoch + 1
        weights = f"state-{done:04d}.weights.h5"
        extra = f"state-{done:04d}.extra.npz"
        model = self.model
        model.save_weights(os.path.join(self.directory, weights), overwrite=True)
        arrays, random_state = _random_state(model)
        np.savez(os.path.join(self.directory, extra), **arrays)
        optimizer = model.optimizer
        state = {
            "epoch": done,
            "weights": weights,
            "extra": extra,
            "iterations": (
                int(keras.ops.convert_to_numpy(optimizer.iterations))
                if optimizer is not None
                else 0
            ),
            "logs": {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0},
            "random": random_state,
        }
        temporary = os.path.join(self.directory, STATE_FILE + ".tmp")
        with open(temporary, "w") as handle:
            json.dump(state, handle, indent=1)
        os.replace(temporary, os.path.join(self.directory, STATE_FILE))
        for path in glob.glob(os.path.join(self.directory, "state-*")):
            if os.path.basename(path) not in (weights, extra):
                os.remove(path)


def _seed_generator_states(model):
    """The states of the model's random generators (dropout, drop path)."""
    weights = {id(w) for w in model.weights}
    return [
        v
        for v in model.variables
        if id(v) not in weights and "seed_generator" in _key(v)
    ]


def _key(variable):
    return getattr(variable, "path", None) or variable.name


def _random_state(model):
    """Arrays and JSON-able values of every random state training draws from.

    The model's seed generators (by position: layer names get suffixes when
    a process builds several models), and the process-wide generators of
    Python, NumPy and torch (Keras' torch backend draws unseeded dropout masks
    from torch's global generator).
    """
    arrays = {
        f"seed_generator_{i:04d}": keras.ops.convert_to_numpy(v.value)
        for i, v in enumerate(_seed_generator_states(model))
    }
    version, python_state, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    arrays["numpy_keys"] = keys
    values = {
        "python": [version, list(python_state), gauss],
        "numpy": [name, int(position), int(has_gauss), float(cached)],
    }
    if keras.config.backend() == "torch":
        import torch

        arrays["torch_cpu"] = torch.get_rng_state().numpy()
        if torch.cuda.is_available():
            for i, state in enumerate(torch.cuda.get_rng_state_all()):
                arrays[f"torch_cuda_{i}"] = state.numpy()
    return arrays, values


def _restore_random_state(model, arrays, values):
    for i, variable in enumerate(_seed_generator_states(model)):
        value = arrays.get(f"seed_generator_{i:04d}")
        if value is not None and value.shape == tuple(variable.shape):
            variable.assign(value)
    if "python" in values:
        version, python_state, gauss = values["python"]
        random.setstate((version, tuple(python_state), gauss))
    if "numpy" in values and "numpy_keys" in arrays:
        name, position, has_gauss, cached = values["numpy"]
        np.random.set_state((name, arrays["numpy_keys"], position, has_gauss, cached))
    if keras.config.backend() == "torch" and "torch_cpu" in arrays:
        import torch

        torch.set_rng_state(torch.from_numpy(arrays["torch_cpu"]))
        cuda = sorted(k for k in arrays if k.startswith("torch_cuda_"))
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(
                [torch.from_numpy(arrays[k]) for k in cuda][: torch.cuda.device_count()]
            )


def tensorboard_available():
    """Keras' TensorBoard callback needs TensorFlow and the tensorboard package."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("tensorflow", "tensorboard")
    )


def training_callbacks(
    directory,
    distribution=None,
    metric_callbacks=(),
    monitor=None,
    mode="auto",
    tensorboard=True,
    csv=True,
    datasets=(),
):
    """The callbacks of a training run, in the order they must run.

    1. `DatasetEpoch` for `datasets` (their epoch is the `fit` epoch);
    2. `metric_callbacks` that add to the epoch logs (e.g.
       `ActionAccuracyCallback`);
    3. the distribution's callbacks (torch DDP: weight broadcast, gradient
       all-reduce, and averaging of the epoch logs over the ranks, including
       those the metric callbacks added);
    4. on the chief only: per-epoch weights `directory/checkpoints/
       epoch_{epoch:03d}.weights.h5` (with optimizer state), the best epoch by
       `monitor` in `best.weights.h5`, `directory/log.csv`, and TensorBoard
       logs in `directory/tensorboard` (with TensorFlow and tensorboard
       installed);
    5. `TrainingState` in `directory/state` (resume after an interruption),
       last: an epoch counts as done once everything above has written it.
       A run killed after the log row of an epoch but before its state
       repeats that epoch; its rows from that epoch on are dropped from
       `log.csv` when the run resumes.

    Args:
        directory: the run directory.
        distribution: a `DistributionContext` (default: single process).
        metric_callbacks: callbacks that add metrics to the epoch logs.
        monitor: log key for the best checkpoint, e.g. `"val_top1"`.
        mode: `"max"`, `"min"` or `"auto"` for `monitor`.
        tensorboard: write TensorBoard logs (skipped without TensorFlow and
            tensorboard).
        csv: write the CSV log (appended to when the run resumes).
        datasets: datasets with `set_epoch` (`VideoDataset`) whose shuffle
            order and augmentation follow the `fit` epoch; with them, a
            resumed run sees the same batches as an uninterrupted one.

    Returns:
        list of `keras.callbacks.Callback`.

    Example:
    ```python
    model.fit(train, validation_data=val, epochs=50, shuffle=False,
              callbacks=training_callbacks("runs/k400", dist, monitor="val_top1",
                                           datasets=(train, val)))
    ```
    """
    directory = os.fspath(directory)
    is_chief = True if distribution is None else distribution.is_chief
    callbacks = [DatasetEpoch(*datasets)] if datasets else []
    callbacks += list(metric_callbacks)
    if distribution is not None:
        callbacks += distribution.callbacks()
    state_dir = os.path.join(directory, "state")
    state = read_training_state(state_dir)
    training_state = TrainingState(state_dir, is_chief=is_chief)
    if not is_chief:
        return callbacks + [training_state]
    checkpoints = os.path.join(directory, "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)
    callbacks.append(
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, "epoch_{epoch:03d}.weights.h5"),
            save_weights_only=True,
        )
    )
    log = os.path.join(directory, "log.csv")
    if csv and state is not None:
        _keep_log_rows(log, int(state["epoch"]))
    if monitor:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                os.path.join(checkpoints, "best.weights.h5"),
                monitor=monitor,
                mode=mode,
                save_best_only=True,
                save_weights_only=True,
                # Resumed: only an epoch better than the logged ones replaces it.
                initial_value_threshold=(
                    _best_logged(log, monitor, mode) if csv and state else None
                ),
            )
        )
    if csv:
        callbacks.append(keras.callbacks.CSVLogger(log, append=state is not None))
    if tensorboard and tensorboard_available():
        callbacks.append(
            keras.callbacks.TensorBoard(os.path.join(directory, "tensorboard"))
        )
    return callbacks + [training_state]


def _keep_log_rows(path, epochs):
    """Drops the rows of epochs `>= epochs` from a `CSVLogger` file."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as handle:
        rows = list(csv_lib.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [
        row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) < epochs
    ]
    if len(kept) == len(rows):
        return
    temporary = path + ".tmp"
    with open(temporary, "w", newline="") as handle:
        csv_lib.writer(handle).writerows(kept)
    os.replace(temporary, path)


def _best_logged(path, monitor, mode):
    """The best `monitor` value in a `CSVLogger` file (`None` if unknown)."""
    if mode not in ("max", "min") or not os.path.exists(path):
        return None
    with open(path, newline="") as handle:
        values = []
        for row in csv_lib.DictReader(handle):
            try:
                values.append(float(row.get(monitor)))
            except (TypeError, ValueError):  # missing column, "NA"
                continue
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)
