"""The audio expert: the Audio Spectrogram Transformer."""

import keras
import numpy as np
from keras import ops

from keras_ca2st.experts.vit_encoder import ViTExpertEncoder, resample_position_grid


def ast_patch_grid(frequency_bins, num_time_frames, patch_size, stride):
    """`(F, T)` patches of AST's overlapping 16×16 / stride-10 patching."""
    return (
        (frequency_bins - patch_size) // stride + 1,
        (num_time_frames - patch_size) // stride + 1,
    )


@keras.saving.register_keras_serializable(package="keras_ca2st")
class ASTEncoder(ViTExpertEncoder):
    """Audio Spectrogram Transformer (AST) as the audio expert of CAVA / CA²ST.

    The `(time, frequency)` fbank is read as a frequency × time image and cut into
    `patch_size`² patches with `stride` overlap, ordered frequency-major; CLS and
    distillation tokens lead; the learned position grid was trained for
    `position_grid` patches (12 × 101 for 10 s AudioSet clips) and is cropped in
    time around its centre for shorter audio. The pooled feature is the mean of
    the normalised CLS and distillation tokens.
    See [AST](https://arxiv.org/abs/2104.01778).

    Args:
        num_time_frames: int. Fbank frames of the input (100 per second).
        frequency_bins: int. Mel bins (128).
        patch_size: int. Patch size (16).
        stride: int. Patch stride in both axes (10).
        position_grid: `(F, T)` patches the stored position embedding covers;
            `None` means exactly the input's grid.
        hidden_dim, num_layers, num_heads, intermediate_dim, activation,
        layer_norm_epsilon: see `ViTExpertEncoder`.

    Call arguments:
        inputs: normalised fbank `(batch, num_time_frames, frequency_bins)`.

    Example:
    ```python
    encoder = ASTEncoder(num_time_frames=64, frequency_bins=32, hidden_dim=64,
        num_layers=2, num_heads=4, intermediate_dim=128)
    out = encoder(np.zeros((2, 64, 32), "float32"))
    out["pooled"].shape  # (2, 64)
    ```
    """

    is_video = False
    num_prefix_tokens = 2

    def __init__(
        self,
        num_time_frames=1024,
        frequency_bins=128,
        patch_size=16,
        stride=10,
        position_grid=None,
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
            use_key_bias=True,
            **kwargs,
        )
        grid = ast_patch_grid(frequency_bins, num_time_frames, patch_size, stride)
        if min(grid) < 1:
            raise ValueError(
                f"An AST input of {num_time_frames} frames × {frequency_bins} bins "
                f"is smaller than one {patch_size}×{patch_size} patch."
            )
        position_grid = tuple(position_grid) if position_grid else grid
        if position_grid[0] != grid[0] or position_grid[1] < grid[1]:
            raise ValueError(
                f"The position grid {position_grid} cannot cover the input's patch "
                f"grid {grid} ({num_time_frames} frames × {frequency_bins} bins): "
                "the frequency rows must match and the input may not be longer "
                "than the audio the expert was trained on."
            )
        # === Layers ===
        self.patch_embedding = keras.layers.Conv2D(
            hidden_dim,
            patch_size,
            strides=stride,
            dtype=self.dtype_policy,
            name="patch_embedding",
        )
        self.layernorm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layernorm"
        )

        # === Config ===
        self.num_time_frames = num_time_frames
        self.frequency_bins = frequency_bins
        self.patch_size = patch_size
        self.stride = stride
        self.position_grid = position_grid

    @property
    def final_norm(self):
        return self.layernorm

    @property
    def patch_grid(self):
        return ast_patch_grid(
            self.frequency_bins, self.num_time_frames, self.patch_size, self.stride
        )

    @property
    def position_columns(self):
        """The time columns of the stored grid this input length uses."""
        return self.centre_columns(self.patch_grid[1])

    def centre_columns(self, used):
        """The `used` time columns of the stored grid around its centre."""
        start = self.position_grid[1] // 2 - used // 2
        return start, start + used

    def build(self, input_shape=None):
        rows, columns = self.position_grid
        self.cls_token = self.add_weight(
            shape=(1, 1, self.hidden_dim), initializer="zeros", name="cls_token"
        )
        self.distillation_token = self.add_weight(
            shape=(1, 1, self.hidden_dim),
            initializer="zeros",
            name="distillation_token",
        )
        self.position_embeddings = self.add_weight(
            shape=(1, rows * columns + 2, self.hidden_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="position_embeddings",
        )
        self.patch_embedding.build((None, self.frequency_bins, self.num_time_frames, 1))
        super().build(input_shape)

    def pretrained_embedding_weights(self):
        return [self.cls_token, self.distillation_token, self.position_embeddings]

    def frozen_layers(self):
        return [self.patch_embedding] + list(self.blocks)

    def cropped_position_embeddings(self, time_patches=None):
        """Prefix and grid position embeddings for `time_patches` columns
        (default: the configured input's), cropped around the grid's centre."""
        rows, columns = self.position_grid
        start, stop = self.centre_columns(time_patches or self.patch_grid[1])
        prefix = self.position_embeddings[:, :2, :]
        grid = ops.reshape(
            self.position_embeddings[:, 2:, :], (1, rows, columns, self.hidden_dim)
        )
        grid = ops.reshape(grid[:, :, start:stop, :], (1, -1, self.hidden_dim))
        return ops.concatenate([prefix, grid], axis=1)

    def add_prefix_and_positions(self, patches, position):
        """CLS and distillation tokens before `patches`, plus `position`."""
        batch = ops.shape(patches)[0]
        prefix = ops.concatenate(
            [
                ops.broadcast_to(self.cls_token, (batch, 1, self.hidden_dim)),
                ops.broadcast_to(self.distillation_token, (batch, 1, self.hidden_dim)),
            ],
            axis=1,
        )
        tokens = ops.concatenate([ops.cast(prefix, patches.dtype), patches], axis=1)
        return tokens + ops.cast(position, tokens.dtype)

    def embed(self, inputs):
        image = ops.expand_dims(ops.transpose(inputs, (0, 2, 1)), -1)
        patches = self.patch_embedding(image)
        patches = ops.reshape(
            patches, (-1, int(np.prod(self.patch_grid)), self.hidden_dim)
        )
        return self.add_prefix_and_positions(
            patches, self.cropped_position_embeddings()
        )

    def embed_spectrogram(self, fbank):
        """Fbank segments `(N, L, frequency_bins)` of any length `L` up to the
        stored grid's → `(N, 2 + F·T, C)`, exactly as `embed` treats an input of
        `L` frames: native 1-channel patching, position grid cropped in time."""
        image = ops.expand_dims(ops.transpose(fbank, (0, 2, 1)), -1)
        patches = self.patch_embedding(image)
        rows, columns = patches.shape[1], patches.shape[2]
        if rows != self.position_grid[0] or columns > self.position_grid[1]:
            raise ValueError(
                f"A spectrogram of {fbank.shape[1]} frames × {fbank.shape[2]} bins "
                f"gives {rows}×{columns} patches, which the position grid "
                f"{self.position_grid} cannot cover: the frequency rows must match "
                "and the audio may not be longer than the expert was trained on."
            )
        patches = ops.reshape(patches, (-1, rows * columns, self.hidden_dim))
        return self.add_prefix_and_positions(
            patches, self.cropped_position_embeddings(columns)
        )

    def embed_images(self, images):
        """RGB images of any size → `(N, 2 + patches, C)`.

        AST's patch embedding has one input channel, so the image is converted
        to grey by the mean over R, G, B; the stored position grid (frequency
        rows × time columns) is resampled (bilinear) to the image's patch grid
        (image rows × columns); CLS and distillation tokens keep theirs.
        """
        grey = ops.mean(images, axis=-1, keepdims=True)
        patches = self.patch_embedding(grey)
        rows, columns = patches.shape[1], patches.shape[2]
        patches = ops.reshape(patches, (-1, rows * columns, self.hidden_dim))
        grid = ops.reshape(
            self.position_embeddings[:, 2:, :],
            (1, *self.position_grid, self.hidden_dim),
        )
        grid = resample_position_grid(grid, (rows, columns))
        position = ops.concatenate(
            [
                self.position_embeddings[:, :2, :],
                ops.reshape(grid, (1, rows * columns, self.hidden_dim)),
            ],
            axis=1,
        )
        return self.add_prefix_and_positions(patches, position)

    def pool(self, stream):
        prefix = self.layernorm(stream[:, :2, :])
        return (prefix[:, 0] + prefix[:, 1]) / 2

    def pool_tokens(self, tokens):
        """The mean of the normalised CLS and distillation tokens of each input."""
        return self.pool(tokens)

    def get_config(self):
        config = super().get_config()
        config.pop("use_key_bias")
        config.update(
            num_time_frames=self.num_time_frames,
            frequency_bins=self.frequency_bins,
            patch_size=self.patch_size,
            stride=self.stride,
            position_grid=list(self.position_grid),
        )
        return config
