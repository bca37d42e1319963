"""The spatial expert: CLIP's vision tower applied frame by frame."""

import keras
import numpy as np
from keras import ops

from keras_ca2st.experts.vit_encoder import ViTExpertEncoder, resample_position_grid


@keras.saving.register_keras_serializable(package="keras_ca2st")
class CLIPVisionEncoder(ViTExpertEncoder):
    """CLIP ViT vision tower as the spatial expert of CAST / CA²ST.

    Each selected frame is a separate image: 2-D patches (conv without bias), a
    CLS token, a learned position embedding, `pre_layernorm`, QuickGELU blocks
    attending within the frame, and `post_layernorm` on the frame-averaged CLS
    token. See [CLIP](https://arxiv.org/abs/2103.00020).

    Args:
        image_size: int. Square frame size in pixels.
        patch_size: int. Patch size in pixels.
        num_frames: int. Frames of the input clip.
        frame_offset: int. First frame the expert sees.
        frame_stride: int. Step between the frames it sees; CAST feeds frames
            1, 3, …, 15 of a 16-frame clip (offset 1, stride 2) so that frame `t`
            lines up with tubelet `t` of the temporal expert.
        hidden_dim, num_layers, num_heads, intermediate_dim, activation,
        layer_norm_epsilon: see `ViTExpertEncoder`.

    Call arguments:
        inputs: video `(batch, num_frames, image_size, image_size, 3)`.

    Returns a dict with `"hidden_states"` `(batch·T, 1 + N, hidden_dim)` and
    `"pooled"` `(batch, hidden_dim)`.

    Example:
    ```python
    encoder = CLIPVisionEncoder(image_size=32, patch_size=16, num_frames=4,
        hidden_dim=64, num_layers=2, num_heads=4, intermediate_dim=128)
    out = encoder(np.zeros((2, 4, 32, 32, 3), "float32"))
    out["pooled"].shape  # (2, 64)
    ```
    """

    is_video = True
    frames_in_batch = True
    num_prefix_tokens = 1

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        num_frames=16,
        frame_offset=1,
        frame_stride=2,
        hidden_dim=768,
        num_layers=12,
        num_heads=12,
        intermediate_dim=3072,
        activation="quick_gelu",
        layer_norm_epsilon=1e-5,
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
        if image_size % patch_size:
            raise ValueError(
                f"image_size={image_size} is not a multiple of patch_size={patch_size}."
            )
        # === Layers ===
        self.patch_embedding = keras.layers.Conv2D(
            hidden_dim,
            patch_size,
            strides=patch_size,
            use_bias=False,
            dtype=self.dtype_policy,
            name="patch_embedding",
        )
        norm = dict(epsilon=layer_norm_epsilon, dtype=self.dtype_policy)
        self.pre_layernorm = keras.layers.LayerNormalization(
            name="pre_layernorm", **norm
        )
        self.post_layernorm = keras.layers.LayerNormalization(
            name="post_layernorm", **norm
        )

        # === Config ===
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_frames = num_frames
        self.frame_offset = frame_offset
        self.frame_stride = frame_stride
        self.frame_indices = list(range(frame_offset, num_frames, frame_stride))
        if not self.frame_indices:
            raise ValueError(
                f"frame_offset={frame_offset} selects no frame of a "
                f"{num_frames}-frame clip."
            )

    @property
    def final_norm(self):
        return self.post_layernorm

    @property
    def patch_grid(self):
        return (len(self.frame_indices), (self.image_size // self.patch_size) ** 2)

    def build(self, input_shape=None):
        num_patches = self.patch_grid[1]
        self.class_embedding = self.add_weight(
            shape=(self.hidden_dim,),
            initializer="random_normal",
            name="class_embedding",
        )
        self.position_embedding = self.add_weight(
            shape=(num_patches + 1, self.hidden_dim),
            initializer="random_normal",
            name="position_embedding",
        )
        self.patch_embedding.build((None, self.image_size, self.image_size, 3))
        self.pre_layernorm.build((None, None, self.hidden_dim))
        super().build(input_shape)

    def pretrained_embedding_weights(self):
        return [self.class_embedding, self.position_embedding]

    def frozen_layers(self):
        return [self.patch_embedding, self.pre_layernorm] + list(self.blocks)

    def embed(self, inputs):
        frames = ops.take(inputs, np.array(self.frame_indices), axis=1)
        images = ops.reshape(frames, (-1, self.image_size, self.image_size, 3))
        return self.embed_images(images)

    def embed_images(self, images):
        """RGB images of any size → `(N, 1 + patches, C)` after `pre_layernorm`.

        The learned position grid is resampled (bilinear) to the image's patch
        grid; at `image_size` it is used as stored.
        """
        patches = self.patch_embedding(ops.cast(images, self.compute_dtype))
        rows, columns = patches.shape[1], patches.shape[2]
        patches = ops.reshape(patches, (-1, rows * columns, self.hidden_dim))
        side = self.image_size // self.patch_size
        grid = ops.reshape(
            self.position_embedding[1:], (1, side, side, self.hidden_dim)
        )
        grid = resample_position_grid(grid, (rows, columns))
        position = ops.concatenate(
            [
                self.position_embedding[:1],
                ops.reshape(grid, (rows * columns, self.hidden_dim)),
            ],
            axis=0,
        )
        cls = ops.broadcast_to(
            ops.cast(self.class_embedding, patches.dtype),
            (ops.shape(patches)[0], 1, self.hidden_dim),
        )
        tokens = ops.concatenate([cls, patches], axis=1)
        tokens = tokens + ops.cast(position, tokens.dtype)[None]
        return self.pre_layernorm(tokens)

    def pool(self, stream):
        frames = self.patch_grid[0]
        cls = ops.reshape(stream[:, 0, :], (-1, frames, stream.shape[-1]))
        return self.post_layernorm(ops.mean(cls, axis=1))

    def pool_tokens(self, tokens):
        """`post_layernorm` of each image's CLS token."""
        return self.post_layernorm(tokens[:, 0])

    def get_config(self):
        config = super().get_config()
        for key in ("use_key_bias",):
            config.pop(key)
        config.update(
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_frames=self.num_frames,
            frame_offset=self.frame_offset,
            frame_stride=self.frame_stride,
        )
        return config
