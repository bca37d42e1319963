"""LAVISH backbone: one frozen ViT for frames and spectrogram, LAVISH adapters."""

import keras
from keras_hub.models import Backbone

from keras_ca2st.models.encoder_arguments import pop_arguments, saved_arguments
from keras_ca2st.models.lavish.lavish_encoder import LAVISHEncoder
from keras_ca2st.models.named_inputs import NamedInputs


@keras.saving.register_keras_serializable(package="keras_ca2st")
class LAVISHBackbone(NamedInputs, Backbone):
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
        dtype: dtype policy.
        **kwargs: the arguments of `LAVISHEncoder` (`audio_frames`,
            `frequency_bins`, `num_frames`, `image_size`, `num_latent_tokens`,
            `reduction`, `groups`, `use_batch_norm`, `train_experts`), which
            owns, checks and saves them (`num_frames` and `image_size` are
            needed with `ASTEncoder` only); the backbone mirrors them as
            attributes. Other keyword arguments go to `keras.Model`.

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

    def __init__(self, encoder, dtype=None, **kwargs):
        adapter_arguments = pop_arguments(LAVISHEncoder, kwargs)
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
            **{k: v for k, v in adapter_arguments.items() if k != "encoder"},
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
        for name, value in saved_arguments(self.lavish_encoder).items():
            if name != "encoder":
                setattr(self, name, value)

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
        config.update(saved_arguments(self.lavish_encoder))
        return config
