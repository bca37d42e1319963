"""What a model attended to: the attention weights of one forward pass.

`attention_maps(model, inputs)` runs the model once, eagerly, with an
`AttentionRecorder` active, and returns every B-CA direction's weights per
block and head (CAST, CAVA, CA²ST) or every LAVISH adapter's latent-token
attention. Recording takes the plain `keras.ops` attention path (fused
kernels never materialise the weights), so it runs on every backend; the
outputs it returns are the model's usual outputs.

Every map's weights are `(batch, windows, heads, queries, keys)`, float32,
and each query's weights sum to 1 over `keys`:

| window | windows | queries | keys |
|---|---|---|---|
| `"time"` (T2S) | patch positions `N` | the `T` frames of that patch | the source's `T` frames |
| `"space"` (S2T) | frames `T` | the target's `N` patches | the source's `N'` patches |
| `"space_time"` | 1 | `T·N` (frame-major) | `T'·N'` |
| `"global"` | 1 | the target's patches, flat | the source's patches, flat |

Flat patches are frame-major for video and frequency-major for audio
(`keras_ca2st.experts.stream_layout`). LAVISH maps have one head and one
window per frame (audio segment); their queries and keys are the latent tokens
and one frame's (segment's) tokens, prefix tokens included.
"""

import dataclasses

import numpy as np

from keras_ca2st.fusion.attention_record import AttentionRecorder


@dataclasses.dataclass
class AttentionMap:
    """The attention weights of one layer for one forward pass.

    Attributes:
        block: transformer block index.
        name: the direction (`"temporal_to_spatial"`: queries from the
            spatial expert, keys from the temporal one) or, for LAVISH, the
            adapter kind (`"visual_attention"`, ...) and what attended
            (`"visual_attention/latents_from_other"`).
        source, target: expert (or LAVISH modality) names: keys come from the
            source, queries from the target.
        window: the B-CA window kind, or `None` for LAVISH.
        weights: `(batch, windows, heads, queries, keys)` float32.
        query_grid, key_grid: the stream grids (`[T, N]` video, `[F, T]`
            audio) the query / key tokens come from.
        query_is_video, key_is_video: whether those tokens are frame patches.
        inputs: the arrays the weights were computed from (the bottleneck
            tokens with their position codes for B-CA).
        layer: the Keras layer that computed them.
    """

    block: int
    name: str
    source: str
    target: str
    window: str
    weights: np.ndarray
    query_grid: list
    key_grid: list
    query_is_video: bool
    key_is_video: bool
    inputs: dict
    layer: object = dataclasses.field(repr=False, default=None)

    def received(self):
        """Attention each key received: `weights` averaged over heads and
        queries, `(batch, windows, keys)`."""
        return self.weights.mean(axis=(2, 3))


class AttentionMaps(list):
    """The `AttentionMap`s of one forward pass, in the order the layers ran,
    and the model's outputs (`outputs`)."""

    outputs = None

    def select(self, name=None, block=None):
        """The maps whose name (and block) match."""
        return AttentionMaps(
            m
            for m in self
            if (name is None or m.name == name) and (block is None or m.block == block)
        )

    @property
    def names(self):
        """The map names, each once, in order."""
        return list(dict.fromkeys(m.name for m in self))


def attention_maps(model, inputs):
    """The attention weights of every B-CA direction or LAVISH adapter.

    Args:
        model: a CAST / CAVA / CA²ST / LAVISH task or backbone.
        inputs: the model's inputs (a dict by input name), a small batch.

    Returns:
        `AttentionMaps`, with `.outputs` the model's outputs on `inputs`.

    Example:
    ```python
    maps = attention_maps(model, {"video": clips})
    s2t = maps.select("spatial_to_temporal", block=11)[0]
    s2t.weights.shape  # (batch, T, heads, N, N)
    ```
    """
    labels = _layer_labels(model)
    if not labels:
        raise ValueError(
            f"{type(model).__name__} has no cross-expert attention to explain "
            "(fusion without B-CA, or not one of our models)."
        )
    with AttentionRecorder() as recorder:
        outputs = model(inputs, training=False)
    maps = AttentionMaps()
    for entry in recorder.entries:
        label = labels.get(id(entry["layer"]))
        if label is not None:
            maps.append(_make_map(entry, **label))
    maps.outputs = outputs
    return maps


def _encoder(model):
    backbone = getattr(model, "backbone", model)
    return getattr(backbone, "encoder", None), getattr(backbone, "lavish_encoder", None)


def _layer_labels(model):
    """`{id(layer): what the map of that layer is called}`."""
    encoder, lavish = _encoder(model)
    labels = {}
    if lavish is not None:
        frames = lavish.num_segments
        for kind, adapters in lavish.adapters.items():
            target = kind.split("_")[0]
            source = "audio" if target == "visual" else "visual"
            for block, adapter in enumerate(adapters):
                labels[id(adapter)] = dict(
                    block=block, base=kind, source=source, target=target, frames=frames
                )
        return labels
    for block, exchange in enumerate(getattr(encoder, "exchanges", None) or []):
        if exchange is None or exchange.mode != "cross_attention":
            continue
        for spec, layer in zip(
            exchange.directions, exchange.direction_layers, strict=True
        ):
            labels[id(layer)] = dict(
                block=block,
                base=layer.name,
                source=spec["source"],
                target=spec["target"],
                frames=None,
            )
    return labels


def _make_map(entry, block, base, source, target, frames):
    layer, weights = entry["layer"], entry["weights"]
    if entry["kind"] == "cross_attention":
        batch = entry["inputs"]["query_tokens"].shape[0]
        weights = weights.reshape(batch, -1, *weights.shape[1:])
        return AttentionMap(
            block=block,
            name=base,
            source=source,
            target=target,
            window=layer.window,
            weights=weights,
            query_grid=list(layer.query_layout["grid"]),
            key_grid=list(layer.key_layout["grid"]),
            query_is_video=layer.query_layout["is_video"],
            key_is_video=layer.key_layout["is_video"],
            inputs=entry["inputs"],
            layer=layer,
        )
    # LAVISH: `(batch·frames, queries, keys)` → one window per frame (segment);
    # its tokens (prefix included) per frame make the grids.
    weights = weights.reshape(-1, frames, 1, *weights.shape[1:])
    from_other = entry["kind"] == "latents_from_other"
    return AttentionMap(
        block=block,
        name=f"{base}/{entry['kind']}",
        source=source if from_other else "latents",
        target="latents" if from_other else target,
        window=None,
        weights=weights,
        query_grid=[frames, weights.shape[-2]],
        key_grid=[frames, weights.shape[-1]],
        query_is_video=not from_other and target == "visual",
        key_is_video=from_other and source == "visual",
        inputs=entry["inputs"],
        layer=layer,
    )
