"""LAVISH backbone: one frozen ViT for frames and spectrogram, LAVISH adapters."""

import keras
from keras_hub.models import Backbone

from keras_ca2st.models.lavish.lavish_encoder import LAVISHEncoder


@keras.saving.register_keras_serializable(package="keras_ca2st")
class LAVISHBackbone(Backbone):
    """[LAVISH](https://arxiv.org/abs/2212.07983) as a Keras model.

    One frozen ViT expert, shared by frames and spectrogram: CLIP ViT-B/16 as in
    the paper, or a `VideoMAEEncoder` or `ASTEncoder` (see `LAVISHEncoder` for
    how each reads frames and spectrogram segments).

    Inputs: `"video"` `(batch, T, size, size, 3)` (one frame per time step,
    ImageNet-normalised) and `"audio"` `(batch, L, F)` normalised fbank, cut into
    `T` segments. Outputs `{"visual": (batch, T, C), "audio": (batch, T, C)}`.
    Only the adapters train (3,843,168 parameters on any ViT-B with 2 latent
    tokens, reduction 8, 2 groups and batch norms).

    Args:
        encoder: `CLIPVisionEncoder` (`frame_offset=0`, `frame_stride=1`,
            `num_frames=T`), `VideoMAEEncoder` (`num_frames=T`) or `ASTEncoder`
            (`frequency_bins=F`), or its config.
        audio_frames, frequency_bins, num_frames, image_size, num_latent_tokens,
        reduction, groups, use_batch_norm, train_experts: see `LAVISHEncoder`
            (`num_frames` and `image_size` are needed with `ASTEncoder` only).
        dtype: dtype policy.

    Example:
    ```python
    backbone = LAVISHBackbone(
        encoder=CLIPVisionEncoder(image_size=32, num_frames=2, frame_offset=0,
            frame_stride=1, hidden_dim=64, num_layers=2, num_heads=4,
            intermediate_dim=128),
        audio_frames=64, frequency_bins=32)
    features = backbone({"video": np.zeros((1, 2, 32, 32, 3), "float32"),
                         "audio": np.zeros((1, 64, 32), "float32")})
    # An AST backbone: the clip's frame count and size come from LAVISH.
    backbone = LAVISHBackbone(
        encoder=ASTEncoder(num_time_frames=32, frequency_bins=32, hidden_dim=64,
            num_layers=2, num_heads=4, intermediate_dim=128),
        audio_frames=64, frequency_bins=32, num_frames=2, image_size=32)
    ```
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
        dtype=None,
        **kwargs,
    ):
        if dtype is not None and isinstance(encoder, keras.layers.Layer):
            encoder = keras.layers.serialize(encoder)
        if dtype is not None:
            encoder = {
                **encoder,
                "config": {**encoder.get("config", {}), "dtype": dtype},
            }
        # === Layers ===
        self.lavish_encoder = LAVISHEncoder(
            encoder,
            audio_frames,
            frequency_bins=frequency_bins,
            num_frames=num_frames,
            image_size=image_size,
            num_latent_tokens=num_latent_tokens,
            reduction=reduction,
            groups=groups,
            use_batch_norm=use_batch_norm,
            train_experts=train_experts,
            dtype=dtype,
            name="lavish_encoder",
        )

        # === Functional Model ===
        inputs = {
            name: keras.Input(shape, name=name)
            for name, shape in self.lavish_encoder.input_shapes().items()
        }
        outputs = self.lavish_encoder(inputs)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
        # `trainable=True` from a saved config would unfreeze the shared ViT.
        self.lavish_encoder.freeze_backbone()

        # === Config ===
        self.audio_frames = audio_frames
        self.frequency_bins = frequency_bins
        self.num_frames = self.lavish_encoder.num_frames
        self.image_size = self.lavish_encoder.image_size
        self.num_latent_tokens = num_latent_tokens
        self.reduction = reduction
        self.groups = groups
        self.use_batch_norm = use_batch_norm
        self.train_experts = train_experts

    def input_shapes(self):
        """Dict input name → per-sample shape."""
        return self.lavish_encoder.input_shapes()

    @property
    def clip_spec(self):
        """The clip contract (`keras_ca2st.data.ClipSpec`) the data must meet."""
        return self.lavish_encoder.clip_spec

    @property
    def expert_names(self):
        """One ViT shared by frames and spectrogram."""
        return ["shared"]

    @property
    def hidden_dim(self):
        return self.lavish_encoder.encoder.hidden_dim

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.layers.serialize(self.lavish_encoder.encoder),
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
