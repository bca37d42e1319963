"""Batch mixup with label smoothing (timm's `Mixup`, mode "batch", no CutMix).

The reference recipe (SPEC section 10) mixes each batch with its reverse,
`x = lam * x + (1 - lam) * x[::-1]`, with `lam ~ Beta(alpha, alpha)` drawn with
probability `prob` (else `lam = 1`), and builds soft targets from
label-smoothed one-hot vectors mixed with the same `lam`. EPIC-KITCHENS has
two targets (verb and noun); both are mixed with the same `lam`.
"""

import numpy as np

# Inputs that are mixed; time intervals and other metadata are left alone.
MIXED_INPUTS = ("video", "audio")


def smooth_one_hot(labels, num_classes, smoothing=0.0):
    """Label-smoothed one-hot targets, timm's convention.

    Off-target entries get `smoothing / num_classes` and the target gets
    `1 - smoothing + smoothing / num_classes`, so each row sums to one.

    Example:

    >>> smooth_one_hot([1], 4, smoothing=0.4).astype(float).round(2).tolist()
    [[0.1, 0.7, 0.1, 0.1]]
    """
    labels = np.asarray(labels, dtype=np.int64)
    off_value = smoothing / num_classes
    targets = np.full(labels.shape + (num_classes,), off_value, np.float32)
    np.put_along_axis(targets, labels[..., None], 1.0 - smoothing + off_value, axis=-1)
    return targets


class Mixup:
    """Mixes a batch with its reverse and returns soft targets.

    Args:
        num_classes: number of classes, or a dict of them for multi-target
            labels (e.g. `{"verb": 97, "noun": 300}` for EPIC-KITCHENS-100).
        alpha: Beta distribution parameter (0.8 in the reference).
        prob: probability of mixing a batch (0.5 for K400, 0.9 for SSV2 and
            EK100 in the reference scripts); unmixed batches still get
            smoothed one-hot targets.
        label_smoothing: smoothing of the one-hot targets (0.1).

    Call arguments:
        inputs: dict of batched arrays; `"video"` and `"audio"` are mixed.
        labels: int array `(batch,)`, or a dict of them matching
            `num_classes`.
        rng: `numpy.random.Generator`.

    Returns:
        `(mixed_inputs, soft_targets, lam)`; soft targets are float32
        `(batch, classes)` or a dict of them.

    Example:

    >>> import numpy as np
    >>> mixup = Mixup(num_classes=3, prob=1.0)
    >>> inputs = {"video": np.ones((2, 4, 8, 8, 3), np.float32)}
    >>> mixed, targets, lam = mixup(inputs, np.array([0, 2]), np.random.default_rng(0))
    >>> targets.shape, bool(np.allclose(targets.sum(-1), 1.0))
    ((2, 3), True)
    """

    def __init__(self, num_classes, alpha=0.8, prob=1.0, label_smoothing=0.1):
        self.num_classes = num_classes
        self.alpha = alpha
        self.prob = prob
        self.label_smoothing = label_smoothing

    def draw_lambda(self, rng):
        if self.alpha > 0 and rng.random() < self.prob:
            return float(rng.beta(self.alpha, self.alpha))
        return 1.0

    def _targets(self, labels, num_classes, lam):
        labels = np.asarray(labels)
        forward = smooth_one_hot(labels, num_classes, self.label_smoothing)
        backward = smooth_one_hot(labels[::-1], num_classes, self.label_smoothing)
        return (lam * forward + (1.0 - lam) * backward).astype(np.float32)

    def __call__(self, inputs, labels, rng):
        lam = self.draw_lambda(rng)
        mixed = dict(inputs)
        if lam < 1.0:
            for key in MIXED_INPUTS:
                if key in mixed:
                    values = np.asarray(mixed[key], np.float32)
                    mixed[key] = (lam * values + (1.0 - lam) * values[::-1]).astype(
                        np.float32
                    )
        if isinstance(self.num_classes, dict):
            targets = {
                name: self._targets(labels[name], classes, lam)
                for name, classes in self.num_classes.items()
            }
        else:
            targets = self._targets(labels, self.num_classes, lam)
        return mixed, targets, lam

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "alpha": self.alpha,
            "prob": self.prob,
            "label_smoothing": self.label_smoothing,
        }

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"Mixup({arguments})"
