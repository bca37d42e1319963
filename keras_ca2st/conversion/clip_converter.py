"""CLIP vision tower → `CLIPVisionEncoder`.

Layouts:
- Hugging Face `CLIPModel` (`vision_model.` prefix) and `CLIPVisionModel`
  (`vision_model.` in transformers 4, no prefix in transformers 5):
  `embeddings.{class_embedding, patch_embedding.weight,
  position_embedding.weight}`, `pre_layrnorm` (sic), `encoder.layers.i.
  {self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}`,
  `post_layernorm`;
- OpenAI (`visual.` prefix, or none for a `visual` state dict): `conv1`,
  `class_embedding`, `positional_embedding`, `ln_pre`,
  `transformer.resblocks.i.*` with packed `attn.in_proj_weight` (rows q|k|v),
  `ln_post`; the TorchScript release (`ViT-B-16.pt`) stores them in float16.
"""

from keras_ca2st.conversion.errors import ConversionError
from keras_ca2st.conversion.expert_converter import ExpertConverter
from keras_ca2st.conversion.vit_blocks import (
    activation_name,
    count_blocks,
    load_openai_block,
)
from keras_ca2st.experts import CLIPVisionEncoder

# transformers' CLIPVisionConfig defaults, for configs that leave keys out.
HF_DEFAULTS = {
    "num_attention_heads": 12,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}


def clip_layout(checkpoint):
    """`("hf" | "openai", prefix)` of a CLIP checkpoint."""
    for prefix in ("vision_model.", ""):
        if f"{prefix}embeddings.class_embedding" in checkpoint:
            return "hf", prefix
    prefix = checkpoint.find_prefix(
        ("visual.", "", "vision_model."), "conv1.weight", "CLIP vision"
    )
    return "openai", prefix


def clip_source_config(checkpoint):
    """`(fixed, defaults)` `CLIPVisionEncoder` arguments of a checkpoint.

    Sizes come from the tensor shapes. Heads, activation and epsilon come from
    the Hugging Face config, or follow OpenAI's convention (QuickGELU, epsilon
    1e-5, and by default 64-wide heads, which the file does not store) for
    OpenAI files.
    """
    layout, prefix = clip_layout(checkpoint)
    if layout == "hf":
        patch = checkpoint.shape(f"{prefix}embeddings.patch_embedding.weight")
        positions = checkpoint.shape(f"{prefix}embeddings.position_embedding.weight")
        blocks = count_blocks(
            checkpoint, prefix + "encoder.layers.{}.layer_norm1.weight"
        )
        fc1 = checkpoint.shape(f"{prefix}encoder.layers.0.mlp.fc1.weight")
    else:
        patch = checkpoint.shape(f"{prefix}conv1.weight")
        positions = checkpoint.shape(f"{prefix}positional_embedding")
        blocks = count_blocks(
            checkpoint, prefix + "transformer.resblocks.{}.ln_1.weight"
        )
        fc1 = checkpoint.shape(f"{prefix}transformer.resblocks.0.mlp.c_fc.weight")
    width, patch_size = patch[0], patch[-1]
    grid = round((positions[0] - 1) ** 0.5)
    if grid * grid + 1 != positions[0]:
        raise ConversionError(
            f"{checkpoint.origin}: {positions[0]} CLIP positions are not a square "
            "grid plus a CLS token."
        )
    config = {
        "hidden_dim": width,
        "num_layers": blocks,
        "intermediate_dim": fc1[0],
        "patch_size": patch_size,
        "image_size": grid * patch_size,
    }
    if layout == "hf":
        hf = checkpoint.config or {}
        hf = hf.get("vision_config", hf) if hf.get("model_type") == "clip" else hf
        hf = {**HF_DEFAULTS, **hf}
        config["num_heads"] = hf["num_attention_heads"]
        config["activation"] = activation_name(hf["hidden_act"], checkpoint.origin)
        config["layer_norm_epsilon"] = hf["layer_norm_eps"]
        return config, {}
    config["activation"] = "quick_gelu"
    config["layer_norm_epsilon"] = 1e-5
    return config, {"num_heads": width // 64}


def copy_clip_weights(expert, loader):
    layout, prefix = clip_layout(loader.checkpoint)
    if layout == "hf":
        embeddings = f"{prefix}embeddings."
        loader.assign(expert.class_embedding, f"{embeddings}class_embedding")
        loader.assign(
            expert.patch_embedding.kernel,
            f"{embeddings}patch_embedding.weight",
            "conv2d",
        )
        loader.assign(
            expert.position_embedding, f"{embeddings}position_embedding.weight"
        )
        pre = "pre_layrnorm" if loader.has(f"{prefix}pre_layrnorm.weight") else None
        loader.layer_norm(expert.pre_layernorm, prefix + (pre or "pre_layernorm"))
        for i, block in enumerate(expert.blocks):
            base = f"{prefix}encoder.layers.{i}."
            attention = block.attention
            for name, layer in (
                ("q_proj", attention.query),
                ("k_proj", attention.key),
                ("v_proj", attention.value),
                ("out_proj", attention.out_proj),
            ):
                loader.dense(layer, f"{base}self_attn.{name}")
            loader.layer_norm(block.layer_norm1, f"{base}layer_norm1")
            loader.layer_norm(block.layer_norm2, f"{base}layer_norm2")
            loader.dense(block.mlp.fc1, f"{base}mlp.fc1")
            loader.dense(block.mlp.fc2, f"{base}mlp.fc2")
        loader.layer_norm(expert.post_layernorm, f"{prefix}post_layernorm")
        loader.check_all_used(prefix, ignore=("embeddings.position_ids",))
    else:
        loader.assign(expert.class_embedding, f"{prefix}class_embedding")
        loader.assign(expert.patch_embedding.kernel, f"{prefix}conv1.weight", "conv2d")
        loader.assign(expert.position_embedding, f"{prefix}positional_embedding")
        loader.layer_norm(expert.pre_layernorm, f"{prefix}ln_pre")
        for i, block in enumerate(expert.blocks):
            load_openai_block(loader, block, f"{prefix}transformer.resblocks.{i}.")
        loader.layer_norm(expert.post_layernorm, f"{prefix}ln_post")
        loader.check_all_used(prefix, ignore=("proj",))


CLIP = ExpertConverter(CLIPVisionEncoder, clip_source_config, copy_clip_weights)


def load_clip_weights(expert, checkpoint):
    """Copy a CLIP vision tower into a `CLIPVisionEncoder` that fits it."""
    return CLIP.load(expert, checkpoint)


def convert_clip(source, allow_torchscript=False, **kwargs):
    """Build a `CLIPVisionEncoder` from a CLIP checkpoint.

    Args:
        source: a checkpoint file (`.safetensors`, `.bin`, `.pth`, `.pt`), a
            Hugging Face model directory, or a `Checkpoint`.
        allow_torchscript: bool. Needed for OpenAI's TorchScript `ViT-B-16.pt`;
            opening a TorchScript archive runs the code stored in it, so pass
            `True` only for a file you trust.
        **kwargs: `CLIPVisionEncoder` arguments that the checkpoint does not
            fix, e.g. `num_frames`, `frame_offset`, `frame_stride`, `dtype`, or
            `num_heads` for OpenAI files narrower than 64 per head.

    Returns:
        A built `CLIPVisionEncoder` holding the checkpoint's weights.

    Example:
    ```python
    spatial = convert_clip("clip-vit-base-patch16/", num_frames=16)
    spatial(video)["pooled"]  # (batch, 768)
    ```
    """
    return CLIP.convert(source, allow_torchscript=allow_torchscript, **kwargs)
