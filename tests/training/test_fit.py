import os

import keras
import numpy as np

from keras_ca2st.training import (
    ActionAccuracyCallback,
    build_optimizer,
    classification_loss,
    classification_metrics,
    training_callbacks,
)
from keras_ca2st.training.checkpointing import tensorboard_available
from tests.test_case import BACKEND
from tests.training.helpers import tiny_classifier, tiny_data

EK100 = {"verb": 3, "noun": 4}


def soft_targets(labels, classes, smoothing=0.1):
    """Label-smoothed one-hot targets, as the data pipeline's mixup makes."""
    targets = np.full((len(labels), classes), smoothing / classes, "float32")
    targets[np.arange(len(labels)), labels] += 1.0 - smoothing
    return targets


def test_ek100_recipe_fits_in_bfloat16_with_logs_and_checkpoints(tmp_path):
    model = tiny_classifier(num_classes=EK100, dtype="mixed_bfloat16")
    assert model.heads["verb"].compute_dtype == "bfloat16"
    inputs, labels = tiny_data(model, num_samples=8)
    optimizer = build_optimizer(
        model,
        base_learning_rate=1.0,
        batch_size=2,
        accumulation_steps=2,
        epochs=2,
        steps_per_epoch=4,
        warmup_epochs=0,
    )
    model.compile(
        optimizer=optimizer,
        loss=classification_loss(EK100),
        metrics=classification_metrics(EK100),
        jit_compile=BACKEND == "jax",
    )
    train_targets = {h: soft_targets(labels[h], c) for h, c in EK100.items()}
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    callbacks = training_callbacks(
        tmp_path,
        metric_callbacks=[ActionAccuracyCallback((inputs, labels), batch_size=4)],
        monitor="val_action_top1",
        mode="max",
    )
    history = model.fit(
        inputs,
        train_targets,
        batch_size=2,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    logs = history.history
    for key in ("loss", "verb_loss", "noun_loss", "verb_top1", "noun_top5"):
        assert np.all(np.isfinite(logs[key])), key
    # The two-head loss is the sum of the heads' losses.
    np.testing.assert_allclose(
        logs["loss"], np.add(logs["verb_loss"], logs["noun_loss"]), rtol=1e-2
    )
    assert {"val_verb_top1", "val_noun_top1", "val_action_top1"} <= set(logs)
    assert all(0.0 <= a <= 1.0 for a in logs["val_action_top1"])
    # 4 batches per epoch, 2 per update: 4 updates in all.
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 4
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert max(np.abs(a - b).max() for a, b in zip(after, before, strict=True)) > 1e-3
    assert all(w.dtype == "float32" for w in model.trainable_weights)

    files = set(os.listdir(tmp_path / "checkpoints"))
    assert files == {"epoch_001.weights.h5", "epoch_002.weights.h5", "best.weights.h5"}
    with open(tmp_path / "log.csv") as handle:
        header, *rows = handle.read().splitlines()
    assert "val_action_top1" in header.split(",") and len(rows) == 2
    assert os.path.exists(tmp_path / "state" / "state.json")
    # TensorBoard (installed with the dev extras) holds the same epoch logs.
    assert tensorboard_available()
    assert_tensorboard_scalars(tmp_path / "tensorboard" / "train", "loss", logs["loss"])
    assert_tensorboard_scalars(
        tmp_path / "tensorboard" / "validation", "action_top1", logs["val_action_top1"]
    )


def assert_tensorboard_scalars(directory, name, expected):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    events.Reload()
    written = events.Tensors(f"epoch_{name}")
    assert [event.step for event in written] == list(range(len(expected)))
    np.testing.assert_allclose(
        [float(make_ndarray(event.tensor_proto)) for event in written],
        expected,
        rtol=1e-6,
    )
