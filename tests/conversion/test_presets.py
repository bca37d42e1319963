"""`from_preset` with pretrained weights: resolve, convert once, cache, verify.

The test preset's sources are tiny transformers models stored in a real Hugging
Face hub cache (the layout `hf_hub_download` writes) under a temporary
`HF_HOME`, with `HF_HUB_OFFLINE=1`; converted presets go to a temporary
`KERAS_CA2ST_CACHE`.
"""

import logging
import os

import keras_hub
import numpy as np
import pytest
import torch

from keras_ca2st import (
    CA2ST,
    CAST,
    LAVISH,
    ASTEncoder,
    CA2STBackbone,
    VideoClassifier,
)
from keras_ca2st.cli.main import main
from keras_ca2st.conversion import load_expert_weights, read_checkpoint
from keras_ca2st.presets import (
    PresetWeightsUnavailableError,
    cached_preset_dir,
    load_preset_spec,
    preset_experts,
    register_preset,
    unregister_preset,
)
from tests.conversion import helpers as h
from tests.test_case import BACKEND, to_numpy

PRESET = "ca2st_tiny_test"
TOLERANCE = 1e-4
EPS = 1e-6  # the tiny VideoMAE / AST configs use the original models' epsilon


def tiny_spec():
    common = dict(
        hidden_dim=h.WIDTH,
        num_layers=h.DEPTH,
        num_heads=h.HEADS,
        intermediate_dim=h.MLP,
    )
    video = dict(image_size=h.IMAGE, patch_size=16, num_frames=h.FRAMES)
    experts = {
        "spatial": {
            "class_name": "CLIPVisionEncoder",
            "config": {**common, **video, "frame_offset": 1, "frame_stride": 2},
        },
        "temporal": {
            "class_name": "VideoMAEEncoder",
            "config": {**common, **video, "tubelet_size": 2, "layer_norm_epsilon": EPS},
        },
        "audio": {
            "class_name": "ASTEncoder",
            "config": {
                **common,
                "num_time_frames": h.AUDIO_FRAMES,
                "frequency_bins": h.MEL_BINS,
                "position_grid": [2, 8],
                "layer_norm_epsilon": EPS,
            },
        },
    }

    def source(repo):
        return {"repo_id": repo, "revision": "main", "files": ["model.safetensors"]}

    return {
        "model_class": "CA2ST",
        "description": "tiny CA2ST for the preset tests",
        "backbone": {
            "experts": experts,
            "pairs": [
                {"experts": ["spatial", "temporal"]},
                {"experts": ["spatial", "audio"], "layers": [1]},
                {"experts": ["temporal", "audio"], "layers": [1]},
            ],
            "cross_attention_heads": 2,
        },
        "weights": {
            "kind": "experts",
            "sources": {
                "spatial": source("tiny-org/clip"),
                "temporal": source("tiny-org/videomae"),
                "audio": source("tiny-org/ast"),
            },
        },
    }


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Tiny HF models in a hub cache, plus their official-layout files."""
    root = tmp_path_factory.mktemp("hub")
    models = {
        "clip": h.tiny_clip_vision(seed=20),
        "videomae": h.tiny_videomae("classification", seed=21, eps=EPS),
        "ast": h.tiny_ast(seed=22, eps=EPS),
    }
    hub_dir = root / "hf_home" / "hub"
    for name, model in models.items():
        model.save_pretrained(root / name)
        h.put_in_hf_cache(str(hub_dir), f"tiny-org/{name}", str(root / name))
    official = root / "official"
    official.mkdir()
    torch.save(
        h.openai_clip_state_dict(h.state_dict(models["clip"]), dtype=torch.float32),
        official / "clip.pth",
    )
    torch.save(
        {"model": h.official_videomae_state_dict(h.state_dict(models["videomae"]))},
        official / "videomae.pth",
    )
    saved = h.saved_state_dict(models["ast"], root / "ast_saved")
    torch.save(h.official_ast_state_dict(saved), official / "ast.pth")
    return {"root": root, "hf_home": root / "hf_home", "models": models}


@pytest.fixture
def preset_env(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(hub["hf_home"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("KERAS_CA2ST_CACHE", str(tmp_path / "cache"))
    register_preset(PRESET, tiny_spec())
    yield hub
    unregister_preset(PRESET)


def reference_features(models, inputs):
    """Pooled features of the three HF models (what the backbone gives at init,
    when every adapter and B-CA up-projection is still zero)."""
    video = inputs["video"]
    with torch.no_grad():
        clip = models["clip"]
        frames = h.channels_first(video[:, 1::2]).reshape(-1, 3, h.IMAGE, h.IMAGE)
        cls = clip(pixel_values=frames).last_hidden_state[:, 0]
        spatial = clip.post_layernorm(cls.reshape(len(video), -1, h.WIDTH).mean(1))
        videomae = models["videomae"]
        tokens = videomae.videomae(pixel_values=h.channels_first(video))
        temporal = videomae.fc_norm(tokens.last_hidden_state.mean(1))
        ast = models["ast"].audio_spectrogram_transformer
        audio = ast(torch.from_numpy(inputs["audio"])).pooler_output
    return {"spatial": spatial, "temporal": temporal, "audio": audio}


def random_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "video": h.video_batch(rng),
        "audio": rng.standard_normal((2, h.AUDIO_FRAMES, h.MEL_BINS)).astype("float32"),
    }


def feature_errors(model, models, inputs):
    features = to_numpy(model.backbone(inputs))
    expected = reference_features(models, inputs)
    return {name: h.max_error(features[name], expected[name]) for name in expected}


def converted(caplog):
    return [r for r in caplog.records if "Converting the weights" in r.getMessage()]


def test_hf_cache_layout_is_the_one_huggingface_hub_reads(preset_env):
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(str(preset_env["hf_home"] / "hub"))
    repos = {repo.repo_id: repo for repo in info.repos}
    assert set(repos) == {"tiny-org/clip", "tiny-org/videomae", "tiny-org/ast"}
    for repo in repos.values():
        (revision,) = repo.revisions
        assert "main" in revision.refs
        assert {f.file_name for f in revision.files} == {
            "config.json",
            "model.safetensors",
        }
    assert not info.warnings


def test_from_preset_resolves_converts_caches_and_verifies(preset_env, caplog):
    caplog.set_level(logging.WARNING, logger="keras_ca2st.presets")
    models = preset_env["models"]
    inputs = random_inputs()

    # 1. Cache miss: sources come from the offline HF cache, converted once.
    model = CA2ST.from_preset(PRESET, num_classes=3)
    assert len(converted(caplog)) == 1
    errors = feature_errors(model, models, inputs)
    print(
        f"\nPARITY backend={BACKEND} from_preset/first_call "
        + " ".join(f"{k}={v:.2e}" for k, v in errors.items())
    )
    assert max(errors.values()) <= TOLERANCE
    assert model.predict(inputs, verbose=0).shape == (2, 3)
    directory = cached_preset_dir(PRESET)
    weights = os.path.join(directory, "model.weights.h5")
    stamp = os.stat(weights).st_mtime_ns

    # 2. Cache hit: no conversion even with the HF cache gone.
    hidden = preset_env["root"] / "hf_home_hidden"
    os.rename(preset_env["hf_home"], hidden)
    try:
        again = VideoClassifier.from_preset(
            PRESET, num_classes=3, drop_path_rate=0.1, gradient_checkpointing="all"
        )
        assert type(again) is CA2ST and again.backbone.drop_path_rate == 0.1
        assert again.backbone.encoder.gradient_checkpointing == "all"
        assert len(converted(caplog)) == 1
        assert os.stat(weights).st_mtime_ns == stamp
        errors = feature_errors(again, models, inputs)
        assert max(errors.values()) <= TOLERANCE
        # keras-hub's own loader reads the cached preset too.
        backbone = keras_hub.models.Backbone.from_preset(directory)
        assert isinstance(backbone, CA2STBackbone)
        # The cached preset holds a backbone: heads need num_classes.
        with pytest.raises(ValueError, match="pass num_classes"):
            CA2ST.from_preset(directory)

        # 3. A corrupted cache entry without sources: one clear error.
        with open(weights, "r+b") as file:
            file.seek(os.path.getsize(weights) // 2)
            file.write(b"\x00corrupt\x00")
        with pytest.raises(PresetWeightsUnavailableError) as error:
            CA2ST.from_preset(PRESET, num_classes=3)
        assert "does not match its recorded sha256" in str(error.value)
    finally:
        os.rename(hidden, preset_env["hf_home"])

    # 4. With the sources back, the corrupted entry is rebuilt.
    rebuilt = CA2ST.from_preset(PRESET, num_classes=3)
    assert len(converted(caplog)) == 2
    assert any("Rebuilding" in r.getMessage() for r in caplog.records)
    assert max(feature_errors(rebuilt, models, inputs).values()) <= TOLERANCE


def test_offline_without_cache_names_the_sources_and_the_command(
    preset_env, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    with pytest.raises(PresetWeightsUnavailableError) as error:
        CA2ST.from_preset(PRESET, num_classes=3)
    message = str(error.value)
    for repo in ("tiny-org/clip", "tiny-org/videomae", "tiny-org/ast"):
        assert repo in message
    assert "HF_HUB_OFFLINE" in message
    assert (
        f"ca2st convert preset {PRESET} --spatial PATH --temporal PATH --audio PATH"
        in message
    )
    assert "load_weights=False" in message
    assert not os.path.exists(cached_preset_dir(PRESET))


def test_cli_converts_local_official_files_into_the_cache(
    preset_env, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    official = preset_env["root"] / "official"
    code = main(
        [
            "convert",
            "preset",
            PRESET,
            "--spatial",
            str(official / "clip.pth"),
            "--temporal",
            str(official / "videomae.pth"),
            "--audio",
            str(official / "ast.pth"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert any(PRESET in line and "[cached]" in line for line in listing.splitlines())
    model = CA2ST.from_preset(PRESET, num_classes=3)  # no HF cache needed
    errors = feature_errors(model, preset_env["models"], random_inputs(1))
    print(
        f"\nPARITY backend={BACKEND} from_preset/official_files "
        + " ".join(f"{k}={v:.2e}" for k, v in errors.items())
    )
    assert max(errors.values()) <= TOLERANCE


def test_preset_name_errors(preset_env, capsys):
    with pytest.raises(ValueError, match="Registered presets: .*cast_base_k400"):
        CAST.from_preset("cast_huge", num_classes=3)
    with pytest.raises(
        ValueError, match="only dtype, drop_path_rate, gradient_checkpointing"
    ):
        CA2ST.from_preset(PRESET, num_classes=3, bottleneck_ratio=0.25)
    # Without pretrained weights any backbone argument can change.
    model = CA2ST.from_preset(
        PRESET, num_classes=3, load_weights=False, bottleneck_ratio=0.25
    )
    assert model.backbone.bottleneck_ratio == 0.25
    assert main(["convert", "preset", "no_such_preset"]) == 2
    assert "Registered presets" in capsys.readouterr().err
    assert main(["convert", "preset", PRESET, "--spatial", "not a path"]) == 2
    assert "neither an existing checkpoint" in capsys.readouterr().err
    # LAVISH is not a B-CA model; its presets convert like the others.
    with pytest.raises(ValueError, match="LAVISH preset"):
        VideoClassifier.from_preset("lavish_clip_base", num_classes=3)
    assert main(["convert", "preset", "lavish_clip_base"]) == 2
    error = capsys.readouterr().err
    assert "openai/clip-vit-base-patch16" in error
    assert "ca2st convert preset lavish_clip_base --spatial PATH" in error
    assert main(["convert", "preset", "lavish_clip_base", "--audio", "x.pth"]) == 2
    assert "its experts are ['spatial']" in capsys.readouterr().err
    # A fine-tuned preset does not build from expert sources.
    assert main(["convert", "preset", "cast_base_k400"]) == 2
    assert "official-cast" in capsys.readouterr().err


def test_registered_presets_record_sources_and_preprocessing():
    for name in (
        "cast_base",
        "cava_base",
        "ca2st_base",
        "lavish_clip_base",
        "lavish_clip_base_qa",
    ):
        spec = load_preset_spec(name)
        assert spec["weights"]["kind"] == "experts"
        assert set(spec["weights"]["sources"]) == set(preset_experts(spec))
        for source in spec["weights"]["sources"].values():
            assert source["repo_id"] and source["revision"] and source["files"]
            assert source["official"]["url"].startswith("https://")
        assert spec["preprocessing"]["video"]["mean"] == [0.485, 0.456, 0.406]
    assert load_preset_spec("ca2st_base")["preprocessing"]["audio"]["target_length"]
    for name, classes in (
        ("cast_base_k400", 400),
        ("cast_base_ssv2", 174),
        ("cast_base_ek100", {"verb": 97, "noun": 300}),
    ):
        spec = load_preset_spec(name)
        assert spec["weights"]["kind"] == "fine_tuned"
        assert spec["task"]["num_classes"] == classes
        assert spec["weights"]["sources"]["checkpoint"]["url"].startswith("https://")
        assert (
            spec["backbone"]["experts"]
            == load_preset_spec("cast_base")["backbone"]["experts"]
        )


# --- LAVISH: one shared pretrained expert ------------------------------------

LAVISH_CLIP = "lavish_clip_tiny_test"
LAVISH_VIDEOMAE = "lavish_videomae_tiny_test"
LAVISH_AST = "lavish_ast_tiny_test"
LAVISH_FRAMES, SEGMENT = 2, 32  # 2 steps, 32 fbank frames × 32 bins each


def tiny_lavish_spec(expert, repo):
    """`lavish_clip_base` as shipped (adapters, head, source files), with a tiny
    expert and clip: frames and audio segments are 32 × 32, the size the tiny
    CLIP and VideoMAE were built for, so their position grids are not
    resampled (the AST's is)."""
    spec = load_preset_spec("lavish_clip_base")
    common = dict(
        image_size=h.IMAGE,
        patch_size=16,
        num_frames=LAVISH_FRAMES,
        hidden_dim=h.WIDTH,
        num_layers=h.DEPTH,
        num_heads=h.HEADS,
        intermediate_dim=h.MLP,
    )
    if expert == "spatial":
        encoder = {
            "class_name": "CLIPVisionEncoder",
            "config": {**common, "frame_offset": 0, "frame_stride": 1},
        }
    elif expert == "temporal":
        encoder = {
            "class_name": "VideoMAEEncoder",
            "config": {**common, "tubelet_size": 2, "layer_norm_epsilon": EPS},
        }
    else:  # the tiny AST's own 2 × 8 grid, resampled to a segment's 2 × 2
        del common["image_size"], common["patch_size"], common["num_frames"]
        # An AST has no clip of its own: the frames and their size are LAVISH's.
        spec["backbone"].update(num_frames=LAVISH_FRAMES, image_size=h.IMAGE)
        encoder = {
            "class_name": "ASTEncoder",
            "config": {
                **common,
                "num_time_frames": h.AUDIO_FRAMES,
                "frequency_bins": h.MEL_BINS,
                "position_grid": [2, 8],
                "layer_norm_epsilon": EPS,
            },
        }
    spec["backbone"].update(
        encoder=encoder,
        audio_frames=LAVISH_FRAMES * SEGMENT,
        frequency_bins=SEGMENT,
    )
    source = spec["weights"]["sources"].pop("spatial")
    spec["weights"]["sources"][expert] = {**source, "repo_id": repo}
    return spec


@pytest.fixture
def lavish_env(preset_env):
    register_preset(LAVISH_CLIP, tiny_lavish_spec("spatial", "tiny-org/clip"))
    register_preset(LAVISH_VIDEOMAE, tiny_lavish_spec("temporal", "tiny-org/videomae"))
    register_preset(LAVISH_AST, tiny_lavish_spec("audio", "tiny-org/ast"))
    yield preset_env
    for name in (LAVISH_CLIP, LAVISH_VIDEOMAE, LAVISH_AST):
        unregister_preset(name)


def lavish_inputs(seed=0):
    rng = np.random.default_rng(seed)
    video = rng.standard_normal((2, LAVISH_FRAMES, h.IMAGE, h.IMAGE, 3))
    audio = rng.standard_normal((2, LAVISH_FRAMES * SEGMENT, SEGMENT))
    return {"video": video.astype("float32"), "audio": audio.astype("float32")}


def lavish_images(inputs):
    """Frames and audio segments as the HF models take them: `(N, 3, 32, 32)`
    images, a segment copied into the three channels (rows = time)."""
    frames = h.channels_first(inputs["video"]).reshape(-1, 3, h.IMAGE, h.IMAGE)
    segments = torch.from_numpy(inputs["audio"]).reshape(-1, 1, SEGMENT, SEGMENT)
    return {"visual": frames, "audio": segments.expand(-1, 3, -1, -1)}


def clip_reference(clip, inputs):
    """Per-step features of the HF `CLIPVisionModel`: CLS after post-layernorm."""
    with torch.no_grad():
        return {
            name: clip(pixel_values=images).pooler_output.reshape(2, LAVISH_FRAMES, -1)
            for name, images in lavish_images(inputs).items()
        }


def videomae_reference(videomae, inputs):
    """Per-step features of the HF VideoMAE, each image a one-tubelet clip."""
    config = videomae.config.__class__.from_dict(
        {**videomae.config.to_dict(), "num_frames": videomae.config.tubelet_size}
    )
    one_tubelet = type(videomae)(config).eval()
    one_tubelet.load_state_dict(videomae.state_dict())
    features = {}
    with torch.no_grad():
        for name, images in lavish_images(inputs).items():
            clips = images[:, None].expand(-1, config.tubelet_size, -1, -1, -1)
            tokens = one_tubelet.videomae(pixel_values=clips).last_hidden_state
            pooled = one_tubelet.fc_norm(tokens.mean(1))
            features[name] = pooled.reshape(2, LAVISH_FRAMES, -1)
    return features


def lavish_errors(model, expected, inputs):
    """Max abs error per stream, after checking that every LAVISH gate is shut."""
    gates = [
        to_numpy(w)
        for w in model.backbone.weights
        if w.path.rpartition("/")[2] in ("gate", "gate_av")
    ]
    assert len(gates) == 2 * 4 * h.DEPTH and not np.any(gates)
    features = to_numpy(model.backbone(inputs))
    return {name: h.max_error(features[name], expected[name]) for name in expected}


def same_weights(layer, other, atol=0.0):
    pairs = list(zip(layer.weights, other.weights, strict=True))
    assert pairs and all(a.name == b.name for a, b in pairs)
    return all(
        np.allclose(to_numpy(a), to_numpy(b), rtol=0.0, atol=atol) for a, b in pairs
    )


def test_lavish_preset_converts_its_clip_once_and_caches_it(
    lavish_env, tmp_path, caplog, capsys
):
    caplog.set_level(logging.WARNING, logger="keras_ca2st.presets")
    inputs = lavish_inputs()
    expected = clip_reference(lavish_env["models"]["clip"], inputs)

    # 1. Cache miss: the CLIP comes from the offline HF cache, converted once.
    model = LAVISH.from_preset(LAVISH_CLIP, num_classes=3)
    assert len(converted(caplog)) == 1
    errors = lavish_errors(model, expected, inputs)
    assert max(errors.values()) <= TOLERANCE, errors
    assert tuple(model.output.shape) == (None, LAVISH_FRAMES, 3)  # localization
    weights = os.path.join(cached_preset_dir(LAVISH_CLIP), "model.weights.h5")
    stamp = os.stat(weights).st_mtime_ns

    # 2. Cache hit: no conversion even with the HF cache gone; the same weights.
    hidden = lavish_env["root"] / "hf_home_hidden"
    os.rename(lavish_env["hf_home"], hidden)
    try:
        again = LAVISH.from_preset(LAVISH_CLIP, num_classes=3, head="classification")
        assert tuple(again.output.shape) == (None, 3)
        assert len(converted(caplog)) == 1
        assert os.stat(weights).st_mtime_ns == stamp
        assert same_weights(again.backbone, model.backbone)
        assert main(["presets"]) == 0
        listing = capsys.readouterr().out.splitlines()
        assert any(LAVISH_CLIP in line and "[cached]" in line for line in listing)
        assert any(
            line.startswith("lavish_clip_base ") and "[not cached]" in line
            for line in listing
        )

        # 3. `ca2st convert preset` reads the OpenAI layout from a local file
        # into the same expert (the adapters are new).
        output = tmp_path / "lavish_from_openai"
        official = lavish_env["root"] / "official" / "clip.pth"
        argv = ["convert", "preset", LAVISH_CLIP, "--spatial", str(official)]
        assert main([*argv, "--output", str(output)]) == 0, capsys.readouterr().err
        local = LAVISH.from_preset(str(output), num_classes=3)
        expert = model.backbone.lavish_encoder.encoder
        assert same_weights(local.backbone.lavish_encoder.encoder, expert, 1e-6)
    finally:
        os.rename(hidden, lavish_env["hf_home"])
    print(  # after the last `capsys.readouterr()`, so that pytest reports it
        f"\nPARITY backend={BACKEND} lavish_clip/first_call "
        + " ".join(f"{k}={v:.2e}" for k, v in errors.items())
    )


def test_lavish_preset_on_a_videomae_loads_its_converted_weights(lavish_env):
    inputs = lavish_inputs(1)
    model = LAVISH.from_preset(LAVISH_VIDEOMAE, num_classes=3)
    assert type(model.backbone.lavish_encoder.encoder).__name__ == "VideoMAEEncoder"
    expected = videomae_reference(lavish_env["models"]["videomae"], inputs)
    errors = lavish_errors(model, expected, inputs)
    print(
        f"\nPARITY backend={BACKEND} lavish_videomae "
        + " ".join(f"{k}={v:.2e}" for k, v in errors.items())
    )
    assert max(errors.values()) <= TOLERANCE


def test_lavish_preset_on_an_ast_loads_its_converted_weights(lavish_env):
    """The AST reads 32 × 32 segments through its resampled 2 × 8 position
    grid, which HF's AST cannot, so the check is on the weights: those a
    direct conversion of the same HF folder gives, not a random init."""
    model = LAVISH.from_preset(LAVISH_AST, num_classes=3)
    encoder = model.backbone.lavish_encoder.encoder
    assert type(encoder).__name__ == "ASTEncoder"
    direct = ASTEncoder.from_config(encoder.get_config())
    load_expert_weights(direct, read_checkpoint(str(lavish_env["root"] / "ast")))
    assert same_weights(encoder, direct)
    fresh = ASTEncoder.from_config(encoder.get_config())
    fresh.build()
    assert not same_weights(encoder, fresh, atol=1e-3)
