import os

import keras
import numpy as np
import pytest

from keras_ca2st import (
    LAVISH,
    ASTEncoder,
    CLIPVisionEncoder,
    LAVISHBackbone,
    VideoMAEEncoder,
)
from keras_ca2st.fusion import LAVISHAdapter
from tests.test_case import (
    BACKEND,
    count_params,
    predict_in_next_backend,
    randomize,
    run_layer_serialization_test,
    run_saved_model_test,
    tiny_experts,
    to_numpy,
)


def tiny_lavish(
    num_latent_tokens=2, kind="clip", num_layers=2, audio_frames=64, **kwargs
):
    """A tiny LAVISH on a shared CLIP, VideoMAE or AST expert (width 32)."""
    if kind == "clip":
        encoder = CLIPVisionEncoder(
            image_size=32,
            patch_size=16,
            num_frames=2,
            frame_offset=0,
            frame_stride=1,
            hidden_dim=32,
            num_layers=num_layers,
            num_heads=2,
            intermediate_dim=64,
        )
    else:
        # VideoMAE: 32×32 frames, tubelet 2; AST: 32 frames × 32 bins per
        # segment (2×2 patches), position grid of 2×8 patches cropped to 2×2.
        name = {"videomae": "temporal", "ast": "audio"}[kind]
        encoder = tiny_experts(
            frames=2, audio_frames=32, depth=num_layers, names=[name]
        )[name]
    return LAVISHBackbone(
        encoder=encoder,
        audio_frames=audio_frames,
        frequency_bins=32,
        num_frames=2,
        image_size=32,
        reduction=4,
        num_latent_tokens=num_latent_tokens,
        **kwargs,
    )


def assert_only_adapters_train(backbone):
    """Four adapters per block train, whatever the expert: their size depends
    on the width alone."""
    adapter = LAVISHAdapter(32, num_latent_tokens=2, reduction=4, groups=2)
    adapter.build()
    expected = 2 * 4 * count_params(adapter.trainable_weights)
    assert count_params(backbone.trainable_weights) == expected


def lavish_inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "video": rng.standard_normal((batch, 2, 32, 32, 3)).astype("float32"),
        "audio": rng.standard_normal((batch, 64, 32)).astype("float32"),
    }


def test_zero_gates_give_the_frozen_backbone_features():
    backbone = tiny_lavish()
    assert_only_adapters_train(backbone)
    inputs = lavish_inputs()
    features = to_numpy(backbone(inputs))
    encoder = backbone.lavish_encoder.encoder
    visual = encoder.embed(inputs["video"])
    audio = backbone.lavish_encoder.embed_audio(inputs["audio"])
    for block in encoder.blocks:
        visual, audio = block(visual), block(audio)
    expected_visual = to_numpy(encoder.post_layernorm(visual[:, 0])).reshape(2, 2, 32)
    expected_audio = to_numpy(encoder.post_layernorm(audio[:, 0])).reshape(2, 2, 32)
    np.testing.assert_allclose(features["visual"], expected_visual, atol=1e-5)
    np.testing.assert_allclose(features["audio"], expected_audio, atol=1e-5)


def expert_alone(encoder, inputs):
    """Per-step features of the frozen expert run alone, from its own `call`."""
    frames = inputs["video"].reshape(-1, 32, 32, 3)
    segments = inputs["audio"].reshape(-1, 32, 32)
    if isinstance(encoder, VideoMAEEncoder):
        # Its clip is one tubelet: each frame, and each segment as a 3-channel
        # image (rows = time), repeated over the tubelet's frames.
        tubelet = encoder.tubelet_size
        images = np.repeat(segments[..., None], 3, axis=-1)
        visual = encoder(np.repeat(frames[:, None], tubelet, axis=1))["pooled"]
        audio = encoder(np.repeat(images[:, None], tubelet, axis=1))["pooled"]
        return visual, audio
    # AST reads each segment natively. A frame is a grey 1-channel "spectrogram"
    # (rows = image rows) for an AST whose position grid is the stored 2×8 grid
    # resampled bilinearly to the frame's 2×2 patches: half-pixel centres put
    # the two columns at 1.5 and 5.5.
    audio = encoder(segments)["pooled"]
    reference = ASTEncoder.from_config(
        {**encoder.get_config(), "position_grid": [2, 2]}
    )
    reference.build()
    stored = to_numpy(encoder.position_embeddings)
    grid = stored[0, 2:].reshape(2, 8, 32)
    resampled = (grid[:, [1, 5]] + grid[:, [2, 6]]) / 2
    for weight, source in zip(reference.weights, encoder.weights, strict=True):
        assert weight.name == source.name
        value = to_numpy(source)
        if weight.name == "position_embeddings":
            value = np.concatenate([stored[:, :2], resampled.reshape(1, 4, 32)], 1)
        weight.assign(value)
    grey = frames.mean(axis=-1)
    visual = reference(np.transpose(grey, (0, 2, 1)))["pooled"]
    return visual, audio


@pytest.mark.parametrize("kind", ["videomae", "ast"])
def test_zero_gates_give_the_expert_alone(kind):
    backbone = tiny_lavish(kind=kind)
    encoder = backbone.lavish_encoder.encoder
    randomize(encoder, scale=0.2)
    inputs = lavish_inputs()
    assert_only_adapters_train(backbone)
    features = to_numpy(backbone(inputs))
    visual, audio = to_numpy(expert_alone(encoder, inputs))
    errors = {
        "visual": np.abs(features["visual"] - visual.reshape(2, 2, 32)).max(),
        "audio": np.abs(features["audio"] - audio.reshape(2, 2, 32)).max(),
    }
    print(f"zero-gate max abs error, {kind}: {errors}")
    assert max(errors.values()) <= 1e-5, errors


def test_audio_reaches_the_visual_stream_once_gates_open():
    backbone = tiny_lavish()
    for adapters in backbone.lavish_encoder.adapters.values():
        for adapter in adapters:
            adapter.gate.assign(0.5)
            adapter.gate_av.assign(0.5)
    inputs = lavish_inputs()
    base = to_numpy(backbone(inputs))["visual"]
    inputs["audio"] = inputs["audio"] * 2.0 + 1.0
    moved = to_numpy(backbone(inputs))["visual"]
    assert not np.allclose(base, moved, atol=1e-4)


def test_vit_b_adapter_parameter_counts():
    adapter = LAVISHAdapter(768, num_latent_tokens=2, reduction=8, groups=2)
    adapter.build()
    assert count_params(adapter.trainable_weights) == 80_066
    model = LAVISH.from_preset("lavish_clip_base", num_classes=29, load_weights=False)
    assert count_params(model.backbone.trainable_weights) == 3_843_168
    assert (
        len([w for w in model.backbone.trainable_weights if "gate_av" in w.path]) == 48
    )
    # Head: concat → Linear(1536, 512) → Linear(512, 29).
    head = 1536 * 512 + 512 + 512 * 29 + 29
    assert count_params(model.trainable_weights) == 3_843_168 + head
    assert tuple(model.output.shape) == (None, 10, 29)
    qa = LAVISH.from_preset("lavish_clip_base_qa", num_classes=5, load_weights=False)
    assert qa.backbone.num_latent_tokens == 16 and qa.backbone.reduction == 4


def test_adapter_serializes_and_gates_start_closed():
    adapter = LAVISHAdapter(16, num_latent_tokens=3, reduction=4, groups=2)
    x = np.random.default_rng(0).standard_normal((2, 5, 16)).astype("float32")
    other = np.random.default_rng(1).standard_normal((2, 7, 16)).astype("float32")
    np.testing.assert_array_equal(to_numpy(adapter(x, other, training=True)), 0.0)
    run_layer_serialization_test(adapter)
    with pytest.raises(ValueError, match="divisible by groups"):
        LAVISHAdapter(16, reduction=5, groups=2)(x, other)


@pytest.mark.parametrize("head", ["classification", "localization"])
def test_heads_fit_and_round_trip(head, tmp_path):
    keras.utils.set_random_seed(0)
    model = LAVISH(tiny_lavish(), num_classes=3, head=head, hidden_units=16)
    inputs = lavish_inputs(batch=4, seed=3)
    labels = np.array([0, 1, 2, 1])
    if head == "localization":
        labels = np.stack([labels, (labels + 1) % 3], axis=1)
    assert model.predict(inputs, verbose=0).shape == (
        (4, 3) if head == "classification" else (4, 2, 3)
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    losses = model.fit(inputs, labels, batch_size=4, epochs=5, verbose=0).history[
        "loss"
    ]
    assert losses[-1] < losses[0], losses
    run_saved_model_test(model, inputs, str(tmp_path), atol=1e-5)


@pytest.mark.parametrize("kind", ["videomae", "ast"])
def test_other_shared_experts_fit_and_round_trip(kind, tmp_path):
    keras.utils.set_random_seed(0)
    model = LAVISH(tiny_lavish(kind=kind, num_layers=1), num_classes=3, hidden_units=16)
    inputs = lavish_inputs(batch=4, seed=3)
    labels = np.array([0, 1, 2, 1])
    # Speed only: three steps run faster eagerly on torch and TensorFlow (no
    # graph tracing), while JAX dispatches op by op unless it compiles the step.
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        jit_compile="auto",
        run_eagerly=BACKEND != "jax",
    )
    losses = model.fit(inputs, labels, batch_size=4, epochs=3, verbose=0).history[
        "loss"
    ]
    assert losses[-1] < losses[0], losses
    restored = run_saved_model_test(model, inputs, str(tmp_path), atol=1e-5)
    assert type(restored.backbone.lavish_encoder.encoder) is type(
        model.backbone.lavish_encoder.encoder
    )


def test_lavish_weights_move_between_backends(tmp_path):
    model = LAVISH(tiny_lavish(), num_classes=3, hidden_units=16)
    randomize(model, scale=0.2)
    inputs = lavish_inputs()
    expected = to_numpy(model.predict(inputs, verbose=0))
    actual = predict_in_next_backend(model, inputs, str(tmp_path))
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_lavish_bad_configurations():
    encoder = CLIPVisionEncoder(
        image_size=32,
        num_frames=2,
        hidden_dim=32,
        num_layers=1,
        num_heads=2,
        intermediate_dim=64,
    )
    with pytest.raises(ValueError, match="frame_offset=0"):
        LAVISHBackbone(encoder=encoder, audio_frames=64, frequency_bins=32)
    with pytest.raises(ValueError, match="equal"):
        LAVISHBackbone(
            encoder=CLIPVisionEncoder(
                image_size=32,
                num_frames=2,
                frame_offset=0,
                frame_stride=1,
                hidden_dim=32,
                num_layers=1,
                num_heads=2,
                intermediate_dim=64,
            ),
            audio_frames=65,
            frequency_bins=32,
        )
    experts = tiny_experts(frames=2, audio_frames=32, depth=1)
    with pytest.raises(ValueError, match="no `num_frames`"):
        LAVISHBackbone(encoder=experts["audio"], audio_frames=64, frequency_bins=32)
    with pytest.raises(ValueError, match="frequency_bins=128 differs"):
        LAVISHBackbone(
            encoder=experts["audio"], audio_frames=64, num_frames=2, image_size=32
        )
    with pytest.raises(ValueError, match="num_frames=4 differs"):
        LAVISHBackbone(
            encoder=experts["temporal"],
            audio_frames=64,
            frequency_bins=32,
            num_frames=4,
        )
    with pytest.raises(ValueError, match="CAST preset|LAVISH presets"):
        LAVISH.from_preset("cast_base", num_classes=3, load_weights=False)


def test_pretrained_preset_offline_without_cache_says_how_to_get_it(
    tmp_path, monkeypatch
):
    """The weights come through the converted-preset cache like every preset's
    (conversion and cache hits: `tests/conversion/test_presets.py`)."""
    from keras_ca2st.presets import PresetWeightsUnavailableError, cached_preset_dir

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("KERAS_CA2ST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(PresetWeightsUnavailableError) as error:
        LAVISH.from_preset("lavish_clip_base", num_classes=29)
    message = str(error.value)
    for part in (
        "openai/clip-vit-base-patch16",
        "HF_HUB_OFFLINE",
        "ca2st convert preset lavish_clip_base --spatial PATH",
        "ViT-B-16.pt (TorchScript: add --trust-torchscript)",
        "load_weights=False",
    ):
        assert part in message
    assert not os.path.exists(cached_preset_dir("lavish_clip_base"))


def test_cli_info_builds_lavish(capsys):
    from keras_ca2st.cli.main import main

    assert main(["info", "lavish_clip_base", "--num-classes", "29"]) == 0
    printed = capsys.readouterr().out
    assert "4,644,989 trainable" in printed
