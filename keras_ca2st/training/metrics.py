"""Accuracy metrics: top-k, EPIC-KITCHENS-100 action, and the balance metric.

`TopKAccuracy` accepts class indices or soft (mixup) targets, so the same
metric serves training and validation. `ActionAccuracy` needs the verb and
noun outputs together, which `compile(metrics=...)` never hands to one metric;
use it through `evaluate_multiview`, `ActionAccuracyCallback`, or a custom
`compute_metrics`. `harmonic_mean` is the papers' balance metric across
datasets.
"""

import keras
import numpy as np
from keras import ops

from keras_ca2st.training.keras_internals import set_metric_direction


def _target_indices(y_true, y_pred):
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] != 1:
        return ops.cast(ops.argmax(y_true, axis=-1), "int32")
    return ops.cast(ops.reshape(y_true, (-1,)), "int32")


def top_k_correct(y_true, y_pred, k=1):
    """Per-sample 1.0 / 0.0: is the target among the `k` highest scores.

    Ties count against the prediction: the target is in the top `k` only if
    fewer than `k` other classes score at least as high as it does (equal
    logits, as at initialisation, give no hit; nor does a NaN target score).
    Soft targets count their largest entry as the class; `k` is capped at the
    number of classes. `evaluation.top_k_hits` is the numpy twin.
    """
    k = min(int(k), int(y_pred.shape[-1]))
    targets = _target_indices(y_true, y_pred)
    scores = ops.cast(y_pred, "float32")
    target_scores = ops.take_along_axis(scores, ops.expand_dims(targets, -1), axis=-1)
    # Classes not strictly below the target, less the target itself.
    rivals = ops.sum(ops.cast(ops.logical_not(scores < target_scores), "int32"), -1)
    return ops.cast(rivals - 1 < k, "float32")


@keras.saving.register_keras_serializable(package="keras_ca2st")
class TopKAccuracy(keras.metrics.MeanMetricWrapper):
    """Top-k accuracy for class indices or soft targets.

    Args:
        k: 1 for top-1, 5 for top-5.
        name: metric name (default `"top{k}"`).
        dtype: metric dtype.

    Example:

    >>> import numpy as np
    >>> metric = TopKAccuracy(k=2)
    >>> metric.update_state(np.array([2, 0]), np.array([[0.1, 0.5, 0.4],
    ...                                                 [0.1, 0.5, 0.4]]))
    >>> float(metric.result())
    0.5

    Ties count against the prediction (see `top_k_correct`):

    >>> metric = TopKAccuracy(k=1)
    >>> metric.update_state(np.array([0]), np.zeros((1, 3)))
    >>> float(metric.result())
    0.0
    """

    def __init__(self, k=1, name=None, dtype=None):
        super().__init__(top_k_correct, name=name or f"top{k}", dtype=dtype, k=k)
        self.k = int(k)
        set_metric_direction(self, "up")

    def get_config(self):
        return {"k": self.k, "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_ca2st")
class ActionAccuracy(keras.metrics.Metric):
    """EPIC-KITCHENS-100 action accuracy: right only when verb and noun are.

    Call arguments of `update_state`:
        y_true: dict with the two heads' class indices (or soft targets).
        y_pred: dict with the two heads' logits or probabilities.
        sample_weight: optional `(batch,)` weights.

    Args:
        heads: the two output keys (`("verb", "noun")`).
        name, dtype: see `keras.metrics.Metric`.

    Example:

    >>> import numpy as np
    >>> metric = ActionAccuracy()
    >>> metric.update_state(
    ...     {"verb": np.array([0, 1]), "noun": np.array([1, 1])},
    ...     {"verb": np.array([[2.0, 0.0], [0.0, 2.0]]),
    ...      "noun": np.array([[0.0, 2.0], [2.0, 0.0]])})
    >>> float(metric.result())
    0.5
    """

    def __init__(self, heads=("verb", "noun"), name="action_top1", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.heads = tuple(heads)
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        correct = None
        for head in self.heads:
            logits = ops.convert_to_tensor(y_pred[head])
            right = top_k_correct(ops.convert_to_tensor(y_true[head]), logits, 1)
            correct = right if correct is None else correct * right
        weight = ops.ones_like(correct)
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        self.total.assign_add(ops.cast(ops.sum(correct * weight), self.dtype))
        self.count.assign_add(ops.cast(ops.sum(weight), self.dtype))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def get_config(self):
        return {"heads": list(self.heads), "name": self.name, "dtype": self.dtype}


def classification_metrics(num_classes, top_k=(1, 5)):
    """The metrics to compile a classifier with: top-1 and top-5 per head.

    Args:
        num_classes: int, or dict head name → classes (EK100); a dict gives
            `{"verb": [...], "noun": [...]}`, logged as `verb_top1`, ...
        top_k: the k values.

    Example:
    ```python
    model.compile(optimizer=..., loss=classification_loss(400),
                  metrics=classification_metrics(400))
    ```
    """
    if isinstance(num_classes, dict):
        return {head: [TopKAccuracy(k) for k in top_k] for head in num_classes}
    return [TopKAccuracy(k) for k in top_k]


def harmonic_mean(values):
    """Harmonic mean, the papers' balance metric across datasets.

    Args:
        values: accuracies (a list, or a dict name → accuracy); any value at or
            below zero gives 0.

    Example:

    >>> round(harmonic_mean({"k400": 0.85, "ssv2": 0.70, "ek100": 0.50}), 4)
    0.6515
    """
    values = list(values.values()) if isinstance(values, dict) else list(values)
    if not values:
        raise ValueError("harmonic_mean needs at least one value.")
    values = np.asarray(values, dtype=np.float64)
    if np.any(values <= 0):
        return 0.0
    return float(len(values) / np.sum(1.0 / values))
