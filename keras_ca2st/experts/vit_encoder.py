"""Base class of the frozen ViT experts."""

import keras
import numpy as np
from keras import ops

from keras_ca2st.experts.stream_layout import make_layout, merge_stream, split_stream
from keras_ca2st.experts.vit_layers import ViTBlock


class ViTExpertEncoder(keras.layers.Layer):
    """A ViT expert: embeddings, a stack of `ViTBlock`s, a final norm and pooling.

    Subclasses define how inputs become the token *stream* (`embed`), how the
    stream splits into prefix tokens (CLS and friends) and patch tokens, and how
    the final feature is pooled. The fusion models drive the blocks one by one
    through these hooks; used alone, `call` runs the whole expert.

    Stream layouts:
    - video experts expose patch tokens on a `(frames, patches)` grid,
      `(batch, T, N, C)`, token index `t·N + n`;
    - the audio expert exposes flat patch tokens `(batch, F·T, C)`,
      frequency-major.

    Args:
        hidden_dim: int. Token width.
        num_layers: int. Transformer blocks.
        num_heads: int. Attention heads.
        intermediate_dim: int. MLP width.
        activation: `"gelu"` or `"quick_gelu"`.
        layer_norm_epsilon: float. Epsilon of every layer norm of the expert.
        use_key_bias: bool. Whether attention keys have a bias.
    """

    is_video = True
    frames_in_batch = False
    num_prefix_tokens = 0

    def __init__(
        self,
        hidden_dim,
        num_layers,
        num_heads,
        intermediate_dim,
        activation,
        layer_norm_epsilon,
        use_key_bias=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Layers ===
        self.blocks = [
            ViTBlock(
                hidden_dim,
                num_heads,
                intermediate_dim,
                activation=activation,
                layer_norm_epsilon=layer_norm_epsilon,
                use_key_bias=use_key_bias,
                dtype=self.dtype_policy,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]

        # === Config ===
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_key_bias = use_key_bias

    def build(self, input_shape=None):
        for block in self.blocks:
            block.build((None, None, self.hidden_dim))
        self.final_norm.build((None, None, self.hidden_dim))
        self.built = True

    # --- hooks a subclass defines ---
    def embed(self, inputs):
        """Inputs → the token stream the blocks consume."""
        raise NotImplementedError

    def pool(self, stream):
        """The stream after the last block → the normalised pooled feature."""
        raise NotImplementedError

    @property
    def patch_grid(self):
        """`(T, N)` for video experts, `(F, T)` for the audio expert."""
        raise NotImplementedError

    # --- hooks for one ViT shared by images and spectrograms (LAVISH) ---
    def embed_images(self, images):
        """A batch of single RGB images `(N, H, W, 3)` → tokens `(N, P + patches, C)`.

        `H, W` may be any size the patch embedding accepts; the position
        embedding is adapted to that image's patch grid. `P` is
        `num_prefix_tokens`. The tokens are ready for `blocks[0]`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement `embed_images`, so it cannot "
            "embed single images (needed to share it between frames and "
            "spectrograms, as LAVISH does); implement `embed_images` and "
            "`pool_tokens`."
        )

    def embed_spectrogram(self, fbank):
        """Fbank segments `(N, L, F)` → tokens `(N, P + patches, C)`.

        An image expert reads the spectrogram as LAVISH does: a 3-channel image
        (the fbank copied into each channel) with rows = time and columns = mel
        bins. The audio expert overrides this with its native patching.
        """
        image = ops.concatenate([ops.expand_dims(fbank, -1)] * 3, axis=-1)
        return self.embed_images(image)

    def pool_tokens(self, tokens):
        """Tokens of single images or segments `(N, P + patches, C)` → `(N, C)`.

        The expert's own pooling and final norm, applied per image.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement `pool_tokens`, so it cannot "
            "pool the tokens of single images (needed to share it between frames "
            "and spectrograms, as LAVISH does)."
        )

    @property
    def stream_layout(self):
        """The `stream_layout` dict describing this expert's token stream."""
        return make_layout(
            self.num_prefix_tokens,
            self.patch_grid,
            frames_in_batch=self.frames_in_batch,
            is_video=self.is_video,
        )

    def split_stream(self, stream):
        """`stream → (prefix or None, patches)`, for tensors of any width."""
        return split_stream(stream, self.stream_layout)

    def merge_stream(self, prefix, patches):
        """Inverse of `split_stream`."""
        return merge_stream(prefix, patches, self.stream_layout)

    # --- shared behaviour ---
    @property
    def final_norm(self):
        raise NotImplementedError

    def frozen_layers(self):
        """Everything pretrained except the final norm, which fine-tuning trains."""
        return list(self.blocks)

    def freeze_pretrained(self):
        for layer in self.frozen_layers():
            layer.trainable = False
        for weight in self.pretrained_embedding_weights():
            weight.trainable = False

    def pretrained_embedding_weights(self):
        return []

    def call(self, inputs):
        stream = self.embed(inputs)
        for block in self.blocks:
            stream = block(stream)
        return {"hidden_states": stream, "pooled": self.pool(stream)}

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
            use_key_bias=self.use_key_bias,
        )
        return config


def sinusoid_position_table(num_positions, dim):
    """The fixed table of VideoMAE: sin on even channels, cos on odd ones."""
    positions = np.arange(num_positions, dtype=np.float64)[:, None]
    exponents = 2 * (np.arange(dim) // 2) / dim
    angles = positions / np.power(10000.0, exponents)[None, :]
    table = np.empty_like(angles)
    table[:, 0::2] = np.sin(angles[:, 0::2])
    table[:, 1::2] = np.cos(angles[:, 1::2])
    return table.astype("float32")


def resample_position_grid(grid, size):
    """A learned position grid `(1, rows, columns, C)` resampled to `size`.

    Bilinear (half-pixel centres); the grid comes back untouched when it already
    has that size.
    """
    if tuple(grid.shape[1:3]) == tuple(size):
        return grid
    return ops.image.resize(grid, size, interpolation="bilinear")
