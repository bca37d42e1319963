import numpy as np
import pytest

from keras_ca2st.fusion import (
    BottleneckAdapter,
    CrossAttentionDirection,
    CrossExpertExchange,
    DropPath,
    ExpertProjection,
    TimeIntervalEmbedding,
)
from keras_ca2st.fusion.windowed_attention import windowed_cross_attention
from tests.test_case import (
    run_layer_serialization_test,
    tiny_experts,
    to_numpy,
)


def _numpy_attention(q, k, v, heads):
    """Plain per-window, per-head softmax attention: the independent reference."""
    d = q.shape[-1] // heads
    out = np.zeros_like(q)
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = q[:, sl] @ k[:, sl].T / np.sqrt(d)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        out[:, sl] = weights @ v[:, sl]
    return out


@pytest.mark.parametrize("window", ["time", "space", "space_time", "global"])
def test_windowed_attention_matches_per_window_loop(window):
    rng = np.random.default_rng(0)
    b, t, n, c, heads = 2, 3, 5, 8, 2
    shape = (b, t * n) if window == "global" else (b, t, n)
    q = rng.standard_normal((*shape, c)).astype("float32")
    kv = rng.standard_normal((*shape, 2 * c)).astype("float32")
    out = to_numpy(windowed_cross_attention(q, kv, window, heads))
    k, v = kv[..., :c], kv[..., c:]
    expected = np.zeros_like(q)
    for i in range(b):
        if window in ("global", "space_time"):
            flat_q, flat_k, flat_v = (x[i].reshape(-1, c) for x in (q, k, v))
            expected[i] = _numpy_attention(flat_q, flat_k, flat_v, heads).reshape(
                q[i].shape
            )
        elif window == "space":
            for f in range(t):
                expected[i, f] = _numpy_attention(q[i, f], k[i, f], v[i, f], heads)
        else:
            for p in range(n):
                expected[i, :, p] = _numpy_attention(
                    q[i, :, p], k[i, :, p], v[i, :, p], heads
                )
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_windowed_attention_rejects_unknown_window():
    with pytest.raises(ValueError, match="Unknown window"):
        windowed_cross_attention(np.zeros((1, 2, 4)), np.zeros((1, 2, 8)), "x", 2)


def test_adapter_starts_at_zero_and_serializes():
    adapter = BottleneckAdapter(hidden_dim=16, bottleneck_dim=4)
    x = np.random.default_rng(0).standard_normal((2, 3, 16)).astype("float32")
    np.testing.assert_array_equal(to_numpy(adapter(x)), 0.0)
    assert adapter.count_params() == 16 * 4 + 4 + 4 * 16 + 16
    run_layer_serialization_test(adapter)


def test_vit_b_parameter_counts_of_the_fusion_modules():
    adapter = BottleneckAdapter(768, 192)
    adapter.build()
    assert adapter.count_params() == 295_872
    layout_s = {
        "prefix_tokens": 1,
        "grid": [8, 196],
        "frames_in_batch": True,
        "is_video": True,
    }
    layout_t = {
        "prefix_tokens": 0,
        "grid": [8, 196],
        "frames_in_batch": False,
        "is_video": True,
    }
    exchange = CrossExpertExchange(
        {"spatial": layout_s, "temporal": layout_t},
        {"spatial": 768, "temporal": 768},
        [
            {
                "source": "temporal",
                "target": "spatial",
                "window": "time",
                "position_embedding": "learned",
            },
            {
                "source": "spatial",
                "target": "temporal",
                "window": "space",
                "position_embedding": "learned",
            },
        ],
        bottleneck_dim=384,
        num_heads=12,
    )
    exchange.build()
    assert exchange.count_params() == 2_522_880  # SPEC §5, per block


def test_drop_path_drops_whole_samples_and_keeps_expectation():
    drop = DropPath(0.5, seed=3)
    x = np.ones((400, 2, 3), "float32")
    np.testing.assert_array_equal(to_numpy(drop(x, training=False)), x)
    y = to_numpy(drop(x, training=True))
    per_sample = y.reshape(400, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert np.all(per_sample.min(1) == per_sample.max(1))  # all or nothing per sample
    assert 0.35 < (per_sample[:, 0] > 0).mean() < 0.65
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_time_interval_embedding():
    embed = TimeIntervalEmbedding(dim=8)
    intervals = np.array([[[0.0, 0.5], [0.5, 1.0], [1.0, 1.5]]], "float32")
    codes = to_numpy(embed(intervals))
    assert codes.shape == (1, 3, 8)
    assert not np.allclose(codes[0, 0], codes[0, 2])
    assert np.allclose(codes.mean(-1), 0.0, atol=1e-5)  # layer-normalised
    assert embed.count_params() == 2 * 8 + 8 + 2 * (8 * 8 + 8) + 2 * 8
    run_layer_serialization_test(embed)


def test_projection_and_direction_serialize_and_start_as_identity():
    projection = ExpertProjection(hidden_dim=16, bottleneck_dim=8)
    x = np.random.default_rng(0).standard_normal((2, 3, 16)).astype("float32")
    np.testing.assert_array_equal(to_numpy(projection(x)), 0.0)
    run_layer_serialization_test(projection)
    layout = {
        "prefix_tokens": 0,
        "grid": [3, 4],
        "frames_in_batch": False,
        "is_video": True,
    }
    direction = CrossAttentionDirection(8, 2, "time", "learned", layout, layout)
    out = direction(np.ones((2, 3, 4, 8), "float32"), np.ones((2, 3, 4, 8), "float32"))
    assert tuple(out.shape) == (2, 3, 4, 8)
    assert tuple(direction.query_position.shape) == (3, 8)
    run_layer_serialization_test(direction)
    with pytest.raises(ValueError, match="time-interval"):
        CrossAttentionDirection(8, 2, "global", "time_interval", layout, layout)(
            np.ones((2, 12, 8), "float32"), np.ones((2, 12, 8), "float32")
        )


def test_direction_refuses_windows_its_layouts_cannot_take():
    video = dict(prefix_tokens=1, grid=[3, 4], frames_in_batch=True, is_video=True)
    audio = dict(prefix_tokens=2, grid=[2, 6], frames_in_batch=False, is_video=False)
    with pytest.raises(ValueError, match="Direction 'audio_to_spatial' uses window"):
        CrossAttentionDirection(
            8, 2, "time", "learned", video, audio, name="audio_to_spatial"
        )
    with pytest.raises(ValueError, match="as many key positions"):
        CrossAttentionDirection(
            8, 2, "time", "learned", video, dict(video, grid=[3, 5])
        )
    with pytest.raises(ValueError, match="Unknown window 'x'"):
        CrossAttentionDirection(8, 2, "x", "learned", video, video)
    direction = CrossAttentionDirection(8, 2, "global", "learned", video, audio)
    direction.build()
    assert tuple(direction.query_position.shape) == (12, 8)
    assert tuple(direction.key_position.shape) == (12, 8)
    out = direction(np.ones((2, 12, 8), "float32"), np.ones((2, 12, 8), "float32"))
    assert tuple(out.shape) == (2, 12, 8)


def test_exchange_updates_are_zero_at_init_and_prefix_skips_attention():
    experts = tiny_experts(names=["spatial", "temporal"])
    layouts = {n: e.stream_layout for n, e in experts.items()}
    directions = [
        {
            "source": "temporal",
            "target": "spatial",
            "window": "time",
            "position_embedding": "learned",
        },
        {
            "source": "spatial",
            "target": "temporal",
            "window": "space",
            "position_embedding": "none",
        },
    ]
    exchange = CrossExpertExchange(
        layouts, {"spatial": 32, "temporal": 32}, directions, 16, 2
    )
    rng = np.random.default_rng(0)
    streams = {
        "spatial": rng.standard_normal((2 * 2, 5, 32)).astype("float32"),
        "temporal": rng.standard_normal((2, 8, 32)).astype("float32"),
    }
    updates = exchange(streams)
    for name, update in updates.items():
        assert tuple(update.shape) == streams[name].shape
        np.testing.assert_array_equal(to_numpy(update), 0.0)
    # With a non-zero up-projection, the CLS row of the spatial stream gets
    # up(GELU(z_cls)) whatever the temporal stream holds.
    up = exchange.projections["spatial"].up
    up.kernel.assign(rng.standard_normal(up.kernel.shape).astype("float32"))
    first = to_numpy(exchange(streams)["spatial"])
    streams["temporal"] = streams["temporal"] * 3.0
    second = to_numpy(exchange(streams)["spatial"])
    np.testing.assert_allclose(first[:, 0], second[:, 0], atol=1e-5)
    assert not np.allclose(first[:, 1:], second[:, 1:])
    run_layer_serialization_test(exchange)
