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

    def call(self, x, training=None, keep=None):
        """`keep`: a mask from `keep_mask` to apply instead of drawing one."""
        if keep is None:
            if not training or self.rate == 0.0:
                return x
            keep = self.keep_mask(ops.shape(x)[0], len(x.shape))
        return x * ops.cast(keep, x.dtype) / ops.cast(1.0 - self.rate, x.dtype)

    def keep_mask(self, batch_size, rank=3):
        """The next per-sample keep mask (1 kept, 0 dropped), shaped to broadcast
        over a rank-`rank` batch: what `call` draws in training.

        Drawn ahead of a recomputed block (gradient checkpointing), so that
        the recomputation applies the same mask.
        """
        mask_shape = (batch_size,) + (1,) * (rank - 1)
        if self.rate == 0.0:
            return ops.ones(mask_shape)
        uniform = keras.random.uniform(mask_shape, seed=self.seed_generator)
        return ops.cast(uniform < 1.0 - self.rate, "float32")

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
