"""Stochastic depth on residual branches."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ca2st")
class DropPath(keras.layers.Layer):
    """Drops a whole residual branch per sample with probability `rate`.

    Surviving samples are scaled by `1 / (1 - rate)` so the expectation is kept.
    Identity at inference.

    Args:
        rate: float in `[0, 1)`.
        seed: optional int for reproducible masks.

    Example:
    ```python
    drop = DropPath(0.2)
    y = drop(x, training=True)
    ```
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"DropPath rate must be in [0, 1), got {rate}.")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask_shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = keras.random.uniform(mask_shape, seed=self.seed_generator) < keep
        return x * ops.cast(mask, x.dtype) / ops.cast(keep, x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
