import itertools

import keras
import numpy as np
import pytest

import keras_ca2st
from keras_ca2st import CA2ST, CAST, CAVA, CA2STBackbone, VideoClassifier
from keras_ca2st.presets import load_preset_spec
from tests.test_case import (
    BACKEND,
    assert_allclose,
    count_params,
    predict_in_next_backend,
    random_inputs,
    randomize,
    run_saved_model_test,
    tiny_experts,
    to_numpy,
    value_and_gradients,
)

MODELS = {
    "cast": ["spatial", "temporal"],
    "cava": ["spatial", "audio"],
    "ca2st": ["spatial", "temporal", "audio"],
}


def tiny_backbone(names=("spatial", "temporal", "audio"), pairs=None, **kwargs):
    if pairs is None:
        pairs = [{"experts": list(p)} for p in itertools.combinations(names, 2)]
    kwargs.setdefault("cross_attention_heads", 2)
    return CA2STBackbone(experts=tiny_experts(names=list(names)), pairs=pairs, **kwargs)


@pytest.mark.parametrize("model", MODELS)
def test_features_equal_the_frozen_experts_at_init(model):
    backbone = tiny_backbone(MODELS[model])
    inputs = random_inputs(backbone)
    features = backbone(inputs)
    for name, expert in backbone.encoder.experts.items():
        alone = expert(inputs["video" if expert.is_video else "audio"])["pooled"]
        assert_allclose(features[name], alone, atol=1e-5)


@pytest.mark.parametrize("model", MODELS)
def test_logits_equal_head_bias_at_init(model):
    classifier = VideoClassifier(tiny_backbone(MODELS[model]), num_classes=7)
    bias = np.random.default_rng(1).standard_normal(7).astype("float32")
    classifier.heads["logits"].bias.assign(bias)
    logits = to_numpy(
        classifier.predict(random_inputs(classifier.backbone, batch=3), verbose=0)
    )
    assert logits.shape == (3, 7)
    np.testing.assert_array_equal(logits, np.broadcast_to(bias, (3, 7)))


def test_exchange_carries_audio_into_the_visual_streams():
    backbone = tiny_backbone()
    randomize(backbone)
    inputs = random_inputs(backbone)
    base = to_numpy(backbone(inputs))
    inputs["audio"] = inputs["audio"] + 1.0
    moved = to_numpy(backbone(inputs))
    for name in ("spatial", "temporal", "audio"):
        assert not np.allclose(base[name], moved[name], atol=1e-4), name
    # Without exchange the visual experts never see the audio.
    isolated = tiny_backbone(fusion="identity")
    randomize(isolated)
    inputs = random_inputs(isolated)
    base = to_numpy(isolated(inputs))
    inputs["audio"] = inputs["audio"] + 1.0
    moved = to_numpy(isolated(inputs))
    assert_allclose(moved["spatial"], base["spatial"], atol=0)
    assert_allclose(moved["temporal"], base["temporal"], atol=0)


def test_default_time_intervals_are_evenly_spaced_over_the_audio_window():
    backbone = tiny_backbone(["spatial", "audio"])
    randomize(backbone)
    inputs = random_inputs(backbone)
    # 66 fbank frames = 0.66 s, split into the 2 visual time steps.
    intervals = np.array([[[0.0, 0.33], [0.33, 0.66]]] * 2, "float32")
    explicit = {**inputs, "video_times": intervals, "audio_times": intervals}
    assert_allclose(backbone(inputs), backbone(explicit), atol=1e-5)
    shifted = {**explicit, "audio_times": intervals + 5.0}
    assert not np.allclose(
        to_numpy(backbone(shifted))["spatial"], to_numpy(backbone(explicit))["spatial"]
    )


def test_ek100_two_heads_read_spatial_and_temporal_features():
    classifier = VideoClassifier(
        tiny_backbone(["spatial", "temporal"]), num_classes={"verb": 4, "noun": 6}
    )
    randomize(classifier)
    inputs = random_inputs(classifier.backbone)
    logits = classifier.predict(inputs, verbose=0)
    assert set(logits) == {"verb", "noun"}
    assert logits["verb"].shape == (2, 4) and logits["noun"].shape == (2, 6)
    features = to_numpy(classifier.backbone(inputs))
    head = classifier.heads["noun"]
    expected = features["spatial"] @ to_numpy(head.kernel) + to_numpy(head.bias)
    np.testing.assert_allclose(to_numpy(logits["noun"]), expected, atol=1e-4)
    with pytest.raises(ValueError, match="no source expert"):
        VideoClassifier(classifier.backbone, num_classes={"action": 3})


def test_only_adapters_exchange_last_norms_and_heads_train():
    classifier = VideoClassifier(tiny_backbone(), num_classes=3)
    allowed = (
        "adapter",
        "exchange_",
        "time_embedding",
        "post_layernorm",
        "fc_norm",
        "layernorm",
        "head",
    )
    trainable = classifier.trainable_weights
    assert trainable
    for weight in trainable:
        assert any(key in weight.path for key in allowed), weight.path
        assert "block_" not in weight.path or "adapter" in weight.path, weight.path
    frozen = {w.path for w in classifier.non_trainable_weights}
    for name in (
        "class_embedding",
        "position_embedding",
        "cls_token",
        "patch_embedding",
    ):
        assert any(name in path for path in frozen), name
    assert not any(
        "layernorm" in p and "block" not in p and "pre" not in p for p in frozen
    )


@pytest.mark.slow
def test_vit_b_presets_build_with_the_papers_parameter_counts():
    ca2st = CA2ST.from_preset("ca2st_base", num_classes=309, load_weights=False)
    encoder = ca2st.backbone.encoder
    assert encoder.experts["spatial"].patch_grid == (8, 196)
    assert encoder.experts["temporal"].patch_grid == (8, 196)
    assert encoder.experts["audio"].patch_grid == (12, 101)
    assert [e is not None for e in encoder.exchanges] == [True] * 12
    assert [len(e.directions) for e in encoder.exchanges] == [2] * 9 + [6] * 3
    assert abs(count_params(ca2st.trainable_weights) - 62_000_000) < 1_000_000

    def from_spec(model_cls, preset, num_classes, **backbone_overrides):
        """The preset's architecture around CA²ST's built ViT-B experts.

        Building a ViT-B is the slow part; every preset names the same three
        expert configurations, which is checked before they are shared.
        """
        backbone = load_preset_spec(preset)["backbone"]
        experts = {}
        for name, expert in backbone["experts"].items():
            built = ca2st.backbone.experts[name]
            assert type(built).__name__ == expert["class_name"]
            assert expert["config"].items() <= built.get_config().items()
            experts[name] = built
        backbone = {**backbone, **backbone_overrides, "experts": experts}
        return model_cls.from_spec(backbone, num_classes=num_classes)

    def counts(model):
        return count_params(model.trainable_weights), count_params(model.weights)

    cast = from_spec(CAST, "cast_base", num_classes=400)
    assert counts(cast) == (45_378_832, 217_402_384)
    # The SSV2 and EK100 heads.
    assert counts(CAST(backbone=cast.backbone, num_classes=174))[0] == 45_205_038
    ek100 = {"verb": 97, "noun": 300}
    assert counts(CAST(backbone=cast.backbone, num_classes=ek100))[0] == 44_784_781
    for ratio, trainable in [(1 / 8, 19_438_477), (1.0, 103_352_461)]:
        model = from_spec(CAST, "cast_base", num_classes=ek100, bottleneck_ratio=ratio)
        assert counts(model)[0] == trainable, ratio
    cava = count_params(from_spec(CAVA, "cava_base", num_classes=309).trainable_weights)
    assert abs(cava - 44_000_000) < 1_000_000, cava


@pytest.mark.parametrize("model", ["ca2st", "cast"])
def test_keras_save_and_load_round_trip(model, tmp_path):
    classifier = VideoClassifier(tiny_backbone(MODELS[model]), num_classes=4)
    randomize(classifier)
    restored = run_saved_model_test(
        classifier, random_inputs(classifier.backbone), str(tmp_path), atol=1e-6
    )
    assert count_params(restored.trainable_weights) == count_params(
        classifier.trainable_weights
    )


def test_weights_move_between_backends(tmp_path):
    classifier = CA2ST(tiny_backbone(), num_classes=4)
    randomize(classifier, scale=0.2)
    inputs = random_inputs(classifier.backbone, batch=2)
    expected = to_numpy(classifier.predict(inputs, verbose=0))
    actual = predict_in_next_backend(classifier, inputs, str(tmp_path))
    assert np.abs(actual - expected).max() <= 1e-4, BACKEND


# Compiling the whole graph (XLA on TensorFlow, torch.compile on torch) costs
# more than these few steps; JAX without jit runs op by op, 3-4x slower.
JIT = keras.config.backend() == "jax"


@pytest.mark.parametrize("num_classes", [3, {"verb": 3, "noun": 2}])
def test_fit_reduces_the_loss(num_classes):
    keras.utils.set_random_seed(0)
    names = MODELS["ca2st"] if num_classes == 3 else MODELS["cast"]
    classifier = VideoClassifier(tiny_backbone(names), num_classes=num_classes)
    inputs = random_inputs(classifier.backbone, batch=6, seed=2)
    labels = np.array([0, 1, 2, 0, 1, 2])
    if isinstance(num_classes, dict):
        labels = {"verb": labels, "noun": labels % 2}
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=JIT)
    history = classifier.fit(inputs, labels, batch_size=6, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 0.1, losses


def test_mixed_bfloat16_runs_and_stays_finite():
    classifier = VideoClassifier(tiny_backbone(dtype="mixed_bfloat16"), num_classes=3)
    expert = classifier.backbone.encoder.experts["temporal"]
    assert expert.blocks[0].attention.query.compute_dtype == "bfloat16"
    assert expert.blocks[0].attention.query.kernel.dtype == "float32"
    inputs = random_inputs(classifier.backbone, batch=2)
    logits = to_numpy(classifier.predict(inputs, verbose=0))
    assert np.isfinite(logits).all()
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=JIT)
    loss = classifier.train_on_batch(inputs, np.array([0, 2]))
    assert np.all(np.isfinite(loss))


@pytest.mark.parametrize("name", ["spatial", "temporal", "audio"])
def test_single_expert_baselines(name):
    backbone = tiny_backbone([name], pairs=[])
    classifier = VideoClassifier(backbone, num_classes=3)
    inputs = random_inputs(backbone)
    assert set(inputs) == ({"audio"} if name == "audio" else {"video"})
    assert classifier.predict(inputs, verbose=0).shape == (2, 3)
    assert all(e is None for e in backbone.encoder.exchanges)
    # 2 blocks × 2 adapters + last adapter + final norm + head.
    adapter = 32 * 8 + 8 + 8 * 32 + 32
    expected = 5 * adapter + 2 * 32 + 32 * 3 + 3
    assert count_params(classifier.trainable_weights) == expected


@pytest.mark.parametrize(
    "variant",
    [
        {"fusion": "identity"},
        {"fusion": "late_add"},
        {"fusion": "late_concat"},
        {"fusion": "lateral"},
        {"cross_attention_placement": "before_adapter"},
        {
            "pairs": [
                {
                    "experts": ["spatial", "temporal"],
                    "windows": {"temporal_to_spatial": "time"},
                }
            ]
        },
        {"pairs": [{"experts": ["spatial", "temporal"], "layers": [1]}]},
        {"pairs": [{"experts": ["spatial", "temporal"], "position_embedding": "none"}]},
        {
            "pairs": [
                {
                    "experts": ["spatial", "temporal"],
                    "windows": {
                        "temporal_to_spatial": "space_time",
                        "spatial_to_temporal": "space_time",
                    },
                }
            ]
        },
    ],
)
def test_ablation_variants_build_and_run(variant):
    kwargs = {"pairs": [{"experts": ["spatial", "temporal"]}], **variant}
    backbone = tiny_backbone(["spatial", "temporal"], **kwargs)
    classifier = VideoClassifier(backbone, num_classes=3)
    randomize(classifier)
    logits = to_numpy(classifier.predict(random_inputs(backbone), verbose=0))
    assert logits.shape == (2, 3) and np.isfinite(logits).all()
    full = VideoClassifier(tiny_backbone(["spatial", "temporal"]), num_classes=3)
    params, full_params = (
        count_params(classifier.trainable_weights),
        count_params(full.trainable_weights),
    )
    if variant.get("fusion") in ("identity", "late_add", "late_concat", "lateral") or (
        "pairs" in variant
        and (
            len(variant["pairs"][0].get("windows", {})) == 1
            or "layers" in variant["pairs"][0]
            or variant["pairs"][0].get("position_embedding") == "none"
        )
    ):
        assert params < full_params
    if variant.get("fusion") == "identity":
        assert all(e is None for e in backbone.encoder.exchanges)


def test_bad_configuration_errors(monkeypatch, tmp_path):
    # Pretrained weights: nothing cached and the Hub off limits.
    monkeypatch.setenv("KERAS_CA2ST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="Registered presets: ca2st_base, cast_base"):
        CAST.from_preset("cast_huge", num_classes=3, load_weights=False)
    with pytest.raises(ValueError, match="load_weights=False"):
        CAST.from_preset("cast_base", num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        CAST.from_preset("cast_base", load_weights=False)
    with pytest.raises(ValueError, match="is a CA2ST preset"):
        CAST.from_preset("ca2st_base", num_classes=3, load_weights=False)
    with pytest.raises(ValueError, match="unknown expert"):
        tiny_backbone(
            ["spatial", "temporal"], pairs=[{"experts": ["spatial", "depth"]}]
        )
    with pytest.raises(ValueError, match="use 'global'"):
        tiny_backbone(
            ["spatial", "audio"],
            pairs=[
                {
                    "experts": ["spatial", "audio"],
                    "windows": {"audio_to_spatial": "time"},
                }
            ],
        )
    with pytest.raises(ValueError, match="blocks are 0..1"):
        tiny_backbone(
            ["spatial", "temporal"],
            pairs=[{"experts": ["spatial", "temporal"], "layers": [5]}],
        )
    experts = tiny_experts(names=["spatial"])
    experts["temporal"] = keras_ca2st.VideoMAEEncoder(
        image_size=32,
        num_frames=8,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        intermediate_dim=64,
    )
    with pytest.raises(ValueError, match="num_frames, image_size"):
        CA2STBackbone(experts=experts)
    assert CAST.presets_list() == [
        "cast_base",
        "cast_base_ek100",
        "cast_base_k400",
        "cast_base_ssv2",
    ]


def test_cli_lists_presets_and_rejects_unknown_ones(capsys):
    from keras_ca2st.cli.main import main

    assert main(["presets"]) == 0
    listed = capsys.readouterr().out
    assert "cast_base" in listed and "ca2st_base" in listed and "cava_base" in listed
    assert main(["info", "cast_tiny"]) == 2
    assert "Registered presets" in capsys.readouterr().err


def test_train_experts_unfreezes_and_survives_a_round_trip(tmp_path):
    classifier = VideoClassifier(
        tiny_backbone(["spatial", "temporal"], train_experts=True), num_classes=3
    )
    paths = {w.path for w in classifier.trainable_weights}
    assert any("block_0/attention/query" in p for p in paths)
    assert any("class_embedding" in p for p in paths)
    restored = run_saved_model_test(
        classifier, random_inputs(classifier.backbone), str(tmp_path)
    )
    assert count_params(restored.trainable_weights) == count_params(
        classifier.trainable_weights
    )


def test_fit_trains_with_drop_path_and_dropout_active():
    classifier = VideoClassifier(
        tiny_backbone(["spatial", "temporal"], drop_path_rate=0.5),
        num_classes=3,
        head_dropout=0.5,
    )
    assert classifier._call_has_training_arg
    assert classifier.backbone._call_has_training_arg
    randomize(classifier)
    inputs = random_inputs(classifier.backbone, batch=4)
    first = to_numpy(classifier(inputs, training=True))
    second = to_numpy(classifier(inputs, training=True))
    assert not np.allclose(first, second)  # stochastic in training
    assert_allclose(classifier(inputs), classifier(inputs), atol=0)


def test_fit_on_arrays_shuffles_instead_of_building_an_unshuffled_pipeline():
    import warnings

    classifier = VideoClassifier(tiny_backbone(["audio"], pairs=[]), num_classes=2)
    inputs = random_inputs(classifier.backbone, batch=4)
    classifier.compile(optimizer="adam", jit_compile=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classifier.fit(
            inputs, np.array([0, 1, 0, 1]), batch_size=2, epochs=1, verbose=0
        )
    assert not [w for w in caught if "will be ignored" in str(w.message)]


def test_inputs_are_matched_by_name_and_other_keys_ignored():
    # A CAST fed the batch of a CA²ST pipeline: the fbank comes first in the
    # dict and must not be taken for the video. (Equal up to rounding: XLA
    # compiles the two calls as different graphs.)
    keras.utils.set_random_seed(0)
    backbone = CA2STBackbone(
        experts=tiny_experts(names=["spatial", "temporal"]),
        pairs=[{"experts": ["spatial", "temporal"]}],
        cross_attention_heads=2,
    )
    model = CAST(backbone, num_classes=3)
    randomize(model, seed=1)
    video = random_inputs(backbone, batch=2)["video"]
    expected = to_numpy(model.predict({"video": video}, verbose=0))
    rng = np.random.default_rng(3)
    audio_visual_batch = {
        "audio": rng.standard_normal((2, 66, 128)).astype("float32"),
        "audio_times": rng.uniform(0, 1, (2, 2, 2)).astype("float32"),
        "video": video,
        "video_times": rng.uniform(0, 1, (2, 2, 2)).astype("float32"),
    }
    assert_allclose(to_numpy(model.predict(audio_visual_batch, verbose=0)), expected)
    assert_allclose(to_numpy(model(audio_visual_batch)), expected)
    assert_allclose(
        to_numpy(backbone(audio_visual_batch)["spatial"]),
        to_numpy(backbone({"video": video})["spatial"]),
    )
    with pytest.raises(ValueError, match=r"needs the input\(s\) \['video'\]"):
        model.predict({"audio": audio_visual_batch["audio"]}, verbose=0)


@pytest.mark.parametrize("checkpointing", ["frozen", "all"])
def test_gradient_checkpointing_gives_the_gradients_of_the_plain_run(checkpointing):
    # Training mode with drop path on: a recomputed block must apply the same
    # random masks as the first pass.
    def loss_and_grads(mode):
        keras.utils.set_random_seed(0)
        # CAVA: a stream of frames (CLIP: batch × frames) and an audio stream
        # joined by global windows with time-interval codes.
        backbone = tiny_backbone(
            names=("spatial", "audio"), drop_path_rate=0.5, gradient_checkpointing=mode
        )
        model = CAVA(backbone, num_classes=3)
        randomize(model, seed=1)
        inputs = random_inputs(backbone, batch=4, seed=2)
        weights = keras.ops.convert_to_tensor(
            np.random.default_rng(3).standard_normal((4, 3)).astype("float32")
        )
        return value_and_gradients(
            lambda: keras.ops.sum(model(inputs, training=True) * weights),
            model.trainable_variables,
        )

    loss, grads = loss_and_grads(checkpointing)
    expected_loss, expected = loss_and_grads("none")
    assert abs(loss - expected_loss) <= 1e-5 * max(1.0, abs(expected_loss))
    assert len(grads) == len(expected) > 50
    for got, want in zip(grads, expected, strict=True):
        scale = max(1e-3, float(np.abs(want).max()))
        assert_allclose(got / scale, want / scale, 2e-5)
    # The masks are random: the same model with other masks differs.
    assert any(np.abs(g).max() == 0 for g in expected) or expected_loss != 0


def test_gradient_checkpointing_is_saved_and_checked():
    backbone = tiny_backbone(gradient_checkpointing="frozen")
    assert backbone.gradient_checkpointing == "frozen"
    again = CA2STBackbone.from_config(backbone.get_config())
    assert again.encoder.gradient_checkpointing == "frozen"
    with pytest.raises(ValueError, match="gradient_checkpointing"):
        tiny_backbone(gradient_checkpointing="some")


def test_the_cli_offers_the_encoders_gradient_checkpointing_modes():
    from keras_ca2st.cli import train
    from keras_ca2st.models.ca2st import cross_expert_encoder

    assert train.GRADIENT_CHECKPOINTING == cross_expert_encoder.GRADIENT_CHECKPOINTING
