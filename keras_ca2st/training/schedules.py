"""Learning-rate schedule and batch-size scaling of the reference recipe.

SPEC section 10: the peak learning rate is `base_lr × total_batch / 256`, where
the total batch counts every replica and every gradient-accumulation step; it
rises linearly from 0 during the warm-up epochs, then follows a cosine to
`min_lr` (1e-6), updated at every optimizer step.
"""

import math

import keras
from keras import ops

REFERENCE_BATCH_SIZE = 256


def effective_batch_size(batch_size, num_replicas=1, accumulation_steps=1):
    """Samples behind one optimizer update.

    Args:
        batch_size: samples per replica per step (the batch each device sees).
        num_replicas: data-parallel replicas (devices or processes).
        accumulation_steps: steps whose gradients make one update.

    Example:

    >>> effective_batch_size(6, num_replicas=8, accumulation_steps=4)
    192
    """
    for name, value in (
        ("batch_size", batch_size),
        ("num_replicas", num_replicas),
        ("accumulation_steps", accumulation_steps),
    ):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(batch_size) * int(num_replicas) * int(accumulation_steps)


def scaled_learning_rate(base_lr, total_batch_size, reference=REFERENCE_BATCH_SIZE):
    """The linear scaling rule: `base_lr × total_batch_size / 256`.

    Args:
        base_lr: learning rate for a total batch of `reference` samples
            (1e-3 for the video recipes, 1e-4 or 5e-4 audio-visual).
        total_batch_size: samples per optimizer update, see
            `effective_batch_size`.
        reference: the batch size `base_lr` is quoted for (256).

    Example:

    >>> scaled_learning_rate(1e-3, 192)
    0.00075
    """
    if total_batch_size < 1:
        raise ValueError(f"total_batch_size must be positive; got {total_batch_size}.")
    return float(base_lr) * total_batch_size / reference


@keras.saving.register_keras_serializable(package="keras_ca2st")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0, then a per-step cosine down to `min_learning_rate`.

    ```
    lr(s) = peak · s / warmup_steps                                   s < warmup
    lr(s) = min + (peak − min) · (1 + cos(π · (s − warmup) / (total − warmup))) / 2
    lr(s) = min                                                       s ≥ total
    ```
    `s` counts optimizer updates. Keras evaluates schedules at its step counter,
    which counts batches even with gradient accumulation; pass
    `accumulation_steps` so that the schedule divides it back into updates
    (every batch of one accumulation window then sees the same value).

    Args:
        peak_learning_rate: the value at the end of the warm-up (already scaled
            by the batch size, see `scaled_learning_rate`).
        total_steps: optimizer updates of the whole run.
        warmup_steps: updates of the linear warm-up.
        min_learning_rate: the final value (1e-6).
        accumulation_steps: batches per optimizer update.

    Example:

    >>> schedule = WarmupCosineDecay(1e-3, total_steps=100, warmup_steps=10,
    ...                              min_learning_rate=0.0)
    >>> [round(float(schedule(s)), 6) for s in (0, 5, 10, 55, 100)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0]
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_steps=0,
        min_learning_rate=1e-6,
        accumulation_steps=1,
    ):
        if total_steps < 1:
            raise ValueError(f"total_steps must be positive; got {total_steps}.")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"warmup_steps must be in [0, total_steps={total_steps}]; "
                f"got {warmup_steps}."
            )
        if accumulation_steps < 1:
            raise ValueError(
                f"accumulation_steps must be positive; got {accumulation_steps}."
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.min_learning_rate = float(min_learning_rate)
        self.accumulation_steps = int(accumulation_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.accumulation_steps > 1:
            step = ops.floor(step / self.accumulation_steps)
        peak, low = self.peak_learning_rate, self.min_learning_rate
        warmup = float(self.warmup_steps)
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - warmup) / decay_steps, 0.0, 1.0)
        cosine = low + 0.5 * (peak - low) * (1.0 + ops.cos(math.pi * progress))
        if self.warmup_steps == 0:
            return cosine
        return ops.where(step < warmup, peak * step / warmup, cosine)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "min_learning_rate": self.min_learning_rate,
            "accumulation_steps": self.accumulation_steps,
        }
