import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_ca2st.training import (
    DatasetEpoch,
    DistributionContext,
    TrainingState,
    build_before_fit,
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
    # The state is written last: an epoch in it has its checkpoint and log row.
    assert names == ["ModelCheckpoint", "ModelCheckpoint", "CSVLogger", "TrainingState"]
    with_data = training_callbacks(
        tmp_path, tensorboard=False, datasets=[EpochBatches()]
    )
    assert type(with_data[0]) is DatasetEpoch
    with pytest.raises(TypeError, match="set_epoch"):
        DatasetEpoch(np.zeros(3))


def test_resume_drops_log_rows_of_unsaved_epochs_and_keeps_the_best_value(tmp_path):
    # Killed after the log row of epoch 2 (0-based) but before its state.
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.json").write_text(json.dumps({"epoch": 2}))
    rows = ["epoch,loss,val_top1", "0,2.0,0.25", "1,1.5,0.5", "2,1.4,0.75"]
    (tmp_path / "log.csv").write_text("\r\n".join(rows) + "\r\n")
    callbacks = training_callbacks(
        tmp_path, monitor="val_top1", mode="max", tensorboard=False
    )
    assert (tmp_path / "log.csv").read_text().splitlines() == rows[:3]
    best = [c for c in callbacks if getattr(c, "save_best_only", False)][0]
    assert best.best == 0.5  # a resumed epoch replaces best.weights.h5 only if better
    assert [c.append for c in callbacks if type(c).__name__ == "CSVLogger"] == [True]


class EpochBatches(keras.utils.PyDataset):
    """Four batches; batch `i` of epoch `e` holds the number `10 e + i`."""

    def __init__(self, workers=1):
        super().__init__(workers=workers)
        self.epoch = 0

    def __len__(self):
        return 4

    def __getitem__(self, index):
        x = np.full((2, 1), 10 * self.epoch + index, "float32")
        return x, np.zeros(2, "int32")

    def on_epoch_end(self):
        self.epoch += 1

    def set_epoch(self, epoch):
        self.epoch = epoch


class BatchRecorder(keras.Model):
    """Records the batches `fit` trains on (run eagerly: concrete values)."""

    def __init__(self):
        inputs = keras.Input((1,))
        super().__init__(inputs, keras.layers.Dense(2)(inputs))
        self.seen = []

    def train_step(self, *args):  # (data) on torch / tensorflow, (state, data) on jax
        x = args[-1][0]
        self.seen.append(int(keras.ops.convert_to_numpy(x)[0, 0]))
        return super().train_step(*args)


@pytest.mark.parametrize("workers", [1, 2])
def test_each_epoch_trains_on_the_batches_of_its_dataset_epoch(workers):
    def fit(initial_epoch, dataset_epoch):
        data = EpochBatches(workers=workers)
        data.set_epoch(dataset_epoch)  # wherever the dataset is: no effect
        model = BatchRecorder()
        model.compile(
            "sgd",
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            run_eagerly=True,
        )
        # Without it, torch and jax read the first batch through the worker
        # pool and the batches it prefetched then open epoch 0.
        build_before_fit(model, data[0])
        model.fit(
            data,
            epochs=3,
            initial_epoch=initial_epoch,
            shuffle=False,
            verbose=0,
            callbacks=[DatasetEpoch(data)],
        )
        return model.seen

    assert fit(0, 0) == [10 * e + i for e in range(3) for i in range(4)]
    assert fit(2, 5) == [20, 21, 22, 23]  # as a resumed run's last epoch
