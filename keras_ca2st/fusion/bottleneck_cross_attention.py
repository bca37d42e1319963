"""Bottleneck cross-attention (B-CA): the exchange between two experts.

Every expert taking part in an exchange owns one `ExpertProjection`
(`down → LayerNorm` into the shared bottleneck, `up` back out, zero-initialised),
shared by every direction it takes part in. Every direction (e.g. T→S: queries
from S, keys and values from T) owns one `CrossAttentionDirection`. See CAST
(arXiv 2311.03770) and CA²ST (arXiv 2503.23447).
"""

import keras
from keras import ops

from keras_ca2st.fusion.attention_record import active_recorder
from keras_ca2st.fusion.windowed_attention import (
    reference_windowed_attention,
    windowed_cross_attention,
)
from keras_ca2st.kernels.windows import get_window

POSITION_EMBEDDINGS = ("none", "learned", "time_interval")


@keras.saving.register_keras_serializable(package="keras_ca2st")
class CrossAttentionDirection(keras.layers.Layer):
    """One direction of B-CA: target-stream queries attend to a source stream.

    Learned position embeddings (init `N(0, 1)·head_dim^-0.5`) or time-interval
    codes are added to the bottleneck tokens before the projections, so values
    carry them too. `q` and `kv` have zero-initialised biases; `kv` packs keys
    (first `dim` columns) and values.

    Args:
        dim: int. Bottleneck width.
        num_heads: int.
        window: `"time"`, `"space"`, `"space_time"` or `"global"`
            (`keras_ca2st.kernels.windows`); a window the two layouts cannot
            take (e.g. a grid window with audio) raises `ValueError`.
        position_embedding: `"none"`, `"learned"` or `"time_interval"`.
        query_layout: `stream_layout` dict of the target expert.
        key_layout: `stream_layout` dict of the source expert.

    Call arguments:
        query_tokens: target patch tokens in the bottleneck, `(B, T, N, dim)` for
            video windows, `(B, L, dim)` for `"global"`.
        key_tokens: source patch tokens, same convention.
        query_time_codes, key_time_codes: time-interval codes shaped like the
            tokens, used with `position_embedding="time_interval"`.

    Example:
    ```python
    layout = {"prefix_tokens": 0, "grid": [8, 4], "frames_in_batch": False,
              "is_video": True}
    t2s = CrossAttentionDirection(32, 4, "time", "learned", layout, layout)
    out = t2s(np.ones((2, 8, 4, 32), "float32"), np.ones((2, 8, 4, 32), "float32"))
    ```
    """

    def __init__(
        self,
        dim,
        num_heads,
        window,
        position_embedding,
        query_layout,
        key_layout,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # The window kind (validated against both layouts) owns the position
        # embedding shapes, how they are added and how windows are cut.
        self._window = get_window(window)
        self._window.validate(query_layout, key_layout, f"Direction {self.name!r}")
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(
                f"Unknown position_embedding {position_embedding!r}; expected one "
                f"of {POSITION_EMBEDDINGS}."
            )
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}.")
        # === Layers ===
        dense = dict(bias_initializer="zeros", dtype=self.dtype_policy)
        self.query = keras.layers.Dense(dim, name="query", **dense)
        self.key_value = keras.layers.Dense(2 * dim, name="key_value", **dense)
        self.out_proj = keras.layers.Dense(dim, name="out_proj", **dense)

        # === Config ===
        self.dim = dim
        self.num_heads = num_heads
        self.window = window
        self.position_embedding = position_embedding
        self.query_layout = query_layout
        self.key_layout = key_layout

    def build(self, input_shape=None):
        for dense in (self.query, self.key_value, self.out_proj):
            dense.build((None, self.dim))
        if self.position_embedding == "learned":
            init = keras.initializers.RandomNormal(
                stddev=(self.dim // self.num_heads) ** -0.5
            )
            self.query_position = self.add_weight(
                shape=(*self._window.position_shape(self.query_layout), self.dim),
                initializer=init,
                name="query_position",
            )
            self.key_position = self.add_weight(
                shape=(*self._window.position_shape(self.key_layout), self.dim),
                initializer=init,
                name="key_position",
            )
        self.built = True

    def call(
        self, query_tokens, key_tokens, query_time_codes=None, key_time_codes=None
    ):
        if self.position_embedding == "learned":
            query_tokens = self._window.add_position(query_tokens, self.query_position)
            key_tokens = self._window.add_position(key_tokens, self.key_position)
        elif self.position_embedding == "time_interval":
            if query_time_codes is None or key_time_codes is None:
                raise ValueError(
                    "This cross-attention uses time-interval codes; pass "
                    "query_time_codes and key_time_codes."
                )
            query_tokens = query_tokens + ops.cast(query_time_codes, query_tokens.dtype)
            key_tokens = key_tokens + ops.cast(key_time_codes, key_tokens.dtype)
        query, key_value = self.query(query_tokens), self.key_value(key_tokens)
        recorder = active_recorder()
        if recorder is None:
            attended = windowed_cross_attention(
                query, key_value, self._window, self.num_heads
            )
        else:  # the plain path: the only one that computes the weights
            attended, weights = reference_windowed_attention(
                query, key_value, self._window, self.num_heads, return_weights=True
            )
            recorder.record(
                self,
                "cross_attention",
                weights,
                query_tokens=query_tokens,
                key_tokens=key_tokens,
            )
        return self.out_proj(attended)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            num_heads=self.num_heads,
            window=self.window,
            position_embedding=self.position_embedding,
            query_layout=self.query_layout,
            key_layout=self.key_layout,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ca2st")
class LateralConnection(keras.layers.Layer):
    """The lateral-connection ablation: a linear map of the aligned source tokens.

    Where both streams share the token grid, each target token receives the
    source token at the same position; otherwise (audio pairs) the mean source
    token. No attention.

    Args:
        dim: int. Bottleneck width.
    """

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.dense = keras.layers.Dense(dim, dtype=self.dtype_policy, name="dense")

        # === Config ===
        self.dim = dim

    def build(self, input_shape=None):
        self.dense.build((None, self.dim))
        self.built = True

    def call(
        self, query_tokens, key_tokens, query_time_codes=None, key_time_codes=None
    ):
        if tuple(query_tokens.shape[1:]) == tuple(key_tokens.shape[1:]):
            return self.dense(key_tokens)
        pooled_axes = tuple(range(1, len(key_tokens.shape) - 1))
        pooled = ops.mean(key_tokens, axis=pooled_axes, keepdims=True)
        pooled = ops.reshape(
            pooled, (-1,) + (1,) * (len(query_tokens.shape) - 2) + (self.dim,)
        )
        return ops.broadcast_to(self.dense(pooled), ops.shape(query_tokens))

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim)
        return config
