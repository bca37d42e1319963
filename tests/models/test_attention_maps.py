"""Attention maps: every B-CA direction's and LAVISH adapter's weights.

The recorded weights are checked against a numpy recomputation from each
layer's own projections and the tokens it was given, so a map that shows
something other than what the layer computed fails here.
"""

import functools
import os

import numpy as np
import pytest

from keras_ca2st import CA2ST, CAST, CAVA, LAVISH
from keras_ca2st.kernels.windows import NUMPY_OPS, get_window
from keras_ca2st.models.attention_maps import AttentionMap, attention_maps
from keras_ca2st.reports.attention_plots import (
    explain_figures,
    object_attention_share,
    patch_fractions,
)
from tests.models.test_ca2st import tiny_backbone
from tests.models.test_lavish import lavish_inputs, tiny_lavish
from tests.test_case import assert_allclose, random_inputs, randomize, to_numpy

MODELS = {
    "cast": (CAST, ["spatial", "temporal"]),
    "cava": (CAVA, ["spatial", "audio"]),
    "ca2st": (CA2ST, ["spatial", "temporal", "audio"]),
}


@functools.cache
def recorded(name):
    """A tiny model of family `name`, its inputs, and their attention maps."""
    model_class, experts = MODELS[name]
    backbone = tiny_backbone(experts)
    model = model_class(backbone=backbone, num_classes=3)
    randomize(model, scale=0.5)  # away from uniform attention
    inputs = random_inputs(backbone, batch=2, seed=1)
    return model, inputs, attention_maps(model, inputs)


def softmax(scores):
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)


def recompute_cross_attention(amap):
    """The map's weights from its layer's kernels and recorded tokens, in numpy."""
    layer = amap.layer
    dense = {
        name: [to_numpy(w) for w in getattr(layer, name).weights]
        for name in ("query", "key_value")
    }
    query = amap.inputs["query_tokens"] @ dense["query"][0] + dense["query"][1]
    key_value = (
        amap.inputs["key_tokens"] @ dense["key_value"][0] + dense["key_value"][1]
    )
    channels, heads = layer.dim, layer.num_heads
    window = get_window(amap.window)
    q = window.cut(query, NUMPY_OPS)
    k = window.cut(key_value[..., :channels], NUMPY_OPS)
    head_dim = channels // heads
    q = q.reshape(*q.shape[:2], heads, head_dim).transpose(0, 2, 1, 3)
    k = k.reshape(*k.shape[:2], heads, head_dim).transpose(0, 2, 3, 1)
    return softmax(q @ k * head_dim**-0.5)  # (windows, heads, Lq, Lk)


@pytest.mark.parametrize("name", MODELS)
def test_maps_are_the_weights_each_direction_computes(name):
    model, inputs, maps = recorded(name)
    exchange_layers = [e for e in model.backbone.encoder.exchanges if e is not None]
    directions = sum(len(e.direction_layers) for e in exchange_layers)
    assert len(maps) == directions
    assert_allclose(to_numpy(maps.outputs), to_numpy(model(inputs)), atol=1e-5)
    for amap in maps:
        weights = amap.weights
        assert weights.ndim == 5 and weights.shape[0] == 2
        assert np.isfinite(weights).all()
        assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
        # Random weights make attention far from uniform: a map of constants
        # (e.g. a recorder that saw the wrong tensor) would not match below.
        assert weights.std() > 1e-3
        expected = recompute_cross_attention(amap)
        assert_allclose(weights.reshape(expected.shape), expected, atol=2e-5)


def test_map_shapes_follow_the_windows():
    model, _, maps = recorded("ca2st")
    frames, patches = model.backbone.encoder.experts["spatial"].stream_layout["grid"]
    t2s = maps.select("temporal_to_spatial", block=0)[0]
    assert t2s.window == "time" and t2s.weights.shape[1:] == (
        patches,
        2,
        frames,
        frames,
    )
    s2t = maps.select("spatial_to_temporal", block=0)[0]
    assert s2t.window == "space" and s2t.weights.shape[1:] == (
        frames,
        2,
        patches,
        patches,
    )
    audio = maps.select("audio_to_spatial", block=0)[0]
    audio_tokens = int(np.prod(audio.key_grid))
    assert audio.window == "global" and not audio.key_is_video
    assert audio.weights.shape[1:] == (1, 2, frames * patches, audio_tokens)
    assert maps.names[:2] == ["spatial_to_temporal", "temporal_to_spatial"]


def test_lavish_latent_attention_is_recorded_for_every_adapter():
    backbone = tiny_lavish()
    model = LAVISH(backbone=backbone, num_classes=3)
    randomize(model, scale=0.2)
    for weight in model.weights:  # a variance must stay positive
        if "moving_variance" in weight.path:
            weight.assign(np.ones(weight.shape, "float32"))
    inputs = lavish_inputs()
    maps = attention_maps(model, inputs)
    kinds = backbone.lavish_encoder.adapters
    assert len(maps) == 2 * sum(len(adapters) for adapters in kinds.values())
    for amap in maps:
        assert np.isfinite(amap.weights).all()
        assert_allclose(amap.weights.sum(axis=-1), 1.0, atol=1e-5)
        assert amap.weights.std() > 1e-3
        queries = amap.inputs["queries"]
        keys = amap.inputs["keys"]
        scores = np.einsum("bqc,bkc->bqk", queries, keys, dtype="float64")
        expected = softmax(scores)
        assert_allclose(amap.weights.reshape(expected.shape), expected, atol=5e-5)
    latents = maps.select("visual_attention/latents_from_other", block=0)[0]
    assert latents.source == "audio" and latents.target == "latents"
    assert latents.weights.shape[1:3] == (2, 1)  # one window per frame, one head


def test_models_without_cross_attention_are_refused():
    backbone = tiny_backbone(["spatial", "temporal"], fusion="late_add")
    model = CAST(backbone=backbone, num_classes=3)
    with pytest.raises(ValueError, match="no cross-expert attention"):
        attention_maps(model, random_inputs(backbone))


def test_recording_ends_with_the_call():
    model, inputs, maps = recorded("cast")
    layer = maps[0].layer
    from keras_ca2st.fusion.attention_record import active_recorder

    assert active_recorder() is None
    # The direction still runs (fused or plain) and gives the recorded output.
    assert_allclose(to_numpy(model(inputs)), to_numpy(maps.outputs), atol=1e-5)
    assert layer.built


def test_explain_figures_draw_every_direction(tmp_path):
    model, inputs, maps = recorded("ca2st")
    written = explain_figures(maps, inputs, model.backbone.clip_spec, tmp_path)
    assert set(written) == set(maps.names)
    for path in written.values():
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 2000


def test_object_share_weighs_attention_by_object_cover():
    # Two frames of a 2×2 patch grid; all attention on patch 0 of frame 0 and
    # spread evenly in frame 1. The object covers patch 0 entirely.
    weights = np.zeros((1, 2, 1, 4, 4), "float32")
    weights[0, 0, :, :, 0] = 1.0
    weights[0, 1] = 0.25
    amap = AttentionMap(
        block=0,
        name="spatial_to_temporal",
        source="spatial",
        target="temporal",
        window="space",
        weights=weights,
        query_grid=[2, 4],
        key_grid=[2, 4],
        query_is_video=True,
        key_is_video=True,
        inputs={},
    )
    mask = np.zeros((1, 2, 4, 4), bool)
    mask[..., :2, :2] = True  # patch 0 of 2×2 patches of 2 pixels
    fractions = patch_fractions(mask, 2)
    assert fractions.shape == (1, 2, 4)
    mass, area = object_attention_share([amap], fractions)
    assert mass == pytest.approx((1.0 + 0.25) / 2)
    assert area == pytest.approx(0.25)
