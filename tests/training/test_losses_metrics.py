import keras
import numpy as np
import pytest

from keras_ca2st.training import (
    ActionAccuracy,
    SmoothedCrossEntropy,
    TopKAccuracy,
    classification_loss,
    classification_metrics,
    harmonic_mean,
)
from keras_ca2st.training.evaluation import top_k_hits


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_label_smoothing_matches_the_smoothed_one_hot_target():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 7)).astype("float32")
    labels = np.array([0, 3, 6, 2, 2])
    targets = np.full((5, 7), 0.1 / 7)
    targets[np.arange(5), labels] += 0.9
    expected = -(targets * log_softmax(logits.astype(np.float64))).sum(-1).mean()
    loss = SmoothedCrossEntropy(label_smoothing=0.1)
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    # (batch, 1) labels are class indices too.
    assert float(loss(labels[:, None], logits)) == pytest.approx(expected, rel=1e-5)
    # Without smoothing: plain sparse cross-entropy.
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(SmoothedCrossEntropy(0.0)(labels, logits)) == pytest.approx(
        float(plain(labels, logits)), rel=1e-5
    )


def test_soft_targets_are_used_as_given():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 5)).astype("float32")
    targets = rng.dirichlet(np.ones(5), size=4).astype("float32")
    expected = -(targets * log_softmax(logits.astype(np.float64))).sum(-1).mean()
    # Smoothing applies to class indices only; mixup targets are already smooth.
    loss = SmoothedCrossEntropy(label_smoothing=0.1)
    assert float(loss(targets, logits)) == pytest.approx(expected, rel=1e-5)


def test_loss_is_float32_for_bfloat16_logits_and_serializes():
    logits = keras.ops.cast(np.array([[20.0, 0.0, -20.0]]), "bfloat16")
    value = SmoothedCrossEntropy(0.1)(np.array([0]), logits)
    assert np.isfinite(float(value))
    config = keras.saving.serialize_keras_object(SmoothedCrossEntropy(0.2))
    assert keras.saving.deserialize_keras_object(config).label_smoothing == 0.2


def test_ek100_loss_is_one_loss_per_head():
    losses = classification_loss({"verb": 97, "noun": 300}, label_smoothing=0.1)
    assert set(losses) == {"verb", "noun"}
    assert all(isinstance(v, SmoothedCrossEntropy) for v in losses.values())
    metrics = classification_metrics({"verb": 97, "noun": 300})
    assert [m.name for m in metrics["verb"]] == ["top1", "top5"]


def test_top_k_accuracy_for_indices_and_soft_targets():
    scores = np.array(
        [
            [0.1, 0.5, 0.4, 0.0],
            [0.7, 0.1, 0.1, 0.1],
            [0.1, 0.2, 0.3, 0.4],
        ]
    )
    labels = np.array([2, 0, 0])
    top1, top2 = TopKAccuracy(1), TopKAccuracy(2)
    top1.update_state(labels, scores)
    top2.update_state(labels, scores)
    assert float(top1.result()) == pytest.approx(1 / 3)
    assert float(top2.result()) == pytest.approx(2 / 3)
    soft = np.eye(4)[labels] * 0.7 + 0.075
    top2_soft = TopKAccuracy(2)
    top2_soft.update_state(soft, scores)
    assert float(top2_soft.result()) == pytest.approx(2 / 3)
    # k above the class count: every sample is right.
    top5 = TopKAccuracy(5)
    top5.update_state(labels, scores)
    assert float(top5.result()) == 1.0
    assert TopKAccuracy.from_config(top5.get_config()).k == 5


def counted_top_k(scores, labels, k):
    """Hits by the definition, one sample at a time: fewer than k other classes
    score higher or equal."""
    hits = []
    for row, label in zip(scores, labels, strict=True):
        higher = sum(score > row[label] for score in row)
        tied = sum(score == row[label] for c, score in enumerate(row) if c != label)
        hits.append(higher + tied < min(k, len(row)))
    return np.array(hits, "float64")


def keras_top_k(scores, labels, k):
    metric = TopKAccuracy(k)
    metric.update_state(labels, scores)
    return float(metric.result())


def test_ties_count_against_the_prediction():
    # Equal logits (a model at initialisation): no class is predicted.
    equal = np.zeros((6, 8), "float32")
    labels = np.arange(6)
    assert keras_top_k(equal, labels, 1) == 0.0
    assert keras_top_k(equal, labels, 5) == 0.0  # all 8 tie
    assert keras_top_k(equal, labels, 8) == 1.0  # every class is in the top 8
    assert not top_k_hits(equal, labels, 1).any()
    assert not top_k_hits(equal, labels, 5).any()
    both = ActionAccuracy()
    both.update_state(
        {"verb": labels, "noun": labels % 5}, {"verb": equal, "noun": equal[:, :5]}
    )
    assert float(both.result()) == 0.0
    # Many ties (scores in {0, 1, 2}), soft targets too.
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, (64, 8)).astype("float32")
    labels = rng.integers(0, 8, 64)
    soft = np.eye(8)[labels] * 0.8 + 0.025
    for k in (1, 2, 5, 8):
        expected = counted_top_k(scores, labels, k)
        assert 0.0 < expected.mean() <= 1.0
        assert keras_top_k(scores, labels, k) == pytest.approx(expected.mean())
        assert keras_top_k(scores, soft, k) == pytest.approx(expected.mean())
        np.testing.assert_array_equal(top_k_hits(scores, labels, k), expected)


def test_top_k_without_ties_is_the_rank_of_the_label():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((50, 10)).astype("float32")
    labels = rng.integers(0, 10, 50)
    rank = np.argsort(np.argsort(-scores, axis=-1), axis=-1)[np.arange(50), labels]
    for k in (1, 5):
        expected = rank < k
        assert keras_top_k(scores, labels, k) == pytest.approx(expected.mean())
        np.testing.assert_array_equal(top_k_hits(scores, labels, k), expected)
        np.testing.assert_array_equal(counted_top_k(scores, labels, k), expected)


def test_action_is_right_only_when_verb_and_noun_are():
    verb_logits = np.array([[3.0, 0.0], [3.0, 0.0], [0.0, 3.0], [0.0, 3.0]])
    noun_logits = np.array([[0.0, 0.0, 3.0]] * 2 + [[3.0, 0.0, 0.0]] * 2)
    y_true = {"verb": np.array([0, 0, 1, 0]), "noun": np.array([2, 1, 0, 0])}
    metric = ActionAccuracy()
    metric.update_state(y_true, {"verb": verb_logits, "noun": noun_logits})
    # verb right: 1, 1, 1, 0; noun right: 1, 0, 1, 1 -> action 1, 0, 1, 0.
    assert float(metric.result()) == pytest.approx(0.5)
    metric.update_state(
        y_true,
        {"verb": verb_logits, "noun": noun_logits},
        sample_weight=np.array([0.0, 0.0, 1.0, 0.0]),
    )
    assert float(metric.result()) == pytest.approx(3 / 5)


def test_harmonic_mean():
    assert harmonic_mean([0.5, 0.5]) == pytest.approx(0.5)
    assert harmonic_mean({"a": 0.25, "b": 0.75}) == pytest.approx(0.375)
    assert harmonic_mean([0.9, 0.0]) == 0.0
    with pytest.raises(ValueError):
        harmonic_mean([])
