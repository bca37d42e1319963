"""The block-by-block loop that runs several frozen experts side by side."""

import keras
import numpy as np
from keras import ops

from keras_ca2st.data.clip_spec import ClipSpec
from keras_ca2st.experts import ASTEncoder, CLIPVisionEncoder, VideoMAEEncoder
from keras_ca2st.experts.stream_layout import patch_time_steps
from keras_ca2st.fusion.adapter import BottleneckAdapter
from keras_ca2st.fusion.bottleneck_cross_attention import POSITION_EMBEDDINGS
from keras_ca2st.fusion.drop_path import DropPath
from keras_ca2st.fusion.exchange import CrossExpertExchange, direction_name
from keras_ca2st.fusion.time_interval import TimeIntervalEmbedding
from keras_ca2st.fusion.windowed_attention import get_window

EXPERT_CLASSES = {
    cls.__name__: cls for cls in (CLIPVisionEncoder, VideoMAEEncoder, ASTEncoder)
}
GRADIENT_CHECKPOINTING = ("none", "frozen", "all")
FUSIONS = ("cross_attention", "lateral", "identity", "late_add", "late_concat")
PLACEMENTS = ("after_adapter", "before_adapter")
MLP_ADAPTER_SCALE = 0.5
AUDIO_FRAMES_PER_SECOND = 100.0


def deserialize_expert(expert):
    """An expert layer from an instance, a Keras config, or `{class_name, config}`."""
    if isinstance(expert, keras.layers.Layer):
        return expert
    class_name = expert.get("class_name", "")
    if class_name in EXPERT_CLASSES and "registered_name" not in expert:
        return EXPERT_CLASSES[class_name].from_config(expert.get("config", {}))
    return keras.layers.deserialize(expert)


def resolve_directions(pairs, experts):
    """Expand the pair specs into one direction list per block.

    A pair is `{"experts": [a, b], "windows": {"b_to_a": window, ...},
    "layers": [0-based block indices] or None for all, "position_embedding":
    "none" | "learned" | "time_interval"}`. `windows` names the directions to
    build (give one for a uni-directional pair); by default both, with CAST's
    windows between video experts (time into the frame-wise expert, space into
    the space-time expert) and global windows with audio. The default position
    embedding is `"learned"` between video experts, `"time_interval"` with audio.
    """
    depth = next(iter(experts.values())).num_layers
    per_block = [[] for _ in range(depth)]
    for pair in pairs:
        names = list(pair["experts"])
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"A pair names two different experts; got {names}.")
        for name in names:
            if name not in experts:
                raise ValueError(
                    f"Pair {names} names unknown expert {name!r}; the model has "
                    f"{sorted(experts)}."
                )
        all_video = all(experts[n].is_video for n in names)
        windows = pair.get("windows") or {
            direction_name(s, t): _default_window(experts[s], experts[t])
            for s, t in (names, names[::-1])
        }
        position = pair.get("position_embedding") or (
            "learned" if all_video else "time_interval"
        )
        if position not in POSITION_EMBEDDINGS:
            raise ValueError(
                f"Unknown position_embedding {position!r} for pair {names}; "
                f"expected one of {POSITION_EMBEDDINGS}."
            )
        layers = pair.get("layers")
        layers = range(depth) if layers is None else layers
        for direction, window in windows.items():
            source, _, target = direction.partition("_to_")
            if {source, target} != set(names):
                raise ValueError(
                    f"Direction {direction!r} does not join the pair {names}; write "
                    f"'{names[1]}_to_{names[0]}' or '{names[0]}_to_{names[1]}'."
                )
            get_window(window).validate(
                experts[target].stream_layout,
                experts[source].stream_layout,
                f"Direction {direction!r}",
            )
            for layer in layers:
                if not 0 <= layer < depth:
                    raise ValueError(
                        f"Pair {names} lists block {layer}; blocks are 0..{depth - 1}."
                    )
                per_block[layer].append(
                    {
                        "source": source,
                        "target": target,
                        "window": window,
                        "position_embedding": position,
                    }
                )
    return per_block


def _default_window(source, target):
    if not (source.is_video and target.is_video):
        return "global"
    return "time" if target.frames_in_batch else "space"


@keras.saving.register_keras_serializable(package="keras_ca2st")
class CrossExpertEncoder(keras.layers.Layer):
    """Runs frozen experts block by block with adapters and B-CA between them.

    One block, per expert stream `X` (CAST / CA²ST):
    ```
    h  = MHSA(LN1(X))
    Y  = X + h + ADAP_attn(h)
    B  = Y + Σ Φ(Y, Y_other)              # B-CA updates of this block
    X' = B + MLP(LN2(B)) + 0.5·ADAP_mlp(LN2(B))
    ```
    With `cross_attention_placement="before_adapter"` (ablation) the exchange
    reads `X + h` and the attention adapter reads `h + Φ`.

    Args:
        experts: dict name → `ViTExpertEncoder` (or its config). All experts need
            the same depth; video experts share frames and frame size.
        pairs: list of pair dicts, see `resolve_directions`.
        bottleneck_ratio: float. B-CA width / expert width (1/2 in CAST).
        adapter_ratio: float. Adapter width / expert width (1/4).
        fusion: `"cross_attention"` (B-CA), `"lateral"` (lateral connections), or
            no exchange inside the blocks: `"identity"`, `"late_add"`,
            `"late_concat"` (the classifier fuses the pooled features).
        cross_attention_placement: `"after_adapter"` or `"before_adapter"`.
        cross_attention_heads: int. B-CA heads (12).
        drop_path_rate: float. Largest drop-path rate, reached in the last block.
        train_experts: bool. Train the experts too (`False`: frozen, as in the
            papers; `True` for experts trained from scratch, e.g. `ca2st demo`).
        gradient_checkpointing: what the backward pass recomputes instead of
            keeping (`keras.remat`, on every backend): `"none"`; `"frozen"`,
            the experts' attention and MLP inside every block (their
            activations are most of a block's, and they train nothing);
            `"all"`, every block whole, keeping only the streams between
            blocks. Gradients are those of `"none"` (drop-path masks are drawn
            before a recomputed block and reused).

    Call arguments:
        inputs: dict with `"video"` and/or `"audio"`, and optionally
            `"video_times"` / `"audio_times"` `(batch, K, 2)` intervals in seconds.

    Returns a dict expert name → pooled feature `(batch, hidden_dim)`.
    """

    def __init__(
        self,
        experts,
        pairs=(),
        bottleneck_ratio=0.5,
        adapter_ratio=0.25,
        fusion="cross_attention",
        cross_attention_placement="after_adapter",
        cross_attention_heads=12,
        drop_path_rate=0.0,
        train_experts=False,
        gradient_checkpointing="none",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.train_experts = train_experts
        if gradient_checkpointing not in GRADIENT_CHECKPOINTING:
            raise ValueError(
                f"Unknown gradient_checkpointing {gradient_checkpointing!r}; "
                f"expected one of {GRADIENT_CHECKPOINTING}."
            )
        if fusion not in FUSIONS:
            raise ValueError(f"Unknown fusion {fusion!r}; expected one of {FUSIONS}.")
        if cross_attention_placement not in PLACEMENTS:
            raise ValueError(
                f"Unknown cross_attention_placement {cross_attention_placement!r}; "
                f"expected one of {PLACEMENTS}."
            )
        if not experts:
            raise ValueError("A model needs at least one expert.")
        experts = {name: deserialize_expert(e) for name, e in experts.items()}
        _check_experts(experts)
        pairs = [dict(p) for p in pairs]
        exchanges_on = fusion in ("cross_attention", "lateral")
        per_block = resolve_directions(pairs, experts)
        depth = len(per_block)
        rates = np.linspace(0.0, drop_path_rate, depth) if depth > 1 else [0.0]

        # === Layers ===
        self.experts = experts
        self.attention_adapters = {}
        self.mlp_adapters = {}

        def adapters(name, kind):  # one per block, e.g. `spatial_mlp_adapter_3`
            width = experts[name].hidden_dim
            return [
                BottleneckAdapter(
                    width,
                    int(width * adapter_ratio),
                    dtype=self.dtype_policy,
                    name=f"{name}_{kind}_adapter_{i}",
                )
                for i in range(depth)
            ]

        for name in experts:
            self.attention_adapters[name] = adapters(name, "attention")
            self.mlp_adapters[name] = adapters(name, "mlp")
        self.mlp_drop_paths = [
            DropPath(float(rate), dtype=self.dtype_policy, name=f"mlp_drop_path_{i}")
            for i, rate in enumerate(rates)
        ]
        bottleneck_dim = int(
            max(e.hidden_dim for e in experts.values()) * bottleneck_ratio
        )
        layouts = {name: e.stream_layout for name, e in experts.items()}
        self.exchanges = [
            CrossExpertExchange(
                layouts,
                {name: e.hidden_dim for name, e in experts.items()},
                directions,
                bottleneck_dim,
                cross_attention_heads,
                mode=fusion,
                drop_path_rate=float(rates[i]),
                dtype=self.dtype_policy,
                name=f"exchange_{i}",
            )
            if exchanges_on and directions
            else None
            for i, directions in enumerate(per_block)
        ]
        uses_time = exchanges_on and any(
            d["position_embedding"] == "time_interval" for b in per_block for d in b
        )
        self.time_embeddings = {}
        if uses_time:
            for modality in ("video", "audio"):
                self.time_embeddings[modality] = TimeIntervalEmbedding(
                    bottleneck_dim,
                    dtype=self.dtype_policy,
                    name=f"{modality}_time_embedding",
                )

        # === Config ===
        self.pairs = pairs
        self.bottleneck_ratio = bottleneck_ratio
        self.adapter_ratio = adapter_ratio
        self.fusion = fusion
        self.cross_attention_placement = cross_attention_placement
        self.cross_attention_heads = cross_attention_heads
        self.drop_path_rate = drop_path_rate
        self.gradient_checkpointing = gradient_checkpointing
        self.depth = depth
        self.bottleneck_dim = bottleneck_dim

    # --- shapes of the inputs ---
    @property
    def video_experts(self):
        return {n: e for n, e in self.experts.items() if e.is_video}

    @property
    def audio_experts(self):
        return {n: e for n, e in self.experts.items() if not e.is_video}

    @property
    def uses_time_intervals(self):
        return bool(self.time_embeddings)

    @property
    def num_time_intervals(self):
        """Visual time steps `T`; each has one `[start, end]` interval."""
        for expert in self.video_experts.values():
            return expert.patch_grid[0]
        return 8

    def input_shapes(self):
        """Dict input name → per-sample shape."""
        shapes = {}
        for expert in self.video_experts.values():
            size = expert.image_size
            shapes["video"] = (expert.num_frames, size, size, 3)
        for expert in self.audio_experts.values():
            shapes["audio"] = (expert.num_time_frames, expert.frequency_bins)
        if self.uses_time_intervals:
            shapes["video_times"] = (self.num_time_intervals, 2)
            shapes["audio_times"] = (self.num_time_intervals, 2)
        return shapes

    @property
    def clip_spec(self):
        """The `ClipSpec` of the clips this encoder reads."""
        video = next(iter(self.video_experts.values()), None)
        audio = next(iter(self.audio_experts.values()), None)
        spec = {"inputs": tuple(self.input_shapes())}
        if video is not None:
            spec.update(
                num_frames=video.num_frames,
                crop_size=video.image_size,
                frames_per_interval=video.num_frames // video.patch_grid[0],
            )
        if audio is not None:
            spec.update(
                audio_frames=audio.num_time_frames, mel_bins=audio.frequency_bins
            )
        return ClipSpec(**spec)

    def default_time_intervals(self, batch):
        """Evenly spaced intervals over the audio window (`L / 100` seconds)."""
        seconds = next(iter(self.audio_experts.values())).num_time_frames
        seconds /= AUDIO_FRAMES_PER_SECOND
        k = self.num_time_intervals
        edges = np.arange(k + 1, dtype="float32") * (seconds / k)
        intervals = np.stack([edges[:-1], edges[1:]], axis=-1)[None]
        return ops.broadcast_to(ops.convert_to_tensor(intervals), (batch, k, 2))

    # --- weights ---
    def build(self, input_shape=None):
        sublayers = list(self.experts.values())
        for name in self.experts:
            sublayers += self.attention_adapters[name] + self.mlp_adapters[name]
        sublayers += [e for e in self.exchanges if e is not None]
        sublayers += list(self.time_embeddings.values())
        for layer in sublayers:
            if not layer.built:
                layer.build()
        self.freeze_experts()
        self.built = True

    def freeze_experts(self):
        """Freeze the pretrained expert weights; only their final norms train."""
        if self.train_experts:
            return
        for expert in self.experts.values():
            expert.freeze_pretrained()

    # --- forward ---
    def _time_codes(self, inputs, batch):
        codes = {}
        for modality in ("video", "audio"):
            intervals = inputs.get(f"{modality}_times")
            if intervals is None:
                intervals = self.default_time_intervals(batch)
            encoded = self.time_embeddings[modality](intervals)
            experts = self.video_experts if modality == "video" else self.audio_experts
            for name, expert in experts.items():
                steps = patch_time_steps(expert.stream_layout, self.num_time_intervals)
                codes[name] = ops.take(encoded, steps, axis=1)
        return codes

    def call(self, inputs, training=None):
        streams = {}
        for name, expert in self.experts.items():
            streams[name] = expert.embed(
                inputs["video" if expert.is_video else "audio"]
            )
        time_codes = None
        if self.uses_time_intervals:
            key = "video" if "video" in inputs else "audio"
            time_codes = self._time_codes(inputs, ops.shape(inputs[key])[0])
        for i in range(self.depth):
            if self.gradient_checkpointing == "all" and training:
                # Random masks first: the recomputation must draw the same.
                keeps = self._drop_path_keeps(i, streams)
                streams = rematerialized(self._block)(
                    i, streams, time_codes, keeps, training
                )
            else:
                streams = self._block(i, streams, time_codes, training=training)
        return {
            name: expert.pool(streams[name]) for name, expert in self.experts.items()
        }

    def _block(self, i, streams, time_codes, keeps=None, training=None):
        """Block `i` on every stream; with `keeps`, the drop-path masks to use."""
        keeps = keeps or {}
        frozen = self.gradient_checkpointing == "frozen" and training
        before = self.cross_attention_placement == "before_adapter"
        attention_out = {
            name: _maybe_remat(expert.blocks[i].attention_branch, frozen)(streams[name])
            for name, expert in self.experts.items()
        }
        if before:
            exchanged = {n: streams[n] + h for n, h in attention_out.items()}
        else:
            exchanged = {
                n: streams[n] + h + self.attention_adapters[n][i](h)
                for n, h in attention_out.items()
            }
        exchange = self.exchanges[i]
        updates = (
            exchange(
                exchanged,
                time_codes,
                training=training,
                drop_path_keeps=keeps.get("exchange"),
            )
            if exchange
            else {}
        )
        new_streams = {}
        for name, expert in self.experts.items():
            update = updates.get(name)
            fused = exchanged[name] if update is None else exchanged[name] + update
            if before:
                adapter_in = attention_out[name]
                if update is not None:
                    adapter_in = adapter_in + update
                fused = fused + self.attention_adapters[name][i](adapter_in)
            block = expert.blocks[i]
            mlp_in = block.mlp_input(fused)
            adapter = self.mlp_adapters[name][i](mlp_in) * MLP_ADAPTER_SCALE
            new_streams[name] = (
                fused
                + _maybe_remat(block.mlp, frozen)(mlp_in)
                + self.mlp_drop_paths[i](
                    adapter, training=training, keep=keeps.get(f"mlp_{name}")
                )
            )
        return new_streams

    def _drop_path_keeps(self, i, streams):
        """Block `i`'s drop-path masks, drawn in the order the block draws them
        (each stream has its own batch: CLIP's holds every frame)."""
        batches = {name: ops.shape(stream)[0] for name, stream in streams.items()}
        keeps = {}
        exchange = self.exchanges[i]
        if exchange is not None:
            keeps["exchange"] = exchange.drop_path_keeps(batches)
        for name in self.experts:
            keeps[f"mlp_{name}"] = self.mlp_drop_paths[i].keep_mask(batches[name])
        return keeps

    def get_config(self):
        config = super().get_config()
        config.update(
            experts={n: keras.layers.serialize(e) for n, e in self.experts.items()},
            pairs=self.pairs,
            bottleneck_ratio=self.bottleneck_ratio,
            adapter_ratio=self.adapter_ratio,
            fusion=self.fusion,
            cross_attention_placement=self.cross_attention_placement,
            cross_attention_heads=self.cross_attention_heads,
            drop_path_rate=self.drop_path_rate,
            train_experts=self.train_experts,
            gradient_checkpointing=self.gradient_checkpointing,
        )
        return config


def _maybe_remat(function, recompute):
    return keras.remat(function) if recompute else function


def rematerialized(function):
    """`keras.remat` for a function of nested tensors (dicts, `None`s, ints).

    The backends' rematerialization takes and returns flat tensors
    (`tf.recompute_grad` in particular, which also needs every tensor a
    gradient must reach among its arguments, not closed over), so the
    arguments are flattened around it and the output rebuilt.
    """

    def call(*structure):
        flat = keras.tree.flatten(structure)
        tensor_positions = [k for k, leaf in enumerate(flat) if _is_tensor(leaf)]
        outputs = {}

        def flat_function(*tensors):
            leaves = list(flat)
            for position, tensor in zip(tensor_positions, tensors, strict=True):
                leaves[position] = tensor
            result = function(*keras.tree.pack_sequence_as(structure, leaves))
            outputs["structure"] = result
            return tuple(keras.tree.flatten(result))

        results = keras.remat(flat_function)(*(flat[k] for k in tensor_positions))
        return keras.tree.pack_sequence_as(outputs["structure"], list(results))

    return call


def _is_tensor(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _check_experts(experts):
    depths = {name: e.num_layers for name, e in experts.items()}
    if len(set(depths.values())) > 1:
        raise ValueError(f"All experts need the same number of blocks; got {depths}.")
    video = {n: e for n, e in experts.items() if e.is_video}
    clips = {n: (e.num_frames, e.image_size) for n, e in video.items()}
    if len(set(clips.values())) > 1:
        raise ValueError(
            "Video experts read the same clip, so (num_frames, image_size) must "
            f"agree; got {clips}."
        )
    steps = {n: e.patch_grid[0] for n, e in video.items()}
    if len(set(steps.values())) > 1:
        raise ValueError(
            "Video experts must see the same number of time steps (CLIP frames = "
            f"VideoMAE tubelets); got {steps}."
        )
    if len([e for e in experts.values() if not e.is_video]) > 1:
        raise ValueError("At most one audio expert is supported.")
