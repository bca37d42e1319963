"""The LAVISH adapter: latent tokens that carry one modality into the other."""

import keras
from keras import ops

from keras_ca2st.fusion.attention_record import active_recorder


@keras.saving.register_keras_serializable(package="keras_ca2st")
class GroupedDense(keras.layers.Layer):
    """A 1×1 grouped convolution on tokens: `groups` independent dense maps.

    Args:
        units: int. Output width (divisible by `groups`).
        groups: int.
        use_bias: bool.
    """

    def __init__(self, units, groups=1, use_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.groups = groups
        self.use_bias = use_bias

    def build(self, input_shape):
        width = input_shape[-1]
        if width % self.groups or self.units % self.groups:
            raise ValueError(
                f"Widths {width} → {self.units} are not divisible by "
                f"groups={self.groups}."
            )
        self.kernel = self.add_weight(
            shape=(self.groups, width // self.groups, self.units // self.groups),
            initializer="he_uniform",
            name="kernel",
        )
        self.bias = (
            self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
            if self.use_bias
            else None
        )
        self.built = True

    def call(self, x):
        grouped = ops.reshape(x, (*ops.shape(x)[:-1], self.groups, -1))
        out = ops.einsum("...gi,gio->...go", grouped, ops.cast(self.kernel, x.dtype))
        out = ops.reshape(out, (*ops.shape(x)[:-1], self.units))
        return out if self.bias is None else out + ops.cast(self.bias, out.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, groups=self.groups, use_bias=self.use_bias)
        return config


@keras.saving.register_keras_serializable(package="keras_ca2st")
class LAVISHAdapter(keras.layers.Layer):
    """LAVISH adapter (Lin et al., CVPR 2023, arXiv 2212.07983).

    A few latent tokens first summarise the other modality, then the adapter's
    own tokens read the latents; a grouped bottleneck follows:
    ```
    L   = latents + softmax(latents · otherᵀ) · other
    x   = x + gate_av · softmax(x · Lᵀ) · L
    out = gate · LN_post(BN(up(ReLU(BN(down(LN_before(x)))))))
    ```
    No projections or scaling inside the two attention steps. Both gates start at
    zero, so a new adapter adds nothing to the frozen backbone.

    Args:
        hidden_dim: int. Token width.
        num_latent_tokens: int. Latent tokens (2 for event localisation, 16 for
            segmentation / question answering).
        reduction: int. Bottleneck width is `hidden_dim // reduction`.
        groups: int. Groups of the 1×1 down/up convolutions.
        use_batch_norm: bool. Batch norms after the down and up convolutions.
        layer_norm_epsilon: float.

    Call arguments:
        x: `(batch, tokens, hidden_dim)` this modality's tokens.
        other: `(batch, other_tokens, hidden_dim)` the other modality's tokens.
        training: bool (batch-norm statistics).

    Example:
    ```python
    adapter = LAVISHAdapter(hidden_dim=64, num_latent_tokens=2, reduction=8)
    out = adapter(np.ones((2, 5, 64), "float32"), np.ones((2, 9, 64), "float32"))
    ```
    """

    def __init__(
        self,
        hidden_dim,
        num_latent_tokens=2,
        reduction=8,
        groups=2,
        use_batch_norm=True,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        bottleneck = hidden_dim // reduction
        # === Layers ===
        norm = dict(epsilon=layer_norm_epsilon, dtype=self.dtype_policy)
        self.layer_norm_before = keras.layers.LayerNormalization(
            name="layer_norm_before", **norm
        )
        self.down = GroupedDense(
            bottleneck, groups, dtype=self.dtype_policy, name="down"
        )
        self.up = GroupedDense(hidden_dim, groups, dtype=self.dtype_policy, name="up")
        self.batch_norms = []
        if use_batch_norm:
            batch_norm = dict(momentum=0.9, epsilon=1e-5, dtype=self.dtype_policy)
            self.batch_norms = [
                keras.layers.BatchNormalization(name="batch_norm_down", **batch_norm),
                keras.layers.BatchNormalization(name="batch_norm_up", **batch_norm),
            ]
        self.layer_norm_post = keras.layers.LayerNormalization(
            name="layer_norm_post", **norm
        )

        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_latent_tokens = num_latent_tokens
        self.reduction = reduction
        self.groups = groups
        self.use_batch_norm = use_batch_norm
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape=None):
        width, bottleneck = self.hidden_dim, self.hidden_dim // self.reduction
        self.latent_tokens = self.add_weight(
            shape=(self.num_latent_tokens, width),
            initializer=keras.initializers.RandomUniform(0.0, 1.0),
            name="latent_tokens",
        )
        self.gate_av = self.add_weight(shape=(), initializer="zeros", name="gate_av")
        self.gate = self.add_weight(shape=(), initializer="zeros", name="gate")
        self.layer_norm_before.build((None, None, width))
        self.down.build((None, None, width))
        self.up.build((None, None, bottleneck))
        if self.batch_norms:
            self.batch_norms[0].build((None, None, bottleneck))
            self.batch_norms[1].build((None, None, width))
        self.layer_norm_post.build((None, None, width))
        self.built = True

    def call(self, x, other, training=None):
        dtype = x.dtype
        latents = ops.cast(self.latent_tokens, dtype)[None]
        latents = ops.broadcast_to(
            latents, (ops.shape(other)[0], self.num_latent_tokens, self.hidden_dim)
        )
        summary, summary_weights = _softmax_attention(latents, other)
        recorder = active_recorder()
        if recorder is not None:
            recorder.record(
                self, "latents_from_other", summary_weights, queries=latents, keys=other
            )
        latents = latents + summary
        read, read_weights = _softmax_attention(x, latents)
        if recorder is not None:
            recorder.record(
                self, "tokens_from_latents", read_weights, queries=x, keys=latents
            )
        x = x + ops.cast(self.gate_av, dtype) * read
        hidden = self.down(self.layer_norm_before(x))
        if self.batch_norms:
            hidden = self.batch_norms[0](hidden, training=training)
        hidden = self.up(ops.relu(hidden))
        if self.batch_norms:
            hidden = self.batch_norms[1](hidden, training=training)
        return ops.cast(self.gate, dtype) * self.layer_norm_post(hidden)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_latent_tokens=self.num_latent_tokens,
            reduction=self.reduction,
            groups=self.groups,
            use_batch_norm=self.use_batch_norm,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config


def _softmax_attention(queries, keys):
    """`softmax(q · kᵀ) · k`, attention whose keys are also its values, and the
    float32 weights `(batch, queries, keys)`."""
    scores = ops.cast(ops.einsum("bqc,bkc->bqk", queries, keys), "float32")
    weights = ops.softmax(scores, axis=-1)
    return ops.einsum("bqk,bkc->bqc", ops.cast(weights, keys.dtype), keys), weights
