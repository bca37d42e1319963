"""The authors' fine-tuned CAST checkpoints (KHU-VLL/CAST) → a `CAST` task.

The checkpoints (Kinetics-400, Something-Something-V2, EPIC-KITCHENS-100; a
DeepSpeed `module` entry or a `model` entry) hold one `STCrossTransformer`:
- CLIP: `clip_conv1`, `clip_class_embedding`, `clip_positional_embedding`,
  `clip_ln_pre`, `clip_ln_post`, `blocks.i.clip_{ln_1, attn.in_proj_weight,
  attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}`;
- VideoMAE: `patch_embed.proj`, `blocks.i.{norm1, attn.qkv, attn.q_bias,
  attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `vmae_fc_norm`;
- adapters `blocks.i.{S_Adapter, T_Adapter, S_MLP_Adapter,
  T_MLP_Adapter}.D_fc{1,2}`;
- B-CA `blocks.i.{cross_s_down, ln_s_cross, cross_s_up}` (and `t`), the T→S
  direction `blocks.i.t2s_cross.{clip_time_pos, vmae_time_pos, t2s_q, t2s_q_bias,
  t2s_kv, t2s_kv_bias, t2s_proj}` (queries from CLIP), the S→T direction
  `blocks.i.s2t_cross.{vmae_space_pos, clip_space_pos, s2t_q, s2t_q_bias, s2t_kv,
  s2t_kv_bias, t2s_proj}` (queries from VideoMAE; its output projection is also
  named `t2s_proj`);
- heads: `noun_last_Adapter` (spatial), `verb_last_Adapter` (temporal) and
  `head`, or `head_noun` / `head_verb` without last adapters (EK100).

The reference model reads the clip channels-first, `(B, 3, 16, H, W)`, and feeds
frames 1, 3, …, 15 to CLIP; `CAST` reads it channels-last, `(B, 16, H, W, 3)`,
with the same frame choice.
"""

from keras_ca2st.conversion.checkpoint import as_checkpoint
from keras_ca2st.conversion.errors import ConversionError
from keras_ca2st.conversion.vit_blocks import (
    count_blocks,
    load_openai_block,
    load_timm_block,
)
from keras_ca2st.conversion.weight_loader import WeightLoader
from keras_ca2st.models import CAST, CA2STBackbone

CLIP_BLOCK_NAMES = {"ln_1": "clip_ln_1", "ln_2": "clip_ln_2", "mlp": "clip_mlp"}
ADAPTERS = {
    "S_Adapter": ("attention_adapters", "spatial"),
    "T_Adapter": ("attention_adapters", "temporal"),
    "S_MLP_Adapter": ("mlp_adapters", "spatial"),
    "T_MLP_Adapter": ("mlp_adapters", "temporal"),
}
# direction → (module, query position, key position, q, kv)
DIRECTIONS = {
    ("temporal", "spatial"): (
        "t2s_cross",
        "clip_time_pos",
        "vmae_time_pos",
        "t2s_q",
        "t2s_kv",
    ),
    ("spatial", "temporal"): (
        "s2t_cross",
        "vmae_space_pos",
        "clip_space_pos",
        "s2t_q",
        "s2t_kv",
    ),
}


def cast_prefix(checkpoint):
    return checkpoint.find_prefix(
        ("", "module.", "backbone.", "model."), "clip_conv1.weight", "official CAST"
    )


def official_cast_num_classes(checkpoint):
    """`int` for one head, `{"verb": V, "noun": N}` for the EK100 heads."""
    prefix = cast_prefix(checkpoint)
    if f"{prefix}head_noun.weight" in checkpoint:
        return {
            "verb": checkpoint.shape(f"{prefix}head_verb.weight")[0],
            "noun": checkpoint.shape(f"{prefix}head_noun.weight")[0],
        }
    return checkpoint.shape(f"{prefix}head.weight")[0]


def official_cast_backbone_config(checkpoint, num_heads=None, drop_path_rate=0.2):
    """`CA2STBackbone` arguments read off an official CAST checkpoint.

    Sizes come from the shapes. The number of heads is not stored: by default
    64 channels per head (ViT-B: 12), which the B-CA modules share as the
    reference does.
    """
    p = cast_prefix(checkpoint)
    width, _, _, patch = checkpoint.shape(f"{p}clip_conv1.weight")
    positions = checkpoint.shape(f"{p}clip_positional_embedding")[0]
    grid = round((positions - 1) ** 0.5)
    tubelet = checkpoint.shape(f"{p}patch_embed.proj.weight")[2]
    vmae_patch = checkpoint.shape(f"{p}patch_embed.proj.weight")[3]
    depth = count_blocks(checkpoint, p + "blocks.{}.clip_ln_1.weight")
    if not depth or grid * grid + 1 != positions:
        raise ConversionError(f"{checkpoint.origin} is not an official CAST model.")
    steps = checkpoint.shape(f"{p}blocks.0.t2s_cross.clip_time_pos")[0]
    bottleneck = checkpoint.shape(f"{p}blocks.0.cross_s_down.weight")[0]
    adapter = checkpoint.shape(f"{p}blocks.0.S_Adapter.D_fc1.weight")[0]
    heads = num_heads or width // 64
    image_size = grid * patch
    common = {
        "image_size": image_size,
        "num_frames": steps * tubelet,
        "hidden_dim": width,
        "num_layers": depth,
        "num_heads": heads,
    }
    spatial = {
        **common,
        "patch_size": patch,
        "frame_offset": 1,
        "frame_stride": tubelet,
        "intermediate_dim": checkpoint.shape(f"{p}blocks.0.clip_mlp.c_fc.weight")[0],
        "activation": "quick_gelu",
        "layer_norm_epsilon": 1e-5,
    }
    temporal = {
        **common,
        "patch_size": vmae_patch,
        "tubelet_size": tubelet,
        "intermediate_dim": checkpoint.shape(f"{p}blocks.0.mlp.fc1.weight")[0],
        "activation": "gelu",
        "layer_norm_epsilon": 1e-6,
    }
    return {
        "experts": {
            "spatial": {"class_name": "CLIPVisionEncoder", "config": spatial},
            "temporal": {"class_name": "VideoMAEEncoder", "config": temporal},
        },
        "pairs": [
            {
                "experts": ["spatial", "temporal"],
                "windows": {
                    "temporal_to_spatial": "time",
                    "spatial_to_temporal": "space",
                },
                "layers": None,
                "position_embedding": "learned",
            }
        ],
        "bottleneck_ratio": bottleneck / width,
        "adapter_ratio": adapter / width,
        "fusion": "cross_attention",
        "cross_attention_placement": "after_adapter",
        "cross_attention_heads": heads,
        "drop_path_rate": drop_path_rate,
    }


def _direction_layer(exchange, source, target):
    for spec, layer in zip(exchange.directions, exchange.direction_layers, strict=True):
        if (spec["source"], spec["target"]) == (source, target):
            return layer
    raise ConversionError(
        f"The model has no {source}→{target} cross-attention in {exchange.name}."
    )


def load_official_cast_weights(model, checkpoint):
    """Copy an official CAST checkpoint into a built `CAST` classifier."""
    p = cast_prefix(checkpoint)
    loader = WeightLoader(checkpoint)
    encoder = model.backbone.encoder
    spatial = encoder.experts["spatial"]
    temporal = encoder.experts["temporal"]

    # Spatial expert (CLIP).
    loader.assign(spatial.patch_embedding.kernel, f"{p}clip_conv1.weight", "conv2d")
    loader.assign(spatial.class_embedding, f"{p}clip_class_embedding")
    loader.assign(spatial.position_embedding, f"{p}clip_positional_embedding")
    loader.layer_norm(spatial.pre_layernorm, f"{p}clip_ln_pre")
    loader.layer_norm(spatial.post_layernorm, f"{p}clip_ln_post")
    # Temporal expert (VideoMAE).
    loader.conv(temporal.patch_embedding, f"{p}patch_embed.proj")
    loader.layer_norm(temporal.fc_norm, f"{p}vmae_fc_norm")

    for i in range(encoder.depth):
        block = f"{p}blocks.{i}."
        load_openai_block(
            loader,
            spatial.blocks[i],
            block,
            attention_name="clip_attn",
            names=CLIP_BLOCK_NAMES,
        )
        load_timm_block(loader, temporal.blocks[i], block)
        for name, (group, expert) in ADAPTERS.items():
            adapter = getattr(encoder, group)[expert][i]
            loader.dense(adapter.down, f"{block}{name}.D_fc1")
            loader.dense(adapter.up, f"{block}{name}.D_fc2")
        exchange = encoder.exchanges[i]
        if exchange is None:
            raise ConversionError(
                f"The model has no cross-attention in block {i}; the checkpoint has."
            )
        for short, expert in (("s", "spatial"), ("t", "temporal")):
            projection = exchange.projections[expert]
            loader.dense(projection.down, f"{block}cross_{short}_down")
            loader.layer_norm(projection.layer_norm, f"{block}ln_{short}_cross")
            loader.dense(projection.up, f"{block}cross_{short}_up")
        for (source, target), names in DIRECTIONS.items():
            module, query_position, key_position, query, key_value = names
            layer = _direction_layer(exchange, source, target)
            base = f"{block}{module}."
            loader.assign(layer.query_position, base + query_position)
            loader.assign(layer.key_position, base + key_position)
            loader.assign(layer.query.kernel, f"{base}{query}.weight", "dense")
            loader.assign(layer.query.bias, f"{base}{query}_bias")
            loader.assign(layer.key_value.kernel, f"{base}{key_value}.weight", "dense")
            loader.assign(layer.key_value.bias, f"{base}{key_value}_bias")
            loader.dense(layer.out_proj, f"{base}t2s_proj")

    if "logits" in model.heads:
        loader.dense(model.last_adapters["spatial"].down, f"{p}noun_last_Adapter.D_fc1")
        loader.dense(model.last_adapters["spatial"].up, f"{p}noun_last_Adapter.D_fc2")
        loader.dense(
            model.last_adapters["temporal"].down, f"{p}verb_last_Adapter.D_fc1"
        )
        loader.dense(model.last_adapters["temporal"].up, f"{p}verb_last_Adapter.D_fc2")
        loader.dense(model.heads["logits"], f"{p}head")
    else:
        for head in model.heads:
            loader.dense(model.heads[head], f"{p}head_{head}")
    loader.check_all_used(p, ignore=("pos_embed",))
    return model


def convert_official_cast(
    source, num_heads=None, backbone_config=None, drop_path_rate=0.2
):
    """Convert an official fine-tuned CAST checkpoint into a `CAST` classifier.

    Args:
        source: the checkpoint (`.pth`/`.pt`, e.g. DeepSpeed's
            `mp_rank_00_model_states.pt`), read with `torch.load(weights_only=
            True)`; the state dict may sit under `module` or `model`. Or a
            `Checkpoint`.
        num_heads: attention heads (not stored; default 64 channels per head).
        backbone_config: optional `CA2STBackbone` arguments (a preset's) to use
            instead of the ones read off the checkpoint.
        drop_path_rate: drop-path rate for further fine-tuning.

    Returns:
        The `CAST` model; EK100 checkpoints (`head_noun`/`head_verb`) give the
        two-head model returning `{"verb": ..., "noun": ...}`. To keep it as a
        verified preset directory, use `keras_ca2st.presets.
        convert_official_cast_preset` (or `ca2st convert official-cast`).

    Example:
    ```python
    model = convert_official_cast("k400_checkpoint.pth")
    model.predict({"video": clips})  # (batch, 400)
    ```
    """
    checkpoint = as_checkpoint(source)
    config = backbone_config or official_cast_backbone_config(
        checkpoint, num_heads=num_heads, drop_path_rate=drop_path_rate
    )
    model = CAST(
        CA2STBackbone(**config), num_classes=official_cast_num_classes(checkpoint)
    )
    return load_official_cast_weights(model, checkpoint)
