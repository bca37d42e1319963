"""The temporal expert: VideoMAE's joint space-time ViT."""

import keras
from keras import ops

from keras_ca2st.experts.vit_encoder import ViTExpertEncoder, sinusoid_position_table


@keras.saving.register_keras_serializable(package="keras_ca2st")
class VideoMAEEncoder(ViTExpertEncoder):
    """VideoMAE ViT as the temporal expert of CAST / CA²ST.

    Tubelet patches (a 3-D conv over `tubelet_size` frames × `patch_size`²
    pixels), the fixed sinusoid position table (not a weight), no CLS token,
    attention over all space-time tokens, keys without bias, erf GELU, and
    `fc_norm` on the mean of all tokens. See
    [VideoMAE](https://arxiv.org/abs/2203.12602).

    Args:
        image_size: int. Square frame size in pixels.
        patch_size: int. Spatial patch size.
        num_frames: int. Frames of the input clip.
        tubelet_size: int. Frames per tubelet.
        hidden_dim, num_layers, num_heads, intermediate_dim, activation,
        layer_norm_epsilon: see `ViTExpertEncoder`.

    Call arguments:
        inputs: video `(batch, num_frames, image_size, image_size, 3)`.

    Returns a dict with `"hidden_states"` `(batch, T·N, hidden_dim)` (token index
    `t·N + n`) and `"pooled"` `(batch, hidden_dim)`.

    Example:
    ```python
    encoder = VideoMAEEncoder(image_size=32, patch_size=16, num_frames=4,
        hidden_dim=64, num_layers=2, num_heads=4, intermediate_dim=128)
    out = encoder(np.zeros((2, 4, 32, 32, 3), "float32"))
    out["hidden_states"].shape  # (2, 8, 64)
    ```
    """

    is_video = True
    num_prefix_tokens = 0

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        num_frames=16,
        tubelet_size=2,
        hidden_dim=768,
        num_layers=12,
        num_heads=12,
        intermediate_dim=3072,
        activation="gelu",
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            activation=activation,
            layer_norm_epsilon=layer_norm_epsilon,
            use_key_bias=False,
            **kwargs,
        )
        if image_size % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"image_size={image_size} must be a multiple of patch_size="
                f"{patch_size} and num_frames={num_frames} a multiple of "
                f"tubelet_size={tubelet_size}."
            )
        # === Layers ===
        self.patch_embedding = keras.layers.Conv3D(
            hidden_dim,
            (tubelet_size, patch_size, patch_size),
            strides=(tubelet_size, patch_size, patch_size),
            dtype=self.dtype_policy,
            name="patch_embedding",
        )
        self.fc_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="fc_norm"
        )

        # === Config ===
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_frames = num_frames
        self.tubelet_size = tubelet_size
        frames, patches = self.patch_grid
        self.position_table = sinusoid_position_table(frames * patches, hidden_dim)

    @property
    def final_norm(self):
        return self.fc_norm

    @property
    def patch_grid(self):
        return (
            self.num_frames // self.tubelet_size,
            (self.image_size // self.patch_size) ** 2,
        )

    def build(self, input_shape=None):
        self.patch_embedding.build(
            (None, self.num_frames, self.image_size, self.image_size, 3)
        )
        super().build(input_shape)

    def frozen_layers(self):
        return [self.patch_embedding] + list(self.blocks)

    def embed(self, inputs):
        tokens = self.patch_embedding(inputs)
        tokens = ops.reshape(
            tokens, (-1, self.position_table.shape[0], self.hidden_dim)
        )
        return tokens + ops.cast(self.position_table, tokens.dtype)[None]

    def embed_images(self, images):
        """RGB images of any size → `(N, patches, C)`, one tubelet per image.

        Each image is repeated `tubelet_size` times, the usual inflation of an
        image into a clip: the tubelet kernel then acts as its sum over time, an
        image kernel. The position table is the sinusoid table for the image's
        `rows · columns` patches (index `r · columns + c`), not a resampled grid:
        the table is a fixed function of the flat token index, not learned
        values on a 2-D grid, and VideoMAE's own code builds it for the patch
        count of whatever input size the model is built for; resampling would
        blend sinusoids into vectors the model never saw. At `image_size` this
        equals the first tubelet's rows of `position_table`, so a frame embeds
        exactly as in `embed`.
        """
        clip = ops.repeat(ops.expand_dims(images, 1), self.tubelet_size, axis=1)
        patches = self.patch_embedding(clip)
        rows, columns = patches.shape[2], patches.shape[3]
        tokens = ops.reshape(patches, (-1, rows * columns, self.hidden_dim))
        table = sinusoid_position_table(rows * columns, self.hidden_dim)
        return tokens + ops.cast(table, tokens.dtype)[None]

    def pool(self, stream):
        return self.fc_norm(ops.mean(stream, axis=1))

    def pool_tokens(self, tokens):
        """`fc_norm` of the mean of each image's patch tokens (no CLS token)."""
        return self.pool(tokens)

    def get_config(self):
        config = super().get_config()
        config.pop("use_key_bias")
        config.update(
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_frames=self.num_frames,
            tubelet_size=self.tubelet_size,
        )
        return config
