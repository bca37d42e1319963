"""Transformer-block layouts shared by the expert converters.

Three spellings of one pre-norm ViT block reach `ViTBlock`:
- Hugging Face ViT style (VideoMAE, AST): `encoder.layer.i.attention.attention.
  {query,key,value}`, `attention.output.dense`, `layernorm_before`,
  `layernorm_after`, `intermediate.dense`, `output.dense` — or, as transformers 5
  names AST's in memory, `layers.i.attention.{q,k,v,o}_proj`, `mlp.fc1/fc2`;
- timm style (official VideoMAE and AST): `blocks.i.{norm1, attn.qkv, attn.proj,
  norm2, mlp.fc1, mlp.fc2}` with q, k, v stacked in the rows of `attn.qkv`;
- OpenAI CLIP style: `transformer.resblocks.i.{ln_1, attn.in_proj_weight,
  attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}`.

A key bias shifts every score of a query by the same amount, so softmax ignores
it: experts without a key bias (VideoMAE) drop one exactly.
"""

from keras_ca2st.conversion.errors import ConversionError

ACTIVATIONS = {"gelu": "gelu", "quick_gelu": "quick_gelu"}


def count_blocks(checkpoint, template):
    """How many `template.format(i)` keys exist for i = 0, 1, …."""
    count = 0
    while template.format(count) in checkpoint:
        count += 1
    return count


def activation_name(name, origin):
    if name not in ACTIVATIONS:
        raise ConversionError(
            f"{origin} uses the activation {name!r}; the experts support "
            f"{sorted(ACTIVATIONS)}."
        )
    return ACTIVATIONS[name]


def _attention_biases(loader, attention, query_bias, key_bias, value_bias):
    """Assign q/k/v biases, each `(key, array)` or None (not in the checkpoint)."""
    for layer, bias in zip(
        (attention.query, attention.key, attention.value),
        (query_bias, key_bias, value_bias),
        strict=True,
    ):
        if layer.bias is None:
            continue  # a key bias the expert does not have: softmax ignores it
        if bias is None:
            loader.assign_zeros(layer.bias)
        else:
            loader.assign_array(layer.bias, bias[1], bias[0])


# Two spellings of a Hugging Face ViT-style block: as saved in files
# (transformers 4 and 5), and as transformers 5 names them in memory for the
# ViT family (AST), which is what `torch.save(model.state_dict())` writes.
HF_VIT_SPELLINGS = {
    "saved": {
        "block": "encoder.layer.{}.",
        "query": "attention.attention.query",
        "key": "attention.attention.key",
        "value": "attention.attention.value",
        "out": "attention.output.dense",
        "fc1": "intermediate.dense",
        "fc2": "output.dense",
    },
    "transformers5": {
        "block": "layers.{}.",
        "query": "attention.q_proj",
        "key": "attention.k_proj",
        "value": "attention.v_proj",
        "out": "attention.o_proj",
        "fc1": "mlp.fc1",
        "fc2": "mlp.fc2",
    },
}


def hf_vit_spelling(checkpoint, prefix):
    """The `HF_VIT_SPELLINGS` entry the checkpoint's blocks use."""
    for spelling in HF_VIT_SPELLINGS.values():
        if (
            prefix + spelling["block"].format(0) + "layernorm_before.weight"
            in checkpoint
        ):
            return spelling
    raise ConversionError(
        f"{checkpoint.origin} has no transformer blocks under {prefix!r} "
        f"({prefix}encoder.layer.0.* or {prefix}layers.0.*)."
    )


def load_hf_vit_block(loader, block, prefix, index, spelling):
    """A Hugging Face ViT-style block (VideoMAE, AST), in either spelling."""
    attention = block.attention
    base = prefix + spelling["block"].format(index)
    for name, layer in (
        ("query", attention.query),
        ("key", attention.key),
        ("value", attention.value),
    ):
        loader.assign(layer.kernel, f"{base}{spelling[name]}.weight", "dense")
    # VideoMAE files store q_bias / v_bias; transformers 5 calls them
    # query.bias / value.bias in memory.
    biases = []
    for name, legacy in (("query", "q_bias"), ("key", None), ("value", "v_bias")):
        keys = [f"{base}{spelling[name]}.bias"]
        if legacy:
            keys.append(f"{base}attention.attention.{legacy}")
        found = next((k for k in keys if loader.has(k)), None)
        biases.append((found, loader.array(found)) if found else None)
    _attention_biases(loader, attention, *biases)
    loader.dense(attention.out_proj, f"{base}{spelling['out']}")
    loader.layer_norm(block.layer_norm1, f"{base}layernorm_before")
    loader.layer_norm(block.layer_norm2, f"{base}layernorm_after")
    loader.dense(block.mlp.fc1, f"{base}{spelling['fc1']}")
    loader.dense(block.mlp.fc2, f"{base}{spelling['fc2']}")


def load_timm_block(loader, block, prefix):
    """A timm-style block (`blocks.i.`): fused `attn.qkv`, optional q/v biases."""
    attention = block.attention
    width = block.hidden_dim
    weights = loader.packed_rows(f"{prefix}attn.qkv.weight", 3, width)
    for layer, weight in zip(
        (attention.query, attention.key, attention.value), weights, strict=True
    ):
        loader.assign_array(layer.kernel, weight, f"{prefix}attn.qkv.weight", "dense")
    if loader.has(f"{prefix}attn.qkv.bias"):
        key = f"{prefix}attn.qkv.bias"
        biases = [(key, b) for b in loader.packed_rows(key, 3, width)]
    else:  # VideoMAE: q_bias and v_bias, zero key bias
        biases = [
            (k, loader.array(k)) if loader.has(k) else None
            for k in (f"{prefix}attn.q_bias", None, f"{prefix}attn.v_bias")
        ]
    _attention_biases(loader, attention, *biases)
    loader.dense(attention.out_proj, f"{prefix}attn.proj")
    loader.layer_norm(block.layer_norm1, f"{prefix}norm1")
    loader.layer_norm(block.layer_norm2, f"{prefix}norm2")
    loader.dense(block.mlp.fc1, f"{prefix}mlp.fc1")
    loader.dense(block.mlp.fc2, f"{prefix}mlp.fc2")


def load_openai_block(loader, block, prefix, attention_name="attn", names=None):
    """An OpenAI CLIP residual block (`transformer.resblocks.i.`).

    `names` renames the sublayers for layouts that prefix them (the official
    CAST checkpoint writes `clip_ln_1`, `clip_attn`, `clip_mlp`, …).
    """
    names = names or {"ln_1": "ln_1", "ln_2": "ln_2", "mlp": "mlp"}
    attention = block.attention
    width = block.hidden_dim
    key = f"{prefix}{attention_name}.in_proj_weight"
    for layer, weight in zip(
        (attention.query, attention.key, attention.value),
        loader.packed_rows(key, 3, width),
        strict=True,
    ):
        loader.assign_array(layer.kernel, weight, key, "dense")
    key = f"{prefix}{attention_name}.in_proj_bias"
    _attention_biases(
        loader, attention, *[(key, b) for b in loader.packed_rows(key, 3, width)]
    )
    loader.dense(attention.out_proj, f"{prefix}{attention_name}.out_proj")
    loader.layer_norm(block.layer_norm1, f"{prefix}{names['ln_1']}")
    loader.layer_norm(block.layer_norm2, f"{prefix}{names['ln_2']}")
    loader.dense(block.mlp.fc1, f"{prefix}{names['mlp']}.c_fc")
    loader.dense(block.mlp.fc2, f"{prefix}{names['mlp']}.c_proj")


def check_architecture(expert, source_config, origin):
    """Raise if an expert built elsewhere (a preset) does not fit the checkpoint.

    Only what the checkpoint states is compared; layer-norm epsilon is left to the
    expert (the Hugging Face configs of VideoMAE and AST say 1e-12 where the
    original models use 1e-6).
    """
    config = expert.get_config()
    mismatches = [
        f"{key} {value!r} (checkpoint) vs {config[key]!r} (model)"
        for key, value in source_config.items()
        if key in config
        and key != "layer_norm_epsilon"
        and _normalise(config[key]) != _normalise(value)
    ]
    if mismatches:
        raise ConversionError(
            f"{origin} does not fit the {type(expert).__name__} "
            f"{expert.name!r}: {'; '.join(mismatches)}."
        )


def _normalise(value):
    return list(value) if isinstance(value, tuple) else value
