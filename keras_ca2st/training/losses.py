"""Classification losses of the reference recipe.

Label-smoothed cross-entropy (smoothing 0.1) on class indices, or plain
cross-entropy on soft targets (mixup already smooths them), and the
EPIC-KITCHENS-100 two-head loss: the sum of the verb and noun losses.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ca2st")
class SmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy on logits for class indices or soft targets.

    With class indices `(batch,)` the target is the label-smoothed one-hot
    vector, timm's convention: `1 − s + s/C` on the class, `s/C` elsewhere.
    Soft targets `(batch, C)` (mixup, already smoothed) are used as given.
    The loss is computed in float32 whatever the logits' dtype.

    Args:
        label_smoothing: `s` (0.1 in the reference).
        from_logits: must be True; the models return logits.
        reduction, name: see `keras.losses.Loss`.

    Example:

    >>> import numpy as np
    >>> loss = SmoothedCrossEntropy(label_smoothing=0.0)
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]]))), 4)
    0.6931
    """

    def __init__(
        self,
        label_smoothing=0.1,
        from_logits=True,
        reduction="sum_over_batch_size",
        name="smoothed_cross_entropy",
        dtype=None,
    ):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        if not from_logits:
            raise ValueError("SmoothedCrossEntropy expects logits (from_logits=True).")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"label_smoothing must be in [0, 1); got {label_smoothing}."
            )
        self.label_smoothing = float(label_smoothing)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        log_probs = ops.log_softmax(logits, axis=-1)
        if len(y_true.shape) == len(logits.shape) and y_true.shape[-1] != 1:
            targets = ops.cast(y_true, "float32")
            return -ops.sum(targets * log_probs, axis=-1)
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        picked = ops.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
        nll = -picked
        if not self.label_smoothing:
            return nll
        uniform = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing, from_logits=True)
        return config


def classification_loss(num_classes, label_smoothing=0.1):
    """The loss to compile a classifier with.

    Args:
        num_classes: int (one head), or a dict head name → classes
            (EPIC-KITCHENS-100: `{"verb": 97, "noun": 300}`); a dict gives one
            loss per head, which Keras adds up (the reference's
            `loss_verb + loss_noun`).
        label_smoothing: smoothing of class-index targets (0.1).

    Example:
    ```python
    model.compile(optimizer=..., loss=classification_loss({"verb": 97, "noun": 300}))
    ```
    """
    if isinstance(num_classes, dict):
        return {
            head: SmoothedCrossEntropy(label_smoothing, name=f"{head}_loss")
            for head in num_classes
        }
    return SmoothedCrossEntropy(label_smoothing)
