import keras
import numpy as np
import pytest

from keras_ca2st import LAVISH, CLIPVisionEncoder, LAVISHBackbone
from keras_ca2st.fusion import LAVISHAdapter
from tests.test_case import (
    count_params,
    predict_in_next_backend,
    randomize,
    run_layer_serialization_test,
    run_saved_model_test,
    to_numpy,
)


def tiny_lavish(num_latent_tokens=2, **kwargs):
    encoder = CLIPVisionEncoder(
        image_size=32,
        patch_size=16,
        num_frames=2,
        frame_offset=0,
        frame_stride=1,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        intermediate_dim=64,
    )
    return LAVISHBackbone(
        encoder=encoder,
        audio_frames=64,
        frequency_bins=32,
        reduction=4,
        num_latent_tokens=num_latent_tokens,
        **kwargs,
    )


def lavish_inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "video": rng.standard_normal((batch, 2, 32, 32, 3)).astype("float32"),
        "audio": rng.standard_normal((batch, 64, 32)).astype("float32"),
    }


def test_zero_gates_give_the_frozen_backbone_features():
    backbone = tiny_lavish()
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
    with pytest.raises(ValueError, match="CAST preset|LAVISH presets"):
        LAVISH.from_preset("cast_base", num_classes=3, load_weights=False)
    with pytest.raises(ValueError, match="not bundled"):
        LAVISH.from_preset("lavish_clip_base", num_classes=3)


def test_cli_info_builds_lavish(capsys):
    from keras_ca2st.cli.main import main

    assert main(["info", "lavish_clip_base", "--num-classes", "29"]) == 0
    printed = capsys.readouterr().out
    assert "4,644,989 trainable" in printed
