"""The bottleneck layer of CAST / CA²ST: adapters and the B-CA projections.

One down / up layer serves both: the adapters of every block and of the heads
(`BottleneckAdapter`, `up(GELU(down(x)))`), and each expert's way into and out
of the B-CA bottleneck (`ExpertProjection`, the same layer with a layer norm
on the bottleneck, used in two halves around the cross-attention).
"""

import keras

from keras_ca2st.experts.vit_layers import exact_gelu


@keras.saving.register_keras_serializable(package="keras_ca2st")
class BottleneckAdapter(keras.layers.Layer):
    """`up(GELU(norm(down(x))))`, with the up-projection zero-initialised.

    Zero init makes a freshly inserted adapter the identity on its residual
    stream, so a pretrained expert starts exactly where it was (AIM, CAST).
    The layer norm on the bottleneck is optional (off for adapters, on for the
    B-CA projections); `project` and `expand` are the two halves.

    Args:
        hidden_dim: int. Width of the stream the adapter reads and writes.
        bottleneck_dim: int. Width of the hidden layer (192 for ViT-B adapters).
        bottleneck_norm_epsilon: float or `None`. Epsilon of a layer norm on
            the bottleneck; `None` for none.

    Call arguments:
        x: `(..., hidden_dim)`.

    Example:
    ```python
    adapter = BottleneckAdapter(hidden_dim=64, bottleneck_dim=16)
    adapter(np.ones((2, 5, 64), "float32"))  # all zeros at initialisation
    ```
    """

    def __init__(
        self, hidden_dim, bottleneck_dim, bottleneck_norm_epsilon=None, **kwargs
    ):
        super().__init__(**kwargs)
        # === Layers ===
        self.down = keras.layers.Dense(
            bottleneck_dim, dtype=self.dtype_policy, name="down"
        )
        self.layer_norm = None
        if bottleneck_norm_epsilon is not None:
            self.layer_norm = keras.layers.LayerNormalization(
                epsilon=bottleneck_norm_epsilon,
                dtype=self.dtype_policy,
                name="layer_norm",
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
        self.bottleneck_norm_epsilon = bottleneck_norm_epsilon

    def build(self, input_shape=None):
        self.down.build((None, self.hidden_dim))
        if self.layer_norm is not None:
            self.layer_norm.build((None, self.bottleneck_dim))
        self.up.build((None, self.bottleneck_dim))
        self.built = True

    def project(self, x):
        """Into the bottleneck: `norm(down(x))`."""
        bottleneck = self.down(x)
        if self.layer_norm is None:
            return bottleneck
        return self.layer_norm(bottleneck)

    def expand(self, bottleneck_tokens):
        """Out of the bottleneck: `up(GELU(z))`."""
        return self.up(exact_gelu(bottleneck_tokens))

    def call(self, x):
        return self.expand(self.project(x))

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            bottleneck_dim=self.bottleneck_dim,
            bottleneck_norm_epsilon=self.bottleneck_norm_epsilon,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ca2st")
class ExpertProjection(BottleneckAdapter):
    """An expert's way into and out of the B-CA bottleneck.

    A `BottleneckAdapter` with a layer norm on the bottleneck, shared by every
    direction the expert takes part in: `project(y) = LN(down(y))` gives the
    tokens the cross-attention reads, `expand(z) = up(GELU(z))` maps its output
    back; `up` starts at zero so the exchange begins as the identity on the
    expert's stream.

    Args:
        hidden_dim: int. The expert's token width.
        bottleneck_dim: int. The shared B-CA width.
        layer_norm_epsilon: float.

    Example:
    ```python
    projection = ExpertProjection(hidden_dim=64, bottleneck_dim=32)
    z = projection.project(np.ones((2, 5, 64), "float32"))   # (2, 5, 32)
    y = projection.expand(z)                                 # zeros, (2, 5, 64)
    ```
    """

    def __init__(self, hidden_dim, bottleneck_dim, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(
            hidden_dim,
            bottleneck_dim,
            bottleneck_norm_epsilon=layer_norm_epsilon,
            **kwargs,
        )
        self.layer_norm_epsilon = layer_norm_epsilon

    def get_config(self):
        config = super().get_config()
        del config["bottleneck_norm_epsilon"]
        config.update(layer_norm_epsilon=self.layer_norm_epsilon)
        return config
