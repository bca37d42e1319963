import keras
import numpy as np
import pytest
from keras import ops

from keras_ca2st.experts import ASTEncoder, CLIPVisionEncoder, VideoMAEEncoder
from keras_ca2st.experts.stream_layout import (
    merge_stream,
    patch_time_steps,
    split_stream,
)
from keras_ca2st.experts.vit_encoder import sinusoid_position_table
from keras_ca2st.experts.vit_layers import ViTBlock, ViTSelfAttention, quick_gelu
from keras_ca2st.kernels import fused_attention
from tests.test_case import (
    assert_allclose,
    run_layer_serialization_test,
    tiny_experts,
    to_numpy,
    value_and_gradients,
)


@pytest.mark.parametrize("name", ["spatial", "temporal", "audio"])
def test_expert_shapes_and_serialization(name):
    expert = tiny_experts()[name]
    rng = np.random.default_rng(0)
    inputs = (
        rng.standard_normal((2, 4, 32, 32, 3))
        if expert.is_video
        else rng.standard_normal((2, 66, 32))
    ).astype("float32")
    out = expert(inputs)
    expected_tokens = {"spatial": (4, 5), "temporal": (2, 8), "audio": (2, 14)}[name]
    assert tuple(out["hidden_states"].shape[:2]) == expected_tokens
    assert tuple(out["pooled"].shape) == (2, 32)
    revived = run_layer_serialization_test(expert)
    revived.build()
    revived.set_weights(expert.get_weights())
    assert_allclose(revived(inputs), out, atol=1e-6)


def test_clip_sees_odd_frames_only():
    expert = CLIPVisionEncoder(
        image_size=16,
        num_frames=4,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
    )
    video = (
        np.random.default_rng(1).standard_normal((1, 4, 16, 16, 3)).astype("float32")
    )
    changed = video.copy()
    changed[:, [0, 2]] = 0.0  # even frames are not the spatial expert's
    assert_allclose(expert(changed)["pooled"], expert(video)["pooled"], atol=0)
    changed[:, 3] = 0.0
    assert not np.allclose(
        to_numpy(expert(changed)["pooled"]), to_numpy(expert(video)["pooled"])
    )


def test_videomae_sinusoid_table_matches_formula():
    table = sinusoid_position_table(5, 6)
    for p in range(5):
        for j in range(6):
            angle = p / 10000 ** (2 * (j // 2) / 6)
            expected = np.sin(angle) if j % 2 == 0 else np.cos(angle)
            assert abs(table[p, j] - expected) < 1e-6


def test_videomae_has_no_key_bias_and_clip_has_no_patch_bias():
    temporal = tiny_experts()["temporal"]
    temporal.build()
    assert temporal.blocks[0].attention.key.bias is None
    assert temporal.blocks[0].attention.query.bias is not None
    spatial = tiny_experts()["spatial"]
    spatial.build()
    assert spatial.patch_embedding.bias is None


def test_ast_position_grid_is_cropped_around_centre():
    expert = ASTEncoder(
        num_time_frames=66,
        frequency_bins=32,
        position_grid=(2, 101),
        hidden_dim=8,
        num_layers=1,
        num_heads=2,
        intermediate_dim=16,
    )
    expert.build()
    # AudioSet grid of 101 columns, 6 used: columns [50 - 3, 50 + 3).
    assert expert.position_columns == (47, 53)
    table = np.arange(2 * 101 * 8 + 16, dtype="float32").reshape(1, -1, 8)
    expert.position_embeddings.assign(table)
    cropped = to_numpy(expert.cropped_position_embeddings())[0]
    grid = table[0, 2:].reshape(2, 101, 8)
    np.testing.assert_array_equal(cropped[:2], table[0, :2])
    np.testing.assert_array_equal(cropped[2:], grid[:, 47:53].reshape(-1, 8))


def test_ast_rejects_audio_longer_than_its_position_grid():
    with pytest.raises(ValueError, match="position grid"):
        ASTEncoder(num_time_frames=2048, position_grid=(12, 101))


def test_ast_patch_order_is_frequency_major():
    expert = tiny_experts()["audio"]
    steps = patch_time_steps(expert.stream_layout, 2)
    # 2 frequency rows × 6 time columns; the first half of the columns is interval 0.
    np.testing.assert_array_equal(steps, [0, 0, 0, 1, 1, 1] * 2)


@pytest.mark.parametrize("name", ["spatial", "temporal", "audio"])
def test_split_and_merge_stream_round_trip(name):
    expert = tiny_experts()[name]
    layout = expert.stream_layout
    tokens = {"spatial": (8, 5), "temporal": (2, 8), "audio": (2, 14)}[name]
    stream = np.random.default_rng(0).standard_normal((*tokens, 6)).astype("float32")
    prefix, patches = split_stream(stream, layout)
    if layout["is_video"]:
        assert tuple(patches.shape[1:3]) == tuple(layout["grid"])
    assert_allclose(merge_stream(prefix, patches, layout), stream, atol=0)


def test_block_and_activation():
    block = ViTBlock(hidden_dim=8, num_heads=2, intermediate_dim=16)
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype("float32")
    block.build(x.shape)
    expected = x + to_numpy(block.attention_branch(x))
    expected = expected + to_numpy(block.mlp(block.mlp_input(expected)))
    assert_allclose(block(x), expected, atol=1e-5)
    run_layer_serialization_test(block)
    v = np.linspace(-3, 3, 7).astype("float32")
    expected = v / (1 + np.exp(-1.702 * v))
    assert_allclose(quick_gelu(ops.convert_to_tensor(v)), expected, atol=1e-6)


def test_video_experts_reject_bad_geometry():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        CLIPVisionEncoder(image_size=30, patch_size=16)
    with pytest.raises(ValueError, match="tubelet_size"):
        VideoMAEEncoder(num_frames=5, tubelet_size=2)


def _attention_run(dtype, mode):
    """Output and projection gradients of a self-attention layer in `mode`."""
    keras.utils.set_random_seed(0)
    layer = ViTSelfAttention(hidden_dim=32, num_heads=4, dtype=dtype)
    layer.build((None, None, 32))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 37, 32)).astype("float32")
    cotangent = ops.convert_to_tensor(
        rng.standard_normal((2, 37, 32)).astype("float32")
    )
    with fused_attention(mode):
        out = to_numpy(ops.cast(layer(x), "float32"))
        _, grads = value_and_gradients(
            lambda: ops.sum(ops.cast(layer(x), "float32") * cotangent),
            layer.trainable_variables,
        )
    return [out] + [g.astype("float32") for g in grads]


def test_fused_self_attention_equals_the_plain_path():
    # `keras.ops.dot_product_attention` (SDPA on torch, jax.nn on JAX, the
    # written-out path on TensorFlow) against `plain_attention`: the output and
    # the gradients of every projection, float32.
    for got, want in zip(
        _attention_run("float32", "auto"), _attention_run("float32", "off"), strict=True
    ):
        scale = max(1.0, float(np.abs(want).max()))
        assert_allclose(got / scale, want / scale, 1e-5)


def test_fused_self_attention_in_bfloat16_is_as_close_to_float32_as_the_plain_path():
    # The numerics contract in mixed precision: fp32 softmax either way, so
    # the fused path strays from the float32 result no more than the plain.
    reference = _attention_run("float32", "off")
    fused = _attention_run("mixed_bfloat16", "auto")
    plain = _attention_run("mixed_bfloat16", "off")
    for want, got_fused, got_plain in zip(reference, fused, plain, strict=True):
        scale = max(1.0, float(np.abs(want).max()))
        error_fused = float(np.abs(got_fused - want).max()) / scale
        error_plain = float(np.abs(got_plain - want).max()) / scale
        assert error_fused <= 2 * error_plain + 2e-3, (error_fused, error_plain)
