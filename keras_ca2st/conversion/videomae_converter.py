"""VideoMAE → `VideoMAEEncoder`.

Layouts:
- Hugging Face (`videomae.` prefix in task models, none in `VideoMAEModel`):
  `embeddings.patch_embeddings.projection`, `encoder.layer.i.attention.attention.
  {query,key,value}.weight` with `q_bias`/`v_bias` (transformers 5:
  `query.bias`/`value.bias`), `attention.output.dense`, `layernorm_before/after`,
  `intermediate.dense`, `output.dense`; `fc_norm` (mean pooling) or `layernorm`;
- official (`model`/`module` entry; pre-training files prefix `encoder.`):
  `patch_embed.proj`, `blocks.i.{norm1, attn.qkv.weight, attn.q_bias,
  attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `fc_norm` or `norm`.

The sinusoid position table is not stored; a stored `pos_embed` must equal it.
Without `fc_norm` the final `norm`/`layernorm` becomes the expert's `fc_norm`
(fine-tuning trains it); without either, `fc_norm` starts as a plain layer norm
(unit scale, zero shift).
"""

import numpy as np

from keras_ca2st.conversion.errors import ConversionError
from keras_ca2st.conversion.expert_converter import ExpertConverter
from keras_ca2st.conversion.vit_blocks import (
    activation_name,
    count_blocks,
    hf_vit_spelling,
    load_hf_vit_block,
    load_timm_block,
)
from keras_ca2st.experts import VideoMAEEncoder
from keras_ca2st.experts.vit_encoder import sinusoid_position_table

HF_DEFAULTS = {
    "num_attention_heads": 12,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "image_size": 224,
    "num_frames": 16,
}
OFFICIAL_IGNORED = (
    "head.",
    "decoder.",
    "encoder_to_decoder.",
    "mask_token",
    "pos_embed",
)


def videomae_layout(checkpoint):
    """`("hf" | "official", prefix)` of a VideoMAE checkpoint."""
    for prefix in ("videomae.", ""):
        if f"{prefix}embeddings.patch_embeddings.projection.weight" in checkpoint:
            return "hf", prefix
    prefix = checkpoint.find_prefix(
        ("", "encoder.", "backbone.", "module."), "patch_embed.proj.weight", "VideoMAE"
    )
    return "official", prefix


def videomae_source_config(checkpoint):
    """`(fixed, defaults)`: arguments the weights fix, and ones they suggest.

    Frame count and image size do not show in the weights (the position table is
    not stored); Hugging Face configs suggest them.
    """
    layout, prefix = videomae_layout(checkpoint)
    if layout == "hf":
        patch = checkpoint.shape(
            f"{prefix}embeddings.patch_embeddings.projection.weight"
        )
        spelling = hf_vit_spelling(checkpoint, prefix)
        block = prefix + spelling["block"]
        blocks = count_blocks(checkpoint, block + "layernorm_before.weight")
        fc1 = checkpoint.shape(block.format(0) + spelling["fc1"] + ".weight")
    else:
        patch = checkpoint.shape(f"{prefix}patch_embed.proj.weight")
        blocks = count_blocks(checkpoint, prefix + "blocks.{}.norm1.weight")
        fc1 = checkpoint.shape(f"{prefix}blocks.0.mlp.fc1.weight")
    if len(patch) != 5:
        raise ConversionError(
            f"{checkpoint.origin}: the patch embedding has shape {patch}; VideoMAE "
            "needs a 3-D (tubelet) convolution."
        )
    fixed = {
        "hidden_dim": patch[0],
        "num_layers": blocks,
        "intermediate_dim": fc1[0],
        "tubelet_size": patch[2],
        "patch_size": patch[3],
    }
    if layout == "hf":
        hf = {**HF_DEFAULTS, **(checkpoint.config or {})}
        fixed["num_heads"] = hf["num_attention_heads"]
        fixed["activation"] = activation_name(hf["hidden_act"], checkpoint.origin)
        fixed["layer_norm_epsilon"] = hf["layer_norm_eps"]
        defaults = {"image_size": hf["image_size"], "num_frames": hf["num_frames"]}
    else:
        fixed["activation"] = "gelu"
        fixed["layer_norm_epsilon"] = 1e-6
        defaults = {"num_heads": patch[0] // 64, "image_size": 224, "num_frames": 16}
    return fixed, defaults


def copy_videomae_weights(expert, loader):
    checkpoint = loader.checkpoint
    layout, prefix = videomae_layout(checkpoint)
    if layout == "hf":
        loader.conv(
            expert.patch_embedding,
            f"{prefix}embeddings.patch_embeddings.projection",
        )
        spelling = hf_vit_spelling(checkpoint, prefix)
        for i, block in enumerate(expert.blocks):
            load_hf_vit_block(loader, block, prefix, i, spelling)
        final = [
            k for k in ("fc_norm", f"{prefix}layernorm") if loader.has(f"{k}.weight")
        ]
        ignored = ("classifier.", "decoder.", "encoder_to_decoder.", "mask_token")
        check_prefix = ""
    else:
        loader.conv(expert.patch_embedding, f"{prefix}patch_embed.proj")
        for i, block in enumerate(expert.blocks):
            load_timm_block(loader, block, f"{prefix}blocks.{i}.")
        final = [
            k
            for k in (f"{prefix}fc_norm", f"{prefix}norm")
            if loader.has(f"{k}.weight")
        ]
        _check_position_table(expert, checkpoint, f"{prefix}pos_embed")
        ignored = OFFICIAL_IGNORED
        check_prefix = prefix
    if final:
        loader.layer_norm(expert.fc_norm, final[0])
    else:
        expert.fc_norm.gamma.assign(np.ones(expert.fc_norm.gamma.shape, "float32"))
        expert.fc_norm.beta.assign(np.zeros(expert.fc_norm.beta.shape, "float32"))
    unused_norms = tuple(k[len(check_prefix) :] + "." for k in final[1:])
    loader.check_all_used(check_prefix, ignore=ignored + unused_norms)


def _check_position_table(expert, checkpoint, key):
    if key not in checkpoint:
        return
    stored = checkpoint.array(key).reshape(-1, expert.hidden_dim)
    table = sinusoid_position_table(stored.shape[0], expert.hidden_dim)
    if not np.allclose(stored, table, atol=1e-4):
        raise ConversionError(
            f"{key!r} in {checkpoint.origin} is a learned position embedding; the "
            "VideoMAE expert uses the fixed sinusoid table."
        )


VIDEOMAE = ExpertConverter(
    VideoMAEEncoder, videomae_source_config, copy_videomae_weights
)


def load_videomae_weights(expert, checkpoint):
    """Copy a VideoMAE encoder into a `VideoMAEEncoder` that fits it."""
    return VIDEOMAE.load(expert, checkpoint)


def convert_videomae(source, **kwargs):
    """Build a `VideoMAEEncoder` from a VideoMAE checkpoint.

    Args:
        source: a checkpoint file, a Hugging Face model directory, or a
            `Checkpoint`.
        **kwargs: `VideoMAEEncoder` arguments the weights do not fix, e.g.
            `num_frames`, `image_size`, `dtype`, `num_heads` (official files:
            64 channels per head by default).

    Returns:
        A built `VideoMAEEncoder`, with the layer-norm epsilon of the source
        (a Hugging Face config's `layer_norm_eps`, 1e-6 for official files).

    Example:
    ```python
    temporal = convert_videomae("videomae-base-finetuned-kinetics/")
    temporal(video)["pooled"]  # (batch, 768)
    ```
    """
    return VIDEOMAE.convert(source, **kwargs)
