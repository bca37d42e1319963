"""All cross-expert exchanges of one transformer block."""

import keras

from keras_ca2st.experts.stream_layout import merge_stream, split_stream
from keras_ca2st.fusion.adapter import ExpertProjection
from keras_ca2st.fusion.bottleneck_cross_attention import (
    CrossAttentionDirection,
    LateralConnection,
)
from keras_ca2st.fusion.drop_path import DropPath
from keras_ca2st.kernels.windows import get_window

EXCHANGE_MODES = ("cross_attention", "lateral")


def direction_name(source, target):
    return f"{source}_to_{target}"


@keras.saving.register_keras_serializable(package="keras_ca2st")
class CrossExpertExchange(keras.layers.Layer):
    """The B-CA updates of one block: `Φ` for every direction active there.

    Each expert taking part is projected once into the bottleneck; each
    direction attends from the target's patch tokens to the source's; prefix
    tokens (CLS, distillation) skip attention and take `up(GELU(z_prefix))`.
    Updates into the same expert add up (CA²ST eq. 10), each behind drop path.

    Args:
        layouts: dict expert name → `stream_layout` dict.
        hidden_dims: dict expert name → token width.
        directions: list of dicts `{"source", "target", "window",
            "position_embedding"}`.
        bottleneck_dim: int. B-CA width.
        num_heads: int. B-CA heads.
        mode: `"cross_attention"` (B-CA) or `"lateral"` (ablation).
        drop_path_rate: float. Drop path on every update.
        layer_norm_epsilon: float. Epsilon of the bottleneck layer norms.

    Call arguments:
        streams: dict expert name → stream tokens (the expert's own layout).
        time_codes: optional dict expert name → time-interval codes of the patch
            tokens, flat `(B, L, bottleneck_dim)`.
        training: bool.

    Returns a dict expert name → update, shaped like that expert's stream.
    """

    def __init__(
        self,
        layouts,
        hidden_dims,
        directions,
        bottleneck_dim,
        num_heads,
        mode="cross_attention",
        drop_path_rate=0.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in EXCHANGE_MODES:
            raise ValueError(
                f"Unknown mode {mode!r}; expected one of {EXCHANGE_MODES}."
            )
        experts = sorted({d[k] for d in directions for k in ("source", "target")})
        # === Layers ===
        self.projections = {
            name: ExpertProjection(
                hidden_dims[name],
                bottleneck_dim,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=self.dtype_policy,
                name=f"{name}_projection",
            )
            for name in experts
        }
        self.direction_layers = []
        for spec in directions:
            name = direction_name(spec["source"], spec["target"])
            if mode == "lateral":
                layer = LateralConnection(
                    bottleneck_dim, dtype=self.dtype_policy, name=name
                )
            else:
                layer = CrossAttentionDirection(
                    bottleneck_dim,
                    num_heads,
                    spec["window"],
                    spec["position_embedding"],
                    query_layout=layouts[spec["target"]],
                    key_layout=layouts[spec["source"]],
                    dtype=self.dtype_policy,
                    name=name,
                )
            self.direction_layers.append(layer)
        self.drop_path = DropPath(
            drop_path_rate, dtype=self.dtype_policy, name="drop_path"
        )

        # === Config ===
        self.layouts = layouts
        self.hidden_dims = hidden_dims
        self.directions = [dict(d) for d in directions]
        self.bottleneck_dim = bottleneck_dim
        self.num_heads = num_heads
        self.mode = mode
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape=None):
        for projection in self.projections.values():
            projection.build()
        for layer in self.direction_layers:
            layer.build()
        self.built = True

    def call(self, streams, time_codes=None, training=None, drop_path_keeps=None):
        """`drop_path_keeps`: one mask per direction (`drop_path_keeps`), used
        instead of drawing them (a recomputed block, gradient checkpointing)."""
        prefixes, patches = {}, {}
        for name, projection in self.projections.items():
            bottleneck = projection.project(streams[name])
            prefixes[name], patches[name] = split_stream(bottleneck, self.layouts[name])
        updates = {}
        for index, (spec, layer) in enumerate(
            zip(self.directions, self.direction_layers, strict=True)
        ):
            source, target = spec["source"], spec["target"]
            # The window decides whether it takes flat tokens or the frame grid.
            window = get_window(spec.get("window", "global"))
            layouts = self.layouts[target], self.layouts[source]
            query, key = window.present(patches[target], patches[source], *layouts)
            query_codes = key_codes = None
            if spec.get("position_embedding") == "time_interval":
                query_codes, key_codes = window.present_codes(
                    time_codes[target], time_codes[source], *layouts
                )
            attended = layer(query, key, query_codes, key_codes)
            attended = window.restore(attended, self.layouts[target])
            merged = merge_stream(prefixes[target], attended, self.layouts[target])
            update = self.drop_path(
                self.projections[target].expand(merged),
                training=training,
                keep=None if drop_path_keeps is None else drop_path_keeps[index],
            )
            updates[target] = (
                update if target not in updates else updates[target] + update
            )
        return updates

    def drop_path_keeps(self, batch_sizes):
        """The drop-path masks `call` would draw in training, one per direction.

        Args:
            batch_sizes: dict stream name → its batch size.
        """
        return [
            self.drop_path.keep_mask(batch_sizes[spec["target"]])
            for spec in self.directions
        ]

    def get_config(self):
        config = super().get_config()
        config.update(
            layouts=self.layouts,
            hidden_dims=self.hidden_dims,
            directions=self.directions,
            bottleneck_dim=self.bottleneck_dim,
            num_heads=self.num_heads,
            mode=self.mode,
            drop_path_rate=self.drop_path_rate,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config
