"""The Time-Interval MLP of CA²ST: a learned encoding of `[start, end]` seconds."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ca2st")
class TimeIntervalEmbedding(keras.layers.Layer):
    """Encodes time intervals so audio and video tokens can be matched in time.

    MLP `2 → dim → dim → dim` with ReLU after every linear, then LayerNorm. Each
    visual time step and each eighth of the audio window has one interval; every
    token of that step shares its encoding (CA²ST, arXiv 2503.23447, Sec. III).

    Args:
        dim: int. Output width (the B-CA bottleneck width).
        layer_norm_epsilon: float.

    Call arguments:
        intervals: `(batch, K, 2)` start and end in seconds.

    Example:
    ```python
    embed = TimeIntervalEmbedding(dim=32)
    codes = embed(np.array([[[0.0, 0.5], [0.5, 1.0]]], "float32"))  # (1, 2, 32)
    ```
    """

    def __init__(self, dim, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.dense_layers = [
            keras.layers.Dense(
                dim, activation="relu", dtype=self.dtype_policy, name=f"dense_{i}"
            )
            for i in range(3)
        ]
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )

        # === Config ===
        self.dim = dim
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape=None):
        width = 2
        for dense in self.dense_layers:
            dense.build((None, width))
            width = self.dim
        self.layer_norm.build((None, self.dim))
        self.built = True

    def call(self, intervals):
        x = ops.cast(intervals, self.compute_dtype)
        for dense in self.dense_layers:
            x = dense(x)
        return self.layer_norm(x)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, layer_norm_epsilon=self.layer_norm_epsilon)
        return config
