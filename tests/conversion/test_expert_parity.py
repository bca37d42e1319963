"""Converted experts reproduce the models they come from (fp32, max |error| ≤ 1e-4).

Each case writes a real checkpoint (a tiny random transformers model saved with
`save_pretrained`, or the original layout renamed from it), converts it by
reading the raw file, and compares hidden states and pooled features with the
transformers model. Run with `-s` to see the measured errors (`PARITY` lines).
"""

import argparse
import copy
import os

import numpy as np
import pytest
import torch

from keras_ca2st.conversion import (
    convert_ast,
    convert_clip,
    convert_videomae,
    read_checkpoint,
)
from tests.conversion import helpers as h
from tests.test_case import BACKEND

TOLERANCE = 1e-4


def report(case, **errors):
    text = " ".join(f"{k}={v:.2e}" for k, v in errors.items())
    print(f"\nPARITY backend={BACKEND} {case} {text}")
    for name, value in errors.items():
        assert value <= TOLERANCE, (case, name, value)


def rounded_to_half(model):
    """A copy whose weights are exactly representable in float16."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    return model


# --- CLIP ----------------------------------------------------------------------


def clip_reference(vision, video, frame_offset=1, frame_stride=2):
    """HF hidden states of the frames the expert sees, and the pooled feature:
    post_layernorm of the frame-averaged CLS (pooler_output for one frame)."""
    frames = video[:, frame_offset::frame_stride]
    batch, steps = frames.shape[:2]
    pixels = h.channels_first(frames).reshape(batch * steps, 3, h.IMAGE, h.IMAGE)
    with torch.no_grad():
        out = vision(pixel_values=pixels)
        cls = out.last_hidden_state[:, 0].reshape(batch, steps, -1).mean(1)
        pooled = vision.post_layernorm(cls)
    return out.last_hidden_state, pooled, out.pooler_output


@pytest.fixture(scope="module")
def clip_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    vision = h.tiny_clip_vision(seed=1)
    vision.save_pretrained(root / "hf_vision")  # transformers 5: no prefix
    full = h.tiny_clip_model(seed=2)
    full.save_pretrained(root / "hf_clip")  # CLIPModel: vision_model. + text
    # transformers-4 style `.bin` with the vision_model. prefix.
    legacy = root / "hf_legacy_bin"
    legacy.mkdir()
    torch.save(
        {f"vision_model.{k}": v for k, v in h.state_dict(vision).items()},
        legacy / "pytorch_model.bin",
    )
    (legacy / "config.json").write_text((root / "hf_vision/config.json").read_text())
    # OpenAI layouts: float16, packed in_proj, text tower beside the visual one.
    half = rounded_to_half(vision)
    openai = h.openai_clip_state_dict(h.state_dict(half))
    h.save_torchscript(openai, str(root / "ViT-tiny.pt"))
    torch.save(openai, root / "openai_state_dict.pth")
    return {
        "root": root,
        "vision": vision,
        "full": full.vision_model,
        "half": half,
    }


CLIP_CASES = {
    "hf_clip_vision_model": ("hf_vision", "vision", {}),
    "hf_clip_model": ("hf_clip", "full", {}),
    "hf_legacy_bin": ("hf_legacy_bin", "vision", {}),
    "openai_torchscript_fp16": (
        "ViT-tiny.pt",
        "half",
        {"allow_torchscript": True, "num_heads": h.HEADS},
    ),
    "openai_state_dict_fp16": ("openai_state_dict.pth", "half", {"num_heads": 2}),
}


@pytest.mark.parametrize("case", CLIP_CASES)
def test_clip_parity(case, clip_checkpoints):
    path, reference, kwargs = CLIP_CASES[case]
    source = clip_checkpoints["root"] / path
    expert = convert_clip(source, num_frames=h.FRAMES, **kwargs)
    video = h.video_batch(np.random.default_rng(3))
    ours = expert(video)
    hidden, pooled, _ = clip_reference(clip_checkpoints[reference], video)
    report(
        f"clip/{case}",
        hidden=h.max_error(ours["hidden_states"], hidden),
        pooled=h.max_error(ours["pooled"], pooled),
    )


def test_clip_single_frame_matches_pooler_output(clip_checkpoints):
    expert = convert_clip(
        clip_checkpoints["root"] / "hf_vision",
        num_frames=1,
        frame_offset=0,
        frame_stride=1,
    )
    video = h.video_batch(np.random.default_rng(4), frames=1)
    _, _, pooler = clip_reference(clip_checkpoints["vision"], video, 0, 1)
    report("clip/pooler_output", pooled=h.max_error(expert(video)["pooled"], pooler))


# --- VideoMAE --------------------------------------------------------------------


@pytest.fixture(scope="module")
def videomae_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("videomae")
    classifier = h.tiny_videomae("classification", seed=5)
    classifier.save_pretrained(root / "hf_classification")
    # transformers 5 keeps q_bias/v_bias as query.bias/value.bias in memory.
    torch.save(h.state_dict(classifier), root / "v5_state_dict.bin")
    pretraining = h.tiny_videomae("pretraining", seed=6)
    pretraining.save_pretrained(root / "hf_pretraining")
    # Official layouts come from models with the original epsilon 1e-6.
    official = h.tiny_videomae("classification", seed=7, eps=1e-6)
    torch.save(
        {"module": h.official_videomae_state_dict(h.state_dict(official))},
        root / "official_finetuned.pth",
    )
    official_pt = h.tiny_videomae("pretraining", seed=8, eps=1e-6)
    encoder = h.official_videomae_state_dict(h.state_dict(official_pt), "encoder.")
    decoder = {
        "decoder.blocks.0.norm1.weight": torch.ones(16),
        "decoder.head.weight": torch.randn(1536, 16),
        "encoder_to_decoder.weight": torch.randn(16, h.WIDTH),
        "mask_token": torch.zeros(1, 1, 16),
    }
    torch.save(
        {"model": {**encoder, **decoder}, "epoch": 799, "args": argparse.Namespace()},
        root / "official_pretrain.pth",
    )
    return {
        "root": root,
        "classification": classifier,
        "pretraining": pretraining,
        "official": official,
        "official_pretraining": official_pt,
    }


def videomae_reference(model, video):
    """(last block output, HF last_hidden_state, pooled) of a VideoMAE model."""
    encoder = model.videomae
    with torch.no_grad():
        out = encoder(pixel_values=h.channels_first(video), output_hidden_states=True)
        tokens = out.hidden_states[-1]
        if getattr(model, "fc_norm", None) is not None:
            pooled = model.fc_norm(tokens.mean(1))
        else:
            pooled = encoder.layernorm(tokens.mean(1))
    return tokens, out.last_hidden_state, pooled


VIDEOMAE_CASES = {
    "hf_classification": ("hf_classification", "classification", {}),
    "hf_pretraining": ("hf_pretraining", "pretraining", {}),
    "hf_v5_state_dict": ("v5_state_dict.bin", "classification", {}),
    "official_finetuned": (
        "official_finetuned.pth",
        "official",
        {"num_heads": 2, "image_size": h.IMAGE, "num_frames": h.FRAMES},
    ),
    "official_pretrain": (
        "official_pretrain.pth",
        "official_pretraining",
        {"num_heads": 2, "image_size": h.IMAGE, "num_frames": h.FRAMES},
    ),
}


@pytest.mark.parametrize("case", VIDEOMAE_CASES)
def test_videomae_parity(case, videomae_checkpoints):
    path, reference, kwargs = VIDEOMAE_CASES[case]
    root = videomae_checkpoints["root"]
    source = root / path
    if case == "hf_v5_state_dict":  # a bare state dict: its config comes apart
        source = read_checkpoint(source, config=root / "hf_classification/config.json")
    expert = convert_videomae(source, **kwargs)
    video = h.video_batch(np.random.default_rng(9))
    ours = expert(video)
    tokens, last_hidden, pooled = videomae_reference(
        videomae_checkpoints[reference], video
    )
    errors = {
        "hidden": h.max_error(ours["hidden_states"], tokens),
        "pooled": h.max_error(ours["pooled"], pooled),
    }
    if reference.endswith("pretraining"):  # HF normalises every token there
        errors["normed_hidden"] = h.max_error(
            expert.fc_norm(ours["hidden_states"]), last_hidden
        )
    report(f"videomae/{case}", **errors)


# --- AST -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ast_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ast")
    classifier = h.tiny_ast(seed=10)
    classifier.save_pretrained(root / "hf_classification")
    classifier.audio_spectrogram_transformer.save_pretrained(root / "hf_model")
    # transformers 5 spells AST's blocks layers.i.attention.q_proj, ... in memory.
    torch.save(h.state_dict(classifier), root / "v5_state_dict.bin")
    official = h.tiny_ast(seed=11, eps=1e-6)
    saved = h.saved_state_dict(official, root / "official_hf")
    torch.save(h.official_ast_state_dict(saved), root / "audioset.pth")
    return {"root": root, "classification": classifier, "official": official}


def ast_reference(model, audio):
    with torch.no_grad():
        out = model.audio_spectrogram_transformer(torch.from_numpy(audio))
    return out.last_hidden_state, out.pooler_output


AST_CASES = {
    "hf_classification": ("hf_classification", {}),
    "hf_model": ("hf_model", {}),
    "hf_v5_state_dict": ("v5_state_dict.bin", {}),
    "official_audioset": (
        "audioset.pth",
        {"num_heads": 2, "frequency_bins": h.MEL_BINS, "num_time_frames": 86},
    ),
}


@pytest.mark.parametrize("case", AST_CASES)
def test_ast_parity(case, ast_checkpoints):
    path, kwargs = AST_CASES[case]
    root = ast_checkpoints["root"]
    source = root / path
    if case == "hf_v5_state_dict":
        source = read_checkpoint(source, config=root / "hf_model/config.json")
    expert = convert_ast(source, **kwargs)
    audio = (
        np.random.default_rng(12)
        .standard_normal((2, h.AUDIO_FRAMES, h.MEL_BINS))
        .astype("float32")
    )
    ours = expert(audio)
    model = ast_checkpoints["official" if "official" in case else "classification"]
    last_hidden, pooled = ast_reference(model, audio)
    report(
        f"ast/{case}",
        hidden=h.max_error(expert.layernorm(ours["hidden_states"]), last_hidden),
        pooled=h.max_error(ours["pooled"], pooled),
    )


def test_ast_crops_the_position_grid_for_shorter_audio(ast_checkpoints):
    """Shorter audio uses the centre columns of the stored 2 × 8 grid, as the
    official AST does for AudioSet weights: columns [8//2 - t//2, … + t)."""
    from transformers import ASTForAudioClassification

    short_frames = 46  # 4 time columns of the 8 stored
    expert = convert_ast(
        ast_checkpoints["root"] / "audioset.pth",
        num_heads=2,
        frequency_bins=h.MEL_BINS,
        num_time_frames=short_frames,
    )
    assert tuple(expert.position_grid) == (2, 8) and expert.patch_grid == (2, 4)
    # Reference: an HF model built for the short input, whose position table is
    # the cropped grid of the full one.
    full = ast_checkpoints["official"]
    config = copy.deepcopy(full.config)
    config.max_length = short_frames
    short = ASTForAudioClassification(config).eval()
    state = h.state_dict(full)
    key = "audio_spectrogram_transformer.embeddings.position_embeddings"
    grid = state[key][:, 2:].reshape(1, 2, 8, h.WIDTH)
    start = 8 // 2 - 4 // 2
    cropped = grid[:, :, start : start + 4].reshape(1, 8, h.WIDTH)
    state[key] = torch.cat([state[key][:, :2], cropped], dim=1)
    short.load_state_dict(state)
    audio = (
        np.random.default_rng(13)
        .standard_normal((2, short_frames, h.MEL_BINS))
        .astype("float32")
    )
    ours = expert(audio)
    last_hidden, pooled = ast_reference(short, audio)
    report(
        "ast/official_cropped",
        hidden=h.max_error(expert.layernorm(ours["hidden_states"]), last_hidden),
        pooled=h.max_error(ours["pooled"], pooled),
    )


def test_converted_experts_take_the_source_epsilon(
    clip_checkpoints, videomae_checkpoints, ast_checkpoints
):
    hf_videomae = convert_videomae(videomae_checkpoints["root"] / "hf_classification")
    official = convert_videomae(
        videomae_checkpoints["root"] / "official_finetuned.pth",
        num_heads=2,
        image_size=h.IMAGE,
        num_frames=h.FRAMES,
    )
    hf_ast = convert_ast(ast_checkpoints["root"] / "hf_model")
    assert hf_videomae.layer_norm_epsilon == 1e-12
    assert official.layer_norm_epsilon == 1e-6
    assert hf_ast.layer_norm_epsilon == 1e-12
    assert hf_videomae.num_heads == h.HEADS and hf_videomae.num_frames == h.FRAMES
    assert os.path.isdir(clip_checkpoints["root"])
