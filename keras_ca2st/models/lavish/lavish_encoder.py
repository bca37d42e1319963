"""One frozen ViT running frames and spectrogram side by side, with LAVISH adapters."""

import keras
from keras import ops

from keras_ca2st.experts import CLIPVisionEncoder
from keras_ca2st.fusion.lavish_adapter import LAVISHAdapter
from keras_ca2st.models.ca2st.cross_expert_encoder import deserialize_expert

ADAPTER_KINDS = (
    "visual_attention",
    "visual_mlp",
    "audio_attention",
    "audio_mlp",
)


@keras.saving.register_keras_serializable(package="keras_ca2st")
class LAVISHEncoder(keras.layers.Layer):
    """The shared frozen ViT of LAVISH with four adapters in every block.

    Frames and audio segments are paired per time step: the clip has
    `num_segments` frames, the fbank is cut into `num_segments` equal segments,
    and segment `t` of each modality is processed next to frame `t`. A segment
    enters the same patch embedding as a 3-channel image (rows = time, columns =
    mel bins) with the position grid resampled (bilinear) to its patch grid.
    Per block, for each modality (the other one in brackets):
    ```
    x = x + MHSA(LN1(x)) + ADAP_attn(x, [other])
    x = x + MLP(LN2(x)) + ADAP_mlp(x, [other])
    ```
    where both adapters read the streams as they enter that half-block.

    Args:
        encoder: a `CLIPVisionEncoder` (or its config) that sees every frame
            (`num_frames = num_segments`, `frame_offset=0`, `frame_stride=1`).
        audio_frames: int. Fbank frames of the whole clip, divisible by
            `num_segments`.
        frequency_bins: int. Mel bins.
        num_latent_tokens, reduction, groups, use_batch_norm: see `LAVISHAdapter`.
        train_experts: bool. Train the shared ViT too (`False`: frozen, as in the
            paper; `True` for a ViT trained from scratch, e.g. `ca2st demo`).

    Call arguments:
        inputs: dict with `"video"` `(B, T, H, W, 3)` and `"audio"` `(B, L, F)`.

    Returns `{"visual": (B, T, C), "audio": (B, T, C)}`: the normalised CLS
    token of every frame and of every audio segment.
    """

    def __init__(
        self,
        encoder,
        audio_frames,
        frequency_bins=128,
        num_latent_tokens=2,
        reduction=8,
        groups=2,
        use_batch_norm=True,
        train_experts=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.train_experts = train_experts
        encoder = deserialize_expert(encoder)
        if not isinstance(encoder, CLIPVisionEncoder):
            raise ValueError(
                "LAVISH shares one ViT with 2-D patches and a CLS token between "
                f"frames and spectrogram; got {type(encoder).__name__}. Use a "
                "CLIPVisionEncoder."
            )
        if encoder.frame_offset != 0 or encoder.frame_stride != 1:
            raise ValueError(
                "The LAVISH encoder pairs every frame with an audio segment; build "
                "the CLIPVisionEncoder with frame_offset=0 and frame_stride=1."
            )
        segments = encoder.num_frames
        if audio_frames % segments:
            raise ValueError(
                f"audio_frames={audio_frames} cannot be cut into {segments} equal "
                "segments; pad or crop the fbank to a multiple of the frame count."
            )
        patch = encoder.patch_size
        segment_frames = audio_frames // segments
        if segment_frames < patch or frequency_bins < patch:
            raise ValueError(
                f"Audio segments of {segment_frames}×{frequency_bins} are smaller "
                f"than one {patch}×{patch} patch."
            )
        # === Layers ===
        self.encoder = encoder
        self.adapters = {
            kind: [
                LAVISHAdapter(
                    encoder.hidden_dim,
                    num_latent_tokens=num_latent_tokens,
                    reduction=reduction,
                    groups=groups,
                    use_batch_norm=use_batch_norm,
                    dtype=self.dtype_policy,
                    name=f"{kind}_adapter_{i}",
                )
                for i in range(encoder.num_layers)
            ]
            for kind in ADAPTER_KINDS
        }

        # === Config ===
        self.audio_frames = audio_frames
        self.frequency_bins = frequency_bins
        self.num_latent_tokens = num_latent_tokens
        self.reduction = reduction
        self.groups = groups
        self.use_batch_norm = use_batch_norm
        self.num_segments = segments
        self.audio_grid = (segment_frames // patch, frequency_bins // patch)

    def input_shapes(self):
        size = self.encoder.image_size
        return {
            "video": (self.num_segments, size, size, 3),
            "audio": (self.audio_frames, self.frequency_bins),
        }

    def build(self, input_shape=None):
        if not self.encoder.built:
            self.encoder.build()
        for adapters in self.adapters.values():
            for adapter in adapters:
                if not adapter.built:
                    adapter.build()
        self.freeze_backbone()
        self.built = True

    def freeze_backbone(self):
        """The shared ViT is frozen whole, its final norm included."""
        if self.train_experts:
            return
        self.encoder.freeze_pretrained()
        self.encoder.post_layernorm.trainable = False

    def embed_audio(self, audio):
        encoder = self.encoder
        width = encoder.hidden_dim
        rows, columns = self.audio_grid
        segments = ops.reshape(
            audio, (-1, self.audio_frames // self.num_segments, self.frequency_bins, 1)
        )
        image = ops.concatenate([segments] * 3, axis=-1)
        patches = encoder.patch_embedding(ops.cast(image, encoder.compute_dtype))
        patches = ops.reshape(
            patches[:, :rows, :columns, :], (-1, rows * columns, width)
        )
        side = encoder.image_size // encoder.patch_size
        grid = ops.reshape(encoder.position_embedding[1:], (1, side, side, width))
        grid = ops.image.resize(grid, (rows, columns), interpolation="bilinear")
        position = ops.concatenate(
            [
                encoder.position_embedding[:1],
                ops.reshape(grid, (rows * columns, width)),
            ],
            axis=0,
        )
        cls = ops.broadcast_to(
            ops.cast(encoder.class_embedding, patches.dtype),
            (ops.shape(patches)[0], 1, width),
        )
        tokens = ops.concatenate([cls, patches], axis=1)
        return encoder.pre_layernorm(tokens + ops.cast(position, tokens.dtype)[None])

    def call(self, inputs, training=None):
        encoder = self.encoder
        visual = encoder.embed(inputs["video"])
        audio = self.embed_audio(inputs["audio"])
        for i, block in enumerate(encoder.blocks):
            visual_res = self.adapters["visual_attention"][i](
                visual, audio, training=training
            )
            audio_res = self.adapters["audio_attention"][i](
                audio, visual, training=training
            )
            visual = visual + block.attention_branch(visual) + visual_res
            audio = audio + block.attention_branch(audio) + audio_res
            visual_res = self.adapters["visual_mlp"][i](
                visual, audio, training=training
            )
            audio_res = self.adapters["audio_mlp"][i](audio, visual, training=training)
            visual = visual + block.mlp(block.mlp_input(visual)) + visual_res
            audio = audio + block.mlp(block.mlp_input(audio)) + audio_res
        shape = (-1, self.num_segments, encoder.hidden_dim)
        return {
            "visual": ops.reshape(encoder.post_layernorm(visual[:, 0]), shape),
            "audio": ops.reshape(encoder.post_layernorm(audio[:, 0]), shape),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.layers.serialize(self.encoder),
            audio_frames=self.audio_frames,
            frequency_bins=self.frequency_bins,
            num_latent_tokens=self.num_latent_tokens,
            reduction=self.reduction,
            groups=self.groups,
            use_batch_norm=self.use_batch_norm,
            train_experts=self.train_experts,
        )
        return config
