import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_ca2st.training import (
    DistributionContext,
    TrainingState,
    read_training_state,
    training_callbacks,
)
from tests.training.helpers import max_difference
from tests.training.workers import run_resume

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def run_worker(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "tests.training.workers", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    run_dir = str(tmp_path / "run")
    # Killed (SIGKILL) after the first batch of epoch 1 (0-based) of 3.
    killed = run_worker("resume", run_dir, "--epochs", "3", "--kill-at", "1", "0")
    assert killed.returncode == -9, killed.stderr[-3000:]
    state = read_training_state(os.path.join(run_dir, "state"))
    # Two batches per epoch, two batches per update (gradient accumulation).
    assert state["epoch"] == 1 and state["iterations"] == 1
    resumed = run_worker("resume", run_dir, "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with open(os.path.join(run_dir, "result.json")) as handle:
        result = json.load(handle)
    assert result["resumed_from"] == 1 and result["epochs_run"] == [1, 2]
    assert result["iterations"] == 3
    with np.load(os.path.join(run_dir, "weights.npz")) as data:
        resumed_weights = dict(data)

    expected, _ = run_resume(str(tmp_path / "uninterrupted"), 3)
    assert max_difference(resumed_weights, expected) <= 1e-6
    # The killed run's checkpoints and log rows were kept and continued.
    checkpoints = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    assert checkpoints == [
        "best.weights.h5",
        "epoch_001.weights.h5",
        "epoch_002.weights.h5",
        "epoch_003.weights.h5",
    ]
    with open(os.path.join(run_dir, "log.csv")) as handle:
        rows = handle.read().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]
    # Only the latest state is kept.
    assert sorted(os.listdir(os.path.join(run_dir, "state"))) == [
        "state-0003.extra.npz",
        "state-0003.weights.h5",
        "state.json",
    ]


def dropout_model():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    return model


def test_restart_restores_optimizer_and_dropout_random_state(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6)).astype("float32")
    y = rng.integers(0, 3, 8)
    fit = dict(batch_size=4, shuffle=False, verbose=0)

    uninterrupted = dropout_model()
    uninterrupted.fit(x, y, epochs=3, **fit)

    first = dropout_model()
    first.fit(x, y, epochs=2, callbacks=[TrainingState(tmp_path / "a")], **fit)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    restarted = dropout_model()  # a fresh process would start like this
    callback = TrainingState(tmp_path / "a")
    history = restarted.fit(x, y, epochs=3, callbacks=[callback], **fit)
    assert callback.restored_epoch == 2 and history.epoch == [2]
    assert int(keras.ops.convert_to_numpy(restarted.optimizer.iterations)) == 6
    for a, b in zip(restarted.weights, uninterrupted.weights, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-6
        )

    # Dropout matters here: without its generator state the last epoch differs.
    copy = tmp_path / "b"
    state = read_training_state(copy)
    assert state["epoch"] == 2
    os.remove(copy / state["extra"])
    state["extra"] = None
    with open(copy / "state.json", "w") as handle:
        json.dump(state, handle)
    other = dropout_model()
    other.fit(x, y, epochs=3, callbacks=[TrainingState(copy)], **fit)
    differences = [
        np.abs(keras.ops.convert_to_numpy(a) - keras.ops.convert_to_numpy(b)).max()
        for a, b in zip(other.weights, uninterrupted.weights, strict=True)
    ]
    assert max(differences) > 1e-4


def test_only_the_chief_writes(tmp_path):
    worker = training_callbacks(
        tmp_path, distribution=DistributionContext(num_processes=2, process_index=1)
    )
    assert [type(c) for c in worker] == [TrainingState]
    assert not worker[0].is_chief
    chief = training_callbacks(tmp_path, monitor="val_top1", tensorboard=False)
    names = [type(c).__name__ for c in chief]
    assert names == ["TrainingState", "ModelCheckpoint", "ModelCheckpoint", "CSVLogger"]
