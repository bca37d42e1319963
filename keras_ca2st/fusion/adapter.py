"""The bottleneck adapter of CAST / CA²ST."""

import keras

from keras_ca2st.experts.vit_layers import exact_gelu


@keras.saving.register_keras_serializable(package="keras_ca2st")
class BottleneckAdapter(keras.layers.Layer):
    """`up(GELU(down(x)))`, with the up-projection zero-initialised.

    Zero init makes a freshly inserted adapter the identity on its residual
    stream, so a pretrained expert starts exactly where it was (AIM, CAST).

    Args:
        hidden_dim: int. Width of the stream the adapter reads and writes.
        bottleneck_dim: int. Width of the hidden layer (192 for ViT-B).

    Call arguments:
        x: `(..., hidden_dim)`.

    Example:
    ```python
    adapter = BottleneckAdapter(hidden_dim=64, bottleneck_dim=16)
    adapter(np.ones((2, 5, 64), "float32"))  # all zeros at initialisation
    ```
    """

    def __init__(self, hidden_dim, bottleneck_dim, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.down = keras.layers.Dense(
            bottleneck_dim, dtype=self.dtype_policy, name="down"
        )
        self.up = keras.layers.Dense(
            hidden_dim,
            kernel_initializer="zeros",
            bias_initializer="zeros",
            dtype=self.dtype_policy,
            name="up",
        )

        # === Config ===
        self.hidden_dim = hidden_dim
        self.bottleneck_dim = bottleneck_dim

    def build(self, input_shape=None):
        self.down.build((None, self.hidden_dim))
        self.up.build((None, self.bottleneck_dim))
        self.built = True

    def call(self, x):
        return self.up(exact_gelu(self.down(x)))

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, bottleneck_dim=self.bottleneck_dim)
        return config
