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

`training_callbacks` assembles it with per-epoch weight checkpoints, a CSV
log, TensorBoard (when TensorFlow and tensorboard are installed) and the
distribution's own callbacks, in the order they must run.
"""

import glob
import importlib.util
import json
import os
import random

import keras
import numpy as np

STATE_FILE = "state.json"


def read_training_state(directory):
    """The last saved state of a run directory (a dict), or `None`."""
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


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
        model._initial_epoch = int(state["epoch"])
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
):
    """The callbacks of a training run, in the order they must run.

    1. `metric_callbacks` that add to the epoch logs (e.g.
       `ActionAccuracyCallback`);
    2. the distribution's callbacks (torch DDP: weight broadcast, gradient
       all-reduce, and averaging of the epoch logs over the ranks, including
       those the metric callbacks added);
    3. `TrainingState` in `directory/state` (resume after an interruption);
    4. on the chief only: per-epoch weights `directory/checkpoints/
       epoch_{epoch:03d}.weights.h5` (with optimizer state), the best epoch by
       `monitor` in `best.weights.h5`, `directory/log.csv`, and TensorBoard
       logs in `directory/tensorboard` (with TensorFlow and tensorboard
       installed).

    Args:
        directory: the run directory.
        distribution: a `DistributionContext` (default: single process).
        metric_callbacks: callbacks that add metrics to the epoch logs.
        monitor: log key for the best checkpoint, e.g. `"val_top1"`.
        mode: `"max"`, `"min"` or `"auto"` for `monitor`.
        tensorboard: write TensorBoard logs (skipped without TensorFlow and
            tensorboard).
        csv: write the CSV log (appended to when the run resumes).

    Returns:
        list of `keras.callbacks.Callback`.

    Example:
    ```python
    model.fit(train, validation_data=val, epochs=50,
              callbacks=training_callbacks("runs/k400", dist, monitor="val_top1"))
    ```
    """
    directory = os.fspath(directory)
    is_chief = True if distribution is None else distribution.is_chief
    callbacks = list(metric_callbacks)
    if distribution is not None:
        callbacks += distribution.callbacks()
    state_dir = os.path.join(directory, "state")
    resuming = read_training_state(state_dir) is not None
    callbacks.append(TrainingState(state_dir, is_chief=is_chief))
    if not is_chief:
        return callbacks
    checkpoints = os.path.join(directory, "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)
    callbacks.append(
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, "epoch_{epoch:03d}.weights.h5"),
            save_weights_only=True,
        )
    )
    if monitor:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                os.path.join(checkpoints, "best.weights.h5"),
                monitor=monitor,
                mode=mode,
                save_best_only=True,
                save_weights_only=True,
            )
        )
    if csv:
        callbacks.append(
            keras.callbacks.CSVLogger(
                os.path.join(directory, "log.csv"), append=resuming
            )
        )
    if tensorboard and tensorboard_available():
        callbacks.append(
            keras.callbacks.TensorBoard(os.path.join(directory, "tensorboard"))
        )
    return callbacks
