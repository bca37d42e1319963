"""One frozen ViT running frames and spectrogram side by side, with LAVISH adapters."""

import keras
from keras import ops

from keras_ca2st.data.clip_spec import ClipSpec
from keras_ca2st.experts import ViTExpertEncoder
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

    Any of our ViT experts can be the shared backbone: `CLIPVisionEncoder` (as
    in the paper), `VideoMAEEncoder` or `ASTEncoder`. Frames and audio segments
    are paired per time step: the clip has `num_frames` frames, the fbank is cut
    into `num_frames` equal segments, and segment `t` is processed next to frame
    `t`. The expert embeds each frame and each segment through its own hooks
    (see `ViTExpertEncoder.embed_images` / `embed_spectrogram`):
    - CLIP: frames as images; a segment as a 3-channel image (rows = time,
      columns = mel bins); the learned position grid resampled (bilinear) to
      each patch grid.
    - VideoMAE: a frame or a 3-channel segment image repeated over one tubelet;
      the sinusoid table built for each patch count.
    - AST: segments natively (1 channel, its own patch grid, position grid
      cropped in time); frames converted to grey (mean over R, G, B) with the
      position grid resampled to the frame's patch grid.
    Per block, for each modality (the other one in brackets):
    ```
    x = x + MHSA(LN1(x)) + ADAP_attn(x, [other])
    x = x + MLP(LN2(x)) + ADAP_mlp(x, [other])
    ```
    where both adapters read the streams as they enter that half-block. The
    per-step feature is the expert's own pooling and final norm
    (`pool_tokens`): CLIP's CLS token, VideoMAE's mean token, AST's mean of CLS
    and distillation tokens.

    Args:
        encoder: a `CLIPVisionEncoder`, `VideoMAEEncoder` or `ASTEncoder` (or
            its config). A video expert must see every frame of the clip: its
            `num_frames` is the clip's, and CLIP needs `frame_offset=0`,
            `frame_stride=1`.
        audio_frames: int. Fbank frames of the whole clip, divisible by
            `num_frames`.
        frequency_bins: int. Mel bins (AST: its own `frequency_bins`).
        num_frames: int. Frames of the clip, one per time step; defaults to the
            video expert's `num_frames`; needed for `ASTEncoder`.
        image_size: int. Square frame size; defaults to the video expert's
            `image_size`; needed for `ASTEncoder`.
        num_latent_tokens, reduction, groups, use_batch_norm: see `LAVISHAdapter`.
        train_experts: bool. Train the shared ViT too (`False`: frozen, as in the
            paper; `True` for a ViT trained from scratch, e.g. `ca2st demo`).

    Call arguments:
        inputs: dict with `"video"` `(B, T, H, W, 3)` and `"audio"` `(B, L, F)`.

    Returns `{"visual": (B, T, C), "audio": (B, T, C)}`: the pooled, normalised
    feature of every frame and of every audio segment.
    """

    def __init__(
        self,
        encoder,
        audio_frames,
        frequency_bins=128,
        num_frames=None,
        image_size=None,
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
        if not isinstance(encoder, ViTExpertEncoder):
            raise ValueError(
                "LAVISH shares one of our ViT experts (CLIPVisionEncoder, "
                "VideoMAEEncoder, ASTEncoder) between frames and spectrogram; got "
                f"{type(encoder).__name__}."
            )
        num_frames = expert_setting(encoder, "num_frames", num_frames)
        image_size = expert_setting(encoder, "image_size", image_size)
        # AST's position grid has one row per frequency patch: its bins are fixed.
        frequency_bins = expert_setting(encoder, "frequency_bins", frequency_bins)
        frame_indices = getattr(encoder, "frame_indices", None)
        if frame_indices is not None and frame_indices != list(range(num_frames)):
            raise ValueError(
                "The LAVISH encoder pairs every frame with an audio segment; build "
                f"the {type(encoder).__name__} with frame_offset=0 and "
                f"frame_stride=1 (it sees frames {frame_indices} of {num_frames})."
            )
        if audio_frames % num_frames:
            raise ValueError(
                f"audio_frames={audio_frames} cannot be cut into {num_frames} equal "
                "segments; pad or crop the fbank to a multiple of the frame count."
            )
        patch = encoder.patch_size
        segment_frames = audio_frames // num_frames
        if min(segment_frames, frequency_bins, image_size) < patch:
            raise ValueError(
                f"Audio segments of {segment_frames}×{frequency_bins} or frames of "
                f"{image_size}×{image_size} are smaller than one {patch}×{patch} "
                "patch."
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
        self.num_frames = num_frames
        self.image_size = image_size
        self.num_latent_tokens = num_latent_tokens
        self.reduction = reduction
        self.groups = groups
        self.use_batch_norm = use_batch_norm
        self.num_segments = num_frames

    def input_shapes(self):
        size = self.image_size
        return {
            "video": (self.num_segments, size, size, 3),
            "audio": (self.audio_frames, self.frequency_bins),
        }

    @property
    def clip_spec(self):
        """One frame per time step, the fbank cut into as many segments."""
        return ClipSpec(
            inputs=tuple(self.input_shapes()),
            num_frames=self.num_segments,
            crop_size=self.image_size,
            frames_per_interval=1,
            audio_frames=self.audio_frames,
            mel_bins=self.frequency_bins,
        )

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
        self.encoder.final_norm.trainable = False

    def embed_frames(self, video):
        """`(B, T, H, W, 3)` → tokens `(B·T, P + patches, C)`, one image per frame."""
        size = self.image_size
        return self.encoder.embed_images(ops.reshape(video, (-1, size, size, 3)))

    def embed_audio(self, audio):
        """`(B, L, F)` → tokens `(B·T, P + patches, C)`, one segment per step."""
        segments = ops.reshape(
            audio, (-1, self.audio_frames // self.num_segments, self.frequency_bins)
        )
        return self.encoder.embed_spectrogram(segments)

    def call(self, inputs, training=None):
        encoder = self.encoder
        visual = self.embed_frames(inputs["video"])
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
            "visual": ops.reshape(encoder.pool_tokens(visual), shape),
            "audio": ops.reshape(encoder.pool_tokens(audio), shape),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.layers.serialize(self.encoder),
            audio_frames=self.audio_frames,
            frequency_bins=self.frequency_bins,
            num_frames=self.num_frames,
            image_size=self.image_size,
            num_latent_tokens=self.num_latent_tokens,
            reduction=self.reduction,
            groups=self.groups,
            use_batch_norm=self.use_batch_norm,
            train_experts=self.train_experts,
        )
        return config


def expert_setting(encoder, name, value):
    """An input setting given to LAVISH or taken from the expert; both must agree."""
    own = getattr(encoder, name, None)
    if value is None and own is None:
        raise ValueError(
            f"{type(encoder).__name__} has no `{name}`; give the LAVISH model's "
            f"`{name}` (the video clip's)."
        )
    if value is not None and own is not None and value != own:
        raise ValueError(
            f"{name}={value} differs from the {type(encoder).__name__}'s "
            f"{name}={own}; the shared expert must be built for the clip it sees."
        )
    return own if value is None else value
