"""Audio Spectrogram Transformer → `ASTEncoder`.

Layouts:
- Hugging Face (`audio_spectrogram_transformer.` prefix in task models, none in
  `ASTModel`): `embeddings.{cls_token, distillation_token, position_embeddings,
  patch_embeddings.projection}`, `encoder.layer.i.*` (ViT style), `layernorm`;
- official (`module.v.` prefix of the AudioSet `.pth`): `cls_token`,
  `dist_token`, `pos_embed`, `patch_embed.proj`, `blocks.i.*` with fused
  `attn.qkv`, `norm`; `module.mlp_head` is the AudioSet classifier.

The stored position grid (12 × 101 for 10 s AudioSet clips) is kept whole; an
expert built for shorter audio crops it in time around its centre
(`ASTEncoder.position_grid`).
"""

from keras_ca2st.conversion.errors import ConversionError
from keras_ca2st.conversion.expert_converter import ExpertConverter
from keras_ca2st.conversion.vit_blocks import (
    activation_name,
    count_blocks,
    hf_vit_spelling,
    load_hf_vit_block,
    load_timm_block,
)
from keras_ca2st.experts import ASTEncoder

HF_DEFAULTS = {
    "num_attention_heads": 12,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "num_mel_bins": 128,
    "max_length": 1024,
    "frequency_stride": 10,
    "time_stride": 10,
}


def ast_layout(checkpoint):
    """`("hf" | "official", prefix)` of an AST checkpoint."""
    for prefix in ("audio_spectrogram_transformer.", ""):
        if f"{prefix}embeddings.position_embeddings" in checkpoint:
            return "hf", prefix
    prefix = checkpoint.find_prefix(
        ("module.v.", "v.", ""), "patch_embed.proj.weight", "AST"
    )
    return "official", prefix


def ast_source_config(checkpoint, frequency_bins=None, stride=None):
    """`(fixed, defaults)` arguments of an `ASTEncoder` for the checkpoint.

    The official files store neither the mel bins nor the patch stride; they
    default to AudioSet's 128 bins and stride 10.
    """
    layout, prefix = ast_layout(checkpoint)
    if layout == "hf":
        hf = {**HF_DEFAULTS, **(checkpoint.config or {})}
        if hf["frequency_stride"] != hf["time_stride"]:
            raise ConversionError(
                f"{checkpoint.origin} uses frequency stride {hf['frequency_stride']} "
                f"and time stride {hf['time_stride']}; ASTEncoder has one stride."
            )
        patch = checkpoint.shape(
            f"{prefix}embeddings.patch_embeddings.projection.weight"
        )
        positions = checkpoint.shape(f"{prefix}embeddings.position_embeddings")
        spelling = hf_vit_spelling(checkpoint, prefix)
        block = prefix + spelling["block"]
        blocks = count_blocks(checkpoint, block + "layernorm_before.weight")
        fc1 = checkpoint.shape(block.format(0) + spelling["fc1"] + ".weight")
        frequency_bins = frequency_bins or hf["num_mel_bins"]
        stride = stride or hf["frequency_stride"]
        extra = {
            "num_heads": hf["num_attention_heads"],
            "activation": activation_name(hf["hidden_act"], checkpoint.origin),
            "layer_norm_epsilon": hf["layer_norm_eps"],
        }
        defaults = {"num_time_frames": hf["max_length"]}
    else:
        patch = checkpoint.shape(f"{prefix}patch_embed.proj.weight")
        positions = checkpoint.shape(f"{prefix}pos_embed")
        blocks = count_blocks(checkpoint, prefix + "blocks.{}.norm1.weight")
        fc1 = checkpoint.shape(f"{prefix}blocks.0.mlp.fc1.weight")
        frequency_bins = frequency_bins or 128
        stride = stride or 10
        extra = {"activation": "gelu", "layer_norm_epsilon": 1e-6}
        defaults = {"num_heads": patch[0] // 64, "num_time_frames": 1024}
    patch_size = patch[-1]
    rows = (frequency_bins - patch_size) // stride + 1
    grid_tokens = positions[-2] - 2
    if rows < 1 or grid_tokens % rows:
        raise ConversionError(
            f"{checkpoint.origin}: {grid_tokens} position embeddings do not form a "
            f"grid of {rows} frequency rows ({frequency_bins} mel bins, patch "
            f"{patch_size}, stride {stride}); pass frequency_bins/stride."
        )
    fixed = {
        "hidden_dim": patch[0],
        "num_layers": blocks,
        "intermediate_dim": fc1[0],
        "patch_size": patch_size,
        "stride": stride,
        "frequency_bins": frequency_bins,
        "position_grid": [rows, grid_tokens // rows],
        **extra,
    }
    return fixed, defaults


def copy_ast_weights(expert, loader):
    checkpoint = loader.checkpoint
    layout, prefix = ast_layout(checkpoint)
    if layout == "hf":
        embeddings = f"{prefix}embeddings."
        loader.assign(expert.cls_token, f"{embeddings}cls_token")
        loader.assign(expert.distillation_token, f"{embeddings}distillation_token")
        loader.assign(expert.position_embeddings, f"{embeddings}position_embeddings")
        loader.conv(expert.patch_embedding, f"{embeddings}patch_embeddings.projection")
        spelling = hf_vit_spelling(checkpoint, prefix)
        for i, block in enumerate(expert.blocks):
            load_hf_vit_block(loader, block, prefix, i, spelling)
        loader.layer_norm(expert.layernorm, f"{prefix}layernorm")
        loader.check_all_used(prefix, ignore=("classifier.",))
    else:
        loader.assign(expert.cls_token, f"{prefix}cls_token")
        loader.assign(expert.distillation_token, f"{prefix}dist_token")
        loader.assign(expert.position_embeddings, f"{prefix}pos_embed")
        loader.conv(expert.patch_embedding, f"{prefix}patch_embed.proj")
        for i, block in enumerate(expert.blocks):
            load_timm_block(loader, block, f"{prefix}blocks.{i}.")
        loader.layer_norm(expert.layernorm, f"{prefix}norm")
        loader.check_all_used(prefix, ignore=("head.", "head_dist.", "mlp_head."))


# The official files store neither the mel bins nor the stride: both are read
# off the expert (or the converter's arguments) to interpret the position grid.
AST = ExpertConverter(
    ASTEncoder, ast_source_config, copy_ast_weights, hints=("frequency_bins", "stride")
)


def load_ast_weights(expert, checkpoint):
    """Copy an AST into an `ASTEncoder` that fits it (its position grid too)."""
    return AST.load(expert, checkpoint)


def convert_ast(source, **kwargs):
    """Build an `ASTEncoder` from an AST checkpoint.

    Args:
        source: a checkpoint file, a Hugging Face model directory, or a
            `Checkpoint`.
        **kwargs: `ASTEncoder` arguments, e.g. `num_time_frames` (shorter audio
            crops the stored position grid around its centre), `dtype`,
            `frequency_bins`/`stride` for official files that are not AudioSet's
            128 bins / stride 10, `num_heads` (official: 64 channels per head).

    Returns:
        A built `ASTEncoder`, with the layer-norm epsilon of the source.

    Example:
    ```python
    audio = convert_ast("audioset_10_10_0.4593.pth", num_time_frames=512)
    ```
    """
    return AST.convert(source, **kwargs)
