import csv

import keras
import numpy as np
import pytest

from keras_ca2st.training import (
    ActionAccuracyCallback,
    average_view_softmax,
    balance_report,
    classification_scores,
    evaluate_multiview,
)


def passthrough(heads=None, classes=3):
    """A model whose logits are its input (a dict of heads if `heads`)."""
    if heads is None:
        inputs = keras.Input((classes,), name="logits")
        return keras.Model(inputs, keras.layers.Identity()(inputs))
    inputs = {h: keras.Input((c,), name=h) for h, c in heads.items()}
    return keras.Model(
        inputs, {h: keras.layers.Identity()(x) for h, x in inputs.items()}
    )


class Views(keras.utils.PyDataset):
    """Test-mode views with the attributes a data pipeline provides."""

    def __init__(self, logits, view_record_indices, labels, batch_size=2):
        super().__init__()
        self.logits = logits
        self.view_record_indices = view_record_indices
        self.labels = labels
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.view_record_indices) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        view_labels = np.asarray(self.labels)[self.view_record_indices[part]]
        return keras.tree.map_structure(lambda a: a[part], self.logits), view_labels


def test_softmax_is_averaged_over_views_not_logits():
    # Video 0: averaging logits picks class 0, averaging softmax picks class 1.
    logits = np.array(
        [
            [3.0, 0.0, 0.0],
            [0.0, 2.9, -100.0],
            [0.0, 0.0, 5.0],
            [0.0, 0.0, 4.0],
            [1.0, 0.0, 0.0],
        ],
        "float32",
    )
    video_ids = np.array([0, 0, 1, 1, 2])
    assert logits[:2].mean(0).argmax() == 0
    dataset = Views(logits, video_ids, labels=[1, 2, 1])
    result = evaluate_multiview(passthrough(), dataset)
    np.testing.assert_array_equal(result.predictions, [1, 2, 0])
    expected = average_view_softmax(logits, video_ids)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6)
    np.testing.assert_allclose(result.probabilities.sum(-1), 1.0, rtol=1e-6)
    assert result.metrics["top1"] == pytest.approx(2 / 3)
    assert result.metrics["top5"] == 1.0
    rows = result.per_video()
    assert [r["correct"] for r in rows] == [True, True, False]
    assert rows[2]["label"] == 1 and rows[2]["prediction"] == 0


def test_views_as_arrays_need_video_ids(tmp_path):
    logits = np.eye(3, dtype="float32")[[0, 0, 1, 2, 2, 2]] * 4
    with pytest.raises(ValueError, match="video_ids"):
        evaluate_multiview(passthrough(), logits)
    result = evaluate_multiview(
        passthrough(),
        logits,
        video_ids=[0, 0, 1, 1, 2, 2],
        labels=[0, 1, 2],
        batch_size=4,
    )
    assert result.predictions.tolist() == [0, 1, 2]
    # Video 1's two views tie classes 1 and 2: a tie is no hit.
    assert result.metrics == {"top1": pytest.approx(2 / 3), "top5": 1.0}
    assert [row["correct"] for row in result.per_video()] == [True, False, True]
    result.to_csv(tmp_path / "videos.csv")
    with open(tmp_path / "videos.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and rows[1]["prediction"] == "1"


def test_ek100_verb_noun_and_action_over_views():
    verb = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 1.0]], "float32")
    noun = np.array([[0.0, 0.0, 3.0]] * 2 + [[0.0, 3.0, 0.0]] * 2, "float32")
    views = {"verb": verb, "noun": noun}
    labels = [{"verb": 0, "noun": 2}, {"verb": 0, "noun": 1}]
    model = passthrough({"verb": 2, "noun": 3})
    result = evaluate_multiview(model, views, video_ids=[0, 0, 1, 1], labels=labels)
    assert result.metrics["verb_top1"] == 0.5
    assert result.metrics["noun_top1"] == 1.0
    assert result.metrics["action_top1"] == 0.5
    assert result.metrics["verb_top5"] == 1.0
    rows = result.per_video()
    assert [r["action_correct"] for r in rows] == [True, False]


def test_action_accuracy_callback_adds_validation_figures():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = keras.Model(
        inputs,
        {"verb": keras.layers.Dense(3)(hidden), "noun": keras.layers.Dense(5)(hidden)},
    )
    model.compile(optimizer="adam", loss={"verb": "mse", "noun": "mse"})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4)).astype("float32")
    y = {"verb": rng.integers(0, 3, 10), "noun": rng.integers(0, 5, 10)}
    one_hot = {"verb": np.eye(3)[y["verb"]], "noun": np.eye(5)[y["noun"]]}
    history = model.fit(
        x,
        one_hot,
        epochs=1,
        verbose=0,
        callbacks=[ActionAccuracyCallback((x, y), batch_size=4)],
    )
    expected = classification_scores(
        keras.tree.map_structure(np.asarray, model.predict(x, verbose=0)), y
    )
    for name, value in expected.items():
        assert history.history[f"val_{name}"][0] == pytest.approx(value)
    assert "val_action_top1" in history.history


class WeightedBatches(keras.utils.PyDataset):
    """`(inputs, labels, weights)` batches, as a validation `VideoDataset` gives."""

    def __init__(self, inputs, labels, weights, batch_size):
        super().__init__()
        self.parts = (inputs, labels, weights)
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.parts[2]) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return keras.tree.map_structure(lambda a: a[part], self.parts)


def test_action_accuracy_callback_leaves_out_weight_zero_samples():
    rng = np.random.default_rng(0)
    logits = {
        "verb": rng.standard_normal((10, 3)).astype("float32"),
        "noun": rng.standard_normal((10, 5)).astype("float32"),
    }
    right = {head: value.argmax(-1) for head, value in logits.items()}
    # Samples 6-9 are bad (zeros in, weight 0) and all wrong: they must not count.
    labels = {head: value.copy() for head, value in right.items()}
    labels["verb"][6:] = (right["verb"][6:] + 1) % 3
    labels["noun"][:3] = (right["noun"][:3] + 1) % 5
    weights = np.array([1.0] * 6 + [0.0] * 4, "float32")
    model = passthrough({"verb": 3, "noun": 5})
    for data in (
        (logits, labels, weights),
        WeightedBatches(logits, labels, weights, batch_size=4),
    ):
        callback = ActionAccuracyCallback(data, batch_size=4)
        callback.set_model(model)
        logs = {}
        callback.on_epoch_end(0, logs)
        assert logs["val_verb_top1"] == 1.0
        assert logs["val_noun_top1"] == pytest.approx(0.5)
        assert logs["val_action_top1"] == pytest.approx(0.5)
    expected = classification_scores(
        keras.tree.map_structure(lambda a: a[:6], logits),
        keras.tree.map_structure(lambda a: a[:6], labels),
    )
    assert {f"val_{name}": value for name, value in expected.items()} == logs


def test_balance_report_ends_with_the_harmonic_mean():
    report = balance_report({"K400": 0.8, "SSV2": 0.6, "EK100": 0.4})
    assert report.splitlines()[-1] == "| harmonic mean | 55.38 |"


def test_average_view_softmax_known_values_and_heads():
    logits = np.log(np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]]))
    averaged = average_view_softmax(logits, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(averaged, [[0.8, 0.2], [0.3, 0.7]], atol=1e-6)
    both = average_view_softmax(
        {"verb": logits, "noun": logits}, np.array([0, 1, 1, 1])
    )
    assert both["noun"].shape == (2, 2)
