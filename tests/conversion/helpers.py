"""Real checkpoints for the conversion tests, built here with transformers / torch.

- tiny random Hugging Face models, saved with `save_pretrained`;
- the original layouts (OpenAI CLIP, official VideoMAE and AST) written from a
  Hugging Face model's weights by renaming, so the Hugging Face model is the
  reference for them too;
- a TorchScript archive holding a state dict (as OpenAI's `ViT-B-16.pt`);
- a Hugging Face hub cache on disk, in the layout `huggingface_hub` itself
  writes (`models--org--name/{blobs, refs/main, snapshots/<commit>}`).
"""

import hashlib
import os

import numpy as np
import torch
from torch import nn

WIDTH, HEADS, DEPTH, MLP = 32, 2, 2, 64
IMAGE, FRAMES = 32, 4
MEL_BINS, AUDIO_FRAMES = 32, 86  # AST grid 2 × 8


def seeded(seed):
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def tiny_clip_vision(seed=0):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    seeded(seed)
    config = CLIPVisionConfig(
        hidden_size=WIDTH,
        intermediate_size=MLP,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        image_size=IMAGE,
        patch_size=16,
    )
    return _randomize(CLIPVisionModel(config).eval())


def tiny_clip_model(seed=0):
    from transformers import CLIPConfig, CLIPModel

    seeded(seed)
    vision = dict(
        hidden_size=WIDTH,
        intermediate_size=MLP,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        image_size=IMAGE,
        patch_size=16,
    )
    text = dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=49408,
    )
    config = CLIPConfig(vision_config=vision, text_config=text, projection_dim=16)
    return _randomize(CLIPModel(config).eval())


def videomae_config(**kwargs):
    from transformers import VideoMAEConfig

    return VideoMAEConfig(
        hidden_size=WIDTH,
        intermediate_size=MLP,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        image_size=IMAGE,
        patch_size=16,
        num_frames=FRAMES,
        tubelet_size=2,
        num_labels=3,
        decoder_hidden_size=16,
        decoder_intermediate_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        **kwargs,
    )


def tiny_videomae(kind="classification", seed=0, eps=1e-12):
    from transformers import (
        VideoMAEForPreTraining,
        VideoMAEForVideoClassification,
        VideoMAEModel,
    )

    seeded(seed)
    if kind == "classification":
        config = videomae_config(use_mean_pooling=True, layer_norm_eps=eps)
        model = VideoMAEForVideoClassification(config)
    elif kind == "pretraining":
        config = videomae_config(use_mean_pooling=False, layer_norm_eps=eps)
        model = VideoMAEForPreTraining(config)
    else:
        model = VideoMAEModel(
            videomae_config(use_mean_pooling=True, layer_norm_eps=eps)
        )
    return _randomize(model.eval())


def tiny_ast(max_length=AUDIO_FRAMES, seed=0, eps=1e-12):
    from transformers import ASTConfig, ASTForAudioClassification

    seeded(seed)
    config = ASTConfig(
        hidden_size=WIDTH,
        intermediate_size=MLP,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        num_mel_bins=MEL_BINS,
        max_length=max_length,
        num_labels=3,
        layer_norm_eps=eps,
    )
    return _randomize(ASTForAudioClassification(config).eval())


def _randomize(model, scale=0.1):
    """Give every weight a random value: default inits leave biases and layer
    norms at 0 / 1, which would hide a swapped weight and bias or gamma and beta."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn_like(parameter) * scale
            if name.endswith("weight") and parameter.ndim == 1:
                parameter.copy_(1.0 + noise)  # layer-norm scales near 1
            else:
                parameter.add_(noise)
    return model


def state_dict(model):
    """The in-memory state dict (transformers 5 renames some keys there)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def saved_state_dict(model, folder):
    """The tensors as `save_pretrained` writes them to `folder`."""
    from safetensors.torch import load_file

    model.save_pretrained(folder)
    return load_file(os.path.join(folder, "model.safetensors"))


# --- original layouts, renamed from Hugging Face weights ---------------------


def openai_clip_state_dict(hf_vision_state, dtype=torch.float16):
    """OpenAI CLIP (`visual.*` plus a text tower) from a CLIPVisionModel."""
    hf = {k.removeprefix("vision_model."): v for k, v in hf_vision_state.items()}
    out = {
        "visual.conv1.weight": hf["embeddings.patch_embedding.weight"],
        "visual.class_embedding": hf["embeddings.class_embedding"],
        "visual.positional_embedding": hf["embeddings.position_embedding.weight"],
        "visual.proj": torch.randn(WIDTH, 16),
        # a sliver of the text tower, which the converter must skip
        "token_embedding.weight": torch.randn(10, 16),
        "ln_final.weight": torch.ones(16),
        "text_projection": torch.randn(16, 16),
        "logit_scale": torch.tensor(4.6),
    }
    for name in ("weight", "bias"):
        out[f"visual.ln_pre.{name}"] = hf[f"pre_layrnorm.{name}"]
        out[f"visual.ln_post.{name}"] = hf[f"post_layernorm.{name}"]
    for i in range(DEPTH):
        src, dst = f"encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        for name in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{name}"] = torch.cat(
                [hf[f"{src}self_attn.{p}_proj.{name}"] for p in "qkv"]
            )
            out[f"{dst}attn.out_proj.{name}"] = hf[f"{src}self_attn.out_proj.{name}"]
            out[f"{dst}ln_1.{name}"] = hf[f"{src}layer_norm1.{name}"]
            out[f"{dst}ln_2.{name}"] = hf[f"{src}layer_norm2.{name}"]
            out[f"{dst}mlp.c_fc.{name}"] = hf[f"{src}mlp.fc1.{name}"]
            out[f"{dst}mlp.c_proj.{name}"] = hf[f"{src}mlp.fc2.{name}"]
    return {k: v.to(dtype) for k, v in out.items()}


def official_videomae_state_dict(hf_state, prefix=""):
    """Official VideoMAE (timm blocks, fused qkv, q_bias/v_bias) from HF weights."""
    hf = {k.removeprefix("videomae."): v for k, v in hf_state.items()}
    out = {}
    for name in ("weight", "bias"):
        out[f"patch_embed.proj.{name}"] = hf[
            f"embeddings.patch_embeddings.projection.{name}"
        ]
    for i in range(DEPTH):
        src, dst = f"encoder.layer.{i}.", f"blocks.{i}."
        attention = f"{src}attention.attention."
        out[f"{dst}attn.qkv.weight"] = torch.cat(
            [hf[f"{attention}{p}.weight"] for p in ("query", "key", "value")]
        )
        # transformers 5 holds q_bias / v_bias as query.bias / value.bias.
        out[f"{dst}attn.q_bias"] = hf.get(
            f"{attention}query.bias", hf.get(f"{attention}q_bias")
        )
        out[f"{dst}attn.v_bias"] = hf.get(
            f"{attention}value.bias", hf.get(f"{attention}v_bias")
        )
        for name in ("weight", "bias"):
            out[f"{dst}attn.proj.{name}"] = hf[f"{src}attention.output.dense.{name}"]
            out[f"{dst}norm1.{name}"] = hf[f"{src}layernorm_before.{name}"]
            out[f"{dst}norm2.{name}"] = hf[f"{src}layernorm_after.{name}"]
            out[f"{dst}mlp.fc1.{name}"] = hf[f"{src}intermediate.dense.{name}"]
            out[f"{dst}mlp.fc2.{name}"] = hf[f"{src}output.dense.{name}"]
    for name in ("weight", "bias"):
        if f"fc_norm.{name}" in hf:
            out[f"fc_norm.{name}"] = hf[f"fc_norm.{name}"]
        if f"layernorm.{name}" in hf:
            out[f"norm.{name}"] = hf[f"layernorm.{name}"]
        if f"classifier.{name}" in hf:
            out[f"head.{name}"] = hf[f"classifier.{name}"]
    return {prefix + k: v for k, v in out.items()}


def official_ast_state_dict(hf_state):
    """The AudioSet `.pth` layout (`module.v.*`, `module.mlp_head.*`) from HF."""
    hf = {
        k.removeprefix("audio_spectrogram_transformer."): v for k, v in hf_state.items()
    }
    v = "module.v."
    out = {
        f"{v}cls_token": hf["embeddings.cls_token"],
        f"{v}dist_token": hf["embeddings.distillation_token"],
        f"{v}pos_embed": hf["embeddings.position_embeddings"],
        f"{v}head.weight": torch.randn(3, WIDTH),
        f"{v}head_dist.weight": torch.randn(3, WIDTH),
    }
    for name in ("weight", "bias"):
        out[f"{v}patch_embed.proj.{name}"] = hf[
            f"embeddings.patch_embeddings.projection.{name}"
        ]
        out[f"{v}norm.{name}"] = hf[f"layernorm.{name}"]
        out[f"module.mlp_head.0.{name}"] = hf[f"classifier.layernorm.{name}"]
        out[f"module.mlp_head.1.{name}"] = hf[f"classifier.dense.{name}"]
    for i in range(DEPTH):
        src, dst = f"encoder.layer.{i}.", f"{v}blocks.{i}."
        attention = f"{src}attention.attention."
        for name in ("weight", "bias"):
            out[f"{dst}attn.qkv.{name}"] = torch.cat(
                [hf[f"{attention}{p}.{name}"] for p in ("query", "key", "value")]
            )
            out[f"{dst}attn.proj.{name}"] = hf[f"{src}attention.output.dense.{name}"]
            out[f"{dst}norm1.{name}"] = hf[f"{src}layernorm_before.{name}"]
            out[f"{dst}norm2.{name}"] = hf[f"{src}layernorm_after.{name}"]
            out[f"{dst}mlp.fc1.{name}"] = hf[f"{src}intermediate.dense.{name}"]
            out[f"{dst}mlp.fc2.{name}"] = hf[f"{src}output.dense.{name}"]
    return out


# --- TorchScript --------------------------------------------------------------


class ScriptedWeights(nn.Module):
    """A module that only carries parameters, for `torch.jit.script`."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_torchscript(tensors, path):
    """A TorchScript archive whose `state_dict()` is `tensors` (OpenAI-style)."""
    root = ScriptedWeights()
    for key, value in tensors.items():
        *path_parts, leaf = key.split(".")
        module = root
        for part in path_parts:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
    torch.jit.save(torch.jit.script(root), path)


# --- a Hugging Face hub cache on disk ----------------------------------------


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def put_in_hf_cache(hub_dir, repo_id, folder, commit=None):
    """Store `folder`'s files as revision `main` of `repo_id` in a hub cache.

    The layout `hf_hub_download` writes: content-addressed `blobs/<etag>` (sha256
    for weight files stored with LFS, git's blob sha1 for small files),
    `snapshots/<commit>/<name>` symlinks into the blobs, and `refs/main`
    holding the commit hash.
    """
    storage = os.path.join(hub_dir, "models--" + repo_id.replace("/", "--"))
    commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = os.path.join(storage, "snapshots", commit)
    os.makedirs(os.path.join(storage, "blobs"), exist_ok=True)
    os.makedirs(os.path.join(storage, "refs"), exist_ok=True)
    os.makedirs(snapshot, exist_ok=True)
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as file:
            data = file.read()
        lfs = not name.endswith(".json")
        etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)
        with open(os.path.join(storage, "blobs", etag), "wb") as file:
            file.write(data)
        os.symlink(
            os.path.join("..", "..", "blobs", etag), os.path.join(snapshot, name)
        )
    with open(os.path.join(storage, "refs", "main"), "w") as file:
        file.write(commit)
    return commit


# --- inputs and outputs ---------------------------------------------------------


def video_batch(rng, batch=2, frames=FRAMES):
    return rng.standard_normal((batch, frames, IMAGE, IMAGE, 3)).astype("float32")


def channels_first(video):
    """`(B, T, H, W, 3)` → `(B, T, 3, H, W)` torch (transformers' layout)."""
    return torch.from_numpy(np.ascontiguousarray(video.transpose(0, 1, 4, 2, 3)))


def max_error(actual, expected):
    from keras import ops

    actual = np.asarray(ops.convert_to_numpy(actual))
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.abs(actual - expected).max())
