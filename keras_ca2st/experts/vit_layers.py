"""Transformer layers shared by the three expert kinds (CLIP, VideoMAE, AST).

Weight names follow Hugging Face (`query`, `key`, `value`, `out_proj`, `fc1`, `fc2`,
`layer_norm1`, `layer_norm2`) so converters map checkpoints name by name.

Self-attention goes through `keras.ops.dot_product_attention` on torch and JAX
(their fused attention), unless fused attention is switched off
(`keras_ca2st.kernels.set_fused_attention("off")` or
`KERAS_CA2ST_FUSED_ATTENTION=off`); otherwise, and on TensorFlow, it runs
`plain_attention`.
"""

import keras
from keras import ops

from keras_ca2st.kernels.config import fused_attention_mode


def quick_gelu(x):
    """CLIP's QuickGELU, `x · sigmoid(1.702 x)`."""
    return x * ops.sigmoid(1.702 * x)


def exact_gelu(x):
    """GELU with the erf form, as VideoMAE and AST use it."""
    return keras.activations.gelu(x, approximate=False)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": exact_gelu}


def uses_fused_attention():
    """Whether self-attention takes `keras.ops.dot_product_attention`.

    Yes on torch and JAX unless fused attention is off. TensorFlow has no
    fused kernel behind that op, and its version computes the softmax in the
    compute dtype (bfloat16 under mixed precision), so it keeps the plain path.
    """
    return (
        keras.config.backend() in ("torch", "jax") and fused_attention_mode() != "off"
    )


def plain_attention(query, key, value, scale):
    """Softmax attention written out: matmul, fp32 softmax, matmul.

    The reference of the fused path (`keras.ops.dot_product_attention`) and
    what runs when fused attention is off. Inputs `(batch, tokens, heads,
    head_dim)`; output likewise.
    """
    q = ops.transpose(query, (0, 2, 1, 3)) * ops.cast(scale, query.dtype)
    k = ops.transpose(key, (0, 2, 3, 1))
    v = ops.transpose(value, (0, 2, 1, 3))
    scores = ops.matmul(q, k)
    weights = ops.cast(ops.softmax(ops.cast(scores, "float32"), axis=-1), v.dtype)
    return ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))


def get_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}."
        )
    return ACTIVATIONS[name]


@keras.saving.register_keras_serializable(package="keras_ca2st")
class ViTSelfAttention(keras.layers.Layer):
    """Multi-head self-attention with separate q/k/v projections.

    Args:
        hidden_dim: int. Token width.
        num_heads: int. Attention heads; `hidden_dim` must be divisible by it.
        use_key_bias: bool. VideoMAE has no key bias (its checkpoints store only
            `q_bias` and `v_bias`); CLIP and AST have one.

    Call arguments:
        x: `(batch, tokens, hidden_dim)`.

    Example:
    ```python
    attention = ViTSelfAttention(hidden_dim=64, num_heads=4)
    y = attention(np.zeros((2, 10, 64), "float32"))
    ```
    """

    def __init__(self, hidden_dim, num_heads, use_key_bias=True, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim={hidden_dim} is not divisible by num_heads={num_heads}."
            )
        # === Layers ===
        dense = dict(dtype=self.dtype_policy)
        self.query = keras.layers.Dense(hidden_dim, name="query", **dense)
        self.key = keras.layers.Dense(
            hidden_dim, use_bias=use_key_bias, name="key", **dense
        )
        self.value = keras.layers.Dense(hidden_dim, name="value", **dense)
        self.out_proj = keras.layers.Dense(hidden_dim, name="out_proj", **dense)

        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.use_key_bias = use_key_bias

    def build(self, input_shape):
        for projection in (self.query, self.key, self.value, self.out_proj):
            projection.build((None, None, self.hidden_dim))
        self.built = True

    def call(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        head_dim = self.hidden_dim // self.num_heads

        def heads(t):  # (batch, tokens, heads, head_dim)
            return ops.reshape(t, (batch, length, self.num_heads, head_dim))

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        if uses_fused_attention():
            # SDPA (flash / memory-efficient kernels) on torch, cuDNN or XLA
            # on JAX: neither keeps the (heads, tokens, tokens) scores for the
            # backward pass.
            out = ops.dot_product_attention(q, k, v, scale=head_dim**-0.5)
        else:
            out = plain_attention(q, k, v, head_dim**-0.5)
        return self.out_proj(ops.reshape(out, (batch, length, self.hidden_dim)))

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            use_key_bias=self.use_key_bias,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ca2st")
class ViTMLP(keras.layers.Layer):
    """The transformer feed-forward block, `fc2(act(fc1(x)))`.

    Args:
        hidden_dim: int. Token width.
        intermediate_dim: int. Width of the hidden layer.
        activation: `"gelu"` (erf) or `"quick_gelu"` (CLIP).
    """

    def __init__(self, hidden_dim, intermediate_dim, activation="gelu", **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.fc1 = keras.layers.Dense(
            intermediate_dim, dtype=self.dtype_policy, name="fc1"
        )
        self.fc2 = keras.layers.Dense(hidden_dim, dtype=self.dtype_policy, name="fc2")
        self.activation_fn = get_activation(activation)

        # === Config ===
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.activation = activation

    def build(self, input_shape):
        self.fc1.build((None, None, self.hidden_dim))
        self.fc2.build((None, None, self.intermediate_dim))
        self.built = True

    def call(self, x):
        return self.fc2(self.activation_fn(self.fc1(x)))

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            activation=self.activation,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ca2st")
class ViTBlock(keras.layers.Layer):
    """A pre-norm transformer block of a frozen expert.

    The fusion models need the block in two halves, with the adapters and the
    cross-expert exchange between them, so besides `call` (the plain block) it
    exposes `attention_branch(x)` = MHSA(LN1(x)) and `mlp_input(x)` = LN2(x) with
    `mlp(...)`.

    Args:
        hidden_dim: int. Token width.
        num_heads: int. Attention heads.
        intermediate_dim: int. MLP width.
        activation: `"gelu"` or `"quick_gelu"`.
        layer_norm_epsilon: float. Epsilon of both layer norms.
        use_key_bias: bool. See `ViTSelfAttention`.

    Example:
    ```python
    block = ViTBlock(hidden_dim=64, num_heads=4, intermediate_dim=256)
    y = block(np.zeros((2, 10, 64), "float32"))
    ```
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        intermediate_dim,
        activation="gelu",
        layer_norm_epsilon=1e-6,
        use_key_bias=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Layers ===
        norm = dict(epsilon=layer_norm_epsilon, dtype=self.dtype_policy)
        self.layer_norm1 = keras.layers.LayerNormalization(name="layer_norm1", **norm)
        self.attention = ViTSelfAttention(
            hidden_dim,
            num_heads,
            use_key_bias=use_key_bias,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.layer_norm2 = keras.layers.LayerNormalization(name="layer_norm2", **norm)
        self.mlp = ViTMLP(
            hidden_dim,
            intermediate_dim,
            activation=activation,
            dtype=self.dtype_policy,
            name="mlp",
        )

        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_key_bias = use_key_bias

    def build(self, input_shape):
        shape = (None, None, self.hidden_dim)
        for layer in (self.layer_norm1, self.attention, self.layer_norm2, self.mlp):
            layer.build(shape)
        self.built = True

    def attention_branch(self, x):
        return self.attention(self.layer_norm1(x))

    def mlp_input(self, x):
        return self.layer_norm2(x)

    def call(self, x):
        x = x + self.attention_branch(x)
        return x + self.mlp(self.mlp_input(x))

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
            use_key_bias=self.use_key_bias,
        )
        return config
