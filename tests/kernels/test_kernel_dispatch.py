"""`windowed_cross_attention` with its fused paths equals the plain `keras.ops` path.

On torch the Triton kernels are forced with `fused_attention("triton")` (on the CPU
they run in the Triton interpreter, see conftest.py); `"space_time"` / `"global"`
go to `scaled_dot_product_attention`. On JAX every window goes through
`jax.nn.dot_product_attention`; on TensorFlow there is no fused path.
"""

import keras
import numpy as np
import pytest

from keras_ca2st.fusion.windowed_attention import (
    fused_windowed_attention,
    reference_windowed_attention,
    windowed_cross_attention,
)
from keras_ca2st.kernels import ENV_VAR, fused_attention, fused_attention_mode
from tests.kernels.utils import random_tensor, requires_torch_kernels, stream_query

BACKEND = keras.config.backend()
only_torch = pytest.mark.skipif(BACKEND != "torch", reason=f"torch only ({BACKEND})")

# A miniature CAST stream: B=2, T=3 frames, N=11 patches (+ CLS), C=64, 2 heads.
BATCH, FRAMES, PATCHES, CHANNELS, HEADS = 2, 3, 11, 64, 2


def _numpy_inputs(window, seed=0):
    rng = np.random.default_rng(seed)
    if window == "global":
        query = rng.standard_normal((BATCH, 17, CHANNELS))
        key_value = rng.standard_normal((BATCH, 29, 2 * CHANNELS))
    else:
        key_patches = PATCHES if window == "time" else PATCHES + 4
        query = rng.standard_normal((BATCH, FRAMES, PATCHES, CHANNELS))
        key_value = rng.standard_normal((BATCH, FRAMES, key_patches, 2 * CHANNELS))
    return query.astype("float32"), key_value.astype("float32")


# --- torch ----------------------------------------------------------------------------


def _torch_grads(fn, stream, key_value, window):
    """Forward + backward of `fn` on the CLS-sliced view of `stream`."""
    stream = stream.detach().requires_grad_()
    key_value = key_value.detach().requires_grad_()
    query = stream.view(BATCH, FRAMES, 1 + PATCHES, CHANNELS)[:, :, 1:]
    out = fn(query, key_value, window, HEADS)
    (out * out).sum().backward()  # a non-uniform output gradient
    return out, stream.grad, key_value.grad


@only_torch
@requires_torch_kernels
@pytest.mark.parametrize("window", ("time", "space"))
@pytest.mark.parametrize("dtype_name", ("float32", "float16"))
def test_forced_kernels_equal_plain_path(window, dtype_name, monkeypatch):
    import torch

    from keras_ca2st.kernels import ops

    dtype = getattr(torch, dtype_name)
    calls = []
    name = f"{window}_window_attention"
    original = getattr(ops, name)
    monkeypatch.setattr(ops, name, lambda *args: calls.append(name) or original(*args))
    stream, _ = stream_query(BATCH, FRAMES, PATCHES, CHANNELS, dtype, seed=1)
    key_patches = PATCHES if window == "time" else PATCHES + 4
    key_value = random_tensor((BATCH, FRAMES, key_patches, 2 * CHANNELS), dtype, seed=2)
    with fused_attention("triton"):
        fused = _torch_grads(windowed_cross_attention, stream, key_value, window)
    assert calls == [name]  # the kernel path really ran
    plain = _torch_grads(reference_windowed_attention, stream, key_value, window)
    tol = 1e-5 if dtype_name == "float32" else 1e-2
    for got, want in zip(fused, plain, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


@only_torch
@requires_torch_kernels
@pytest.mark.parametrize("window", ("time", "space"))
def test_bca_direction_layer_with_kernels_equals_plain_path(window):
    """A whole B-CA direction (position embeddings, q / kv / out projections)."""
    import torch

    from keras_ca2st.fusion import CrossAttentionDirection

    layout = {
        "prefix_tokens": 0,
        "grid": [FRAMES, PATCHES],
        "frames_in_batch": False,
        "is_video": True,
    }
    layer = CrossAttentionDirection(CHANNELS, HEADS, window, "learned", layout, layout)
    query_np, key_np = _numpy_inputs(window, seed=3)
    key_np = key_np[:, :, :PATCHES, :CHANNELS]
    results = []
    for mode in ("triton", "off"):
        inputs = [torch.tensor(x, requires_grad=True) for x in (query_np, key_np)]
        with fused_attention(mode):
            out = layer(*inputs)
        (out * out).sum().backward()
        weight_grads = [w.value.grad.clone() for w in layer.trainable_weights]
        for w in layer.trainable_weights:
            w.value.grad = None
        results.append([out, inputs[0].grad, inputs[1].grad, *weight_grads])
    for got, want in zip(*results, strict=True):  # weight grads sum over tokens
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@only_torch
@pytest.mark.parametrize("window", ("space_time", "global"))
@pytest.mark.parametrize("mode", ("auto", "triton"))
def test_torch_global_windows_use_sdpa(window, mode):
    import torch

    query, key_value = (torch.tensor(x) for x in _numpy_inputs(window, seed=4))
    with fused_attention(mode):
        fused = fused_windowed_attention(query, key_value, window, HEADS)
    assert fused is not None
    plain = reference_windowed_attention(query, key_value, window, HEADS)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)


@only_torch
@pytest.mark.parametrize("window", ("time", "space"))
def test_torch_cpu_auto_uses_plain_path(window):
    import torch

    query, key_value = (torch.tensor(x) for x in _numpy_inputs(window))
    with fused_attention("auto"):
        assert fused_windowed_attention(query, key_value, window, HEADS) is None


# --- every backend --------------------------------------------------------------------


@pytest.mark.parametrize("window", ("time", "space", "space_time", "global"))
def test_off_mode_has_no_fused_path(window):
    query, key_value = _numpy_inputs(window)
    query, key_value = (
        keras.ops.convert_to_tensor(query),
        keras.ops.convert_to_tensor(key_value),
    )
    with fused_attention("off"):
        assert fused_windowed_attention(query, key_value, window, HEADS) is None


@pytest.mark.skipif(BACKEND != "jax", reason=f"JAX only ({BACKEND})")
@pytest.mark.parametrize("window", ("time", "space", "space_time", "global"))
def test_jax_dot_product_attention_equals_plain_path(window):
    import jax
    import jax.numpy as jnp

    query, key_value = (jnp.asarray(x) for x in _numpy_inputs(window, seed=5))
    assert fused_windowed_attention(query, key_value, window, HEADS) is not None

    def loss(fn, q, kv):
        out = fn(q, kv, window, HEADS)
        return jnp.sum(out * out), out

    results = []
    for fn in (windowed_cross_attention, reference_windowed_attention):
        grad_fn = jax.jit(
            jax.value_and_grad(
                lambda q, kv, f=fn: loss(f, q, kv), argnums=(0, 1), has_aux=True
            )
        )
        (_, out), grads = grad_fn(query, key_value)
        results.append((out, *grads))
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(
            np.asarray(got), np.asarray(want), atol=1e-4, rtol=1e-4
        )


@pytest.mark.skipif(BACKEND != "tensorflow", reason=f"TensorFlow only ({BACKEND})")
@pytest.mark.parametrize("window", ("time", "space", "space_time", "global"))
def test_tensorflow_has_no_fused_path(window):
    query, key_value = (keras.ops.convert_to_tensor(x) for x in _numpy_inputs(window))
    assert fused_windowed_attention(query, key_value, window, HEADS) is None


def test_mode_switch(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert fused_attention_mode() == "auto"
    monkeypatch.setenv(ENV_VAR, "TRITON")
    assert fused_attention_mode() == "triton"
    with fused_attention("off"):
        assert fused_attention_mode() == "off"
    assert fused_attention_mode() == "triton"
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(ValueError, match=ENV_VAR):
        fused_attention_mode()
    with pytest.raises(ValueError, match="mode"):
        with fused_attention("fast"):
            pass
