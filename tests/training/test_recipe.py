"""`fit_with_recipe`: the one training entry point of `ca2st train` and `ca2st demo`."""

import os

import keras
import numpy as np
import pytest

from keras_ca2st.training import (
    LayerDecayAdamW,
    Recipe,
    WarmupCosineDecay,
    compile_with_recipe,
    fit_with_recipe,
    read_training_state,
)
from tests.test_case import to_numpy
from tests.training.helpers import tiny_classifier, tiny_data


def test_the_recipe_compiles_the_reference_optimizer_loss_and_metrics():
    model = tiny_classifier(num_classes={"verb": 3, "noun": 4})
    recipe = Recipe(
        epochs=10, batch_size=32, base_learning_rate=1e-3, accumulation_steps=2
    )
    compile_with_recipe(model, recipe, steps_per_epoch=20)
    optimizer = model.optimizer
    assert isinstance(optimizer, LayerDecayAdamW)
    assert optimizer.layer_decay == 0.75 and optimizer.weight_decay == 0.05
    schedule = keras.saving.deserialize_keras_object(
        optimizer.get_config()["learning_rate"]
    )
    assert isinstance(schedule, WarmupCosineDecay)
    # Peak: base × (batch × accumulation) / 256; 10 updates per epoch.
    assert schedule.peak_learning_rate == pytest.approx(1e-3 * 64 / 256)
    assert schedule.total_steps == 100 and schedule.warmup_steps == 50
    inputs, labels = tiny_data(model, num_samples=4)
    logs = model.evaluate(inputs, labels, verbose=0, return_dict=True)
    assert {"verb_top1", "noun_top5"} <= set(logs)


def test_an_in_memory_run_learns_and_a_run_directory_resumes(tmp_path):
    model = tiny_classifier()
    inputs, labels = tiny_data(model, num_samples=8)
    recipe = Recipe(
        epochs=6,
        batch_size=4,
        base_learning_rate=0.5,
        warmup_epochs=1,
        layer_decay=1.0,
        label_smoothing=0.0,
    )
    history = fit_with_recipe(model, (inputs, labels), recipe, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert "top1" in history.history

    run = os.fspath(tmp_path / "run")
    short = Recipe(epochs=2, batch_size=4, layer_decay=1.0)
    again = tiny_classifier()
    fit_with_recipe(
        again,
        (inputs, labels),
        short,
        validation=(inputs, labels),
        output_dir=run,
        verbose=0,
    )
    assert read_training_state(os.path.join(run, "state"))["epoch"] == 2
    assert os.path.exists(os.path.join(run, "checkpoints", "best.weights.h5"))
    weights = [to_numpy(w) for w in again.weights]
    # The same call again finds the run finished and trains nothing more.
    resumed = tiny_classifier(seed=5)
    history = fit_with_recipe(
        resumed,
        (inputs, labels),
        short,
        validation=(inputs, labels),
        output_dir=run,
        verbose=0,
    )
    assert history.history.get("loss", []) == []
    for before, after in zip(weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(before, to_numpy(after))


@pytest.mark.parametrize(
    "settings, fragment",
    [
        (dict(epochs=0), "epochs must be a positive integer"),
        (dict(batch_size=2.5), "batch_size must be a positive integer"),
        (dict(accumulation_steps=True), "accumulation_steps"),
        (dict(base_learning_rate=0.0), "base_learning_rate must be positive"),
        (dict(layer_decay=1.5), "layer_decay must be in (0, 1]"),
        (dict(label_smoothing=1.0), "label_smoothing must be in [0, 1)"),
        (dict(warmup_epochs=-1), "must not be negative"),
        (dict(mixed_precision="fp8"), "fp8"),
    ],
)
def test_a_recipe_refuses_values_no_run_could_use(settings, fragment):
    with pytest.raises(ValueError, match=None) as caught:
        Recipe(**settings)
    assert fragment in str(caught.value)
