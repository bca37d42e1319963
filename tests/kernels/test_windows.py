"""The window kinds of `keras_ca2st.kernels.windows` against explicit constructions.

Every window's `group` / `cut` is compared with windows built index by index, its
`ungroup` with the inverse, on numpy arrays (the JAX dispatch's array methods), on
the current backend through `keras.ops` (eager and symbolic) and, in the torch
pass, through the torch tensor methods the reference uses. Position shapes, the
way the exchange presents tokens and the layout validation are checked too.
"""

import keras
import numpy as np
import pytest

from keras_ca2st.kernels.windows import (
    KERAS_OPS,
    NUMPY_OPS,
    TORCH_OPS,
    WINDOWS,
    GlobalWindow,
    Window,
    get_window,
)
from tests.test_case import BACKEND, to_numpy

B, T, N, N_KEY, C = 2, 3, 5, 7, 4

VIDEO = {"prefix_tokens": 1, "grid": [T, N], "frames_in_batch": True, "is_video": True}
VIDEO_WIDE = dict(VIDEO, grid=[T, N_KEY], frames_in_batch=False, prefix_tokens=0)
AUDIO = {
    "prefix_tokens": 2,
    "grid": [4, 6],
    "frames_in_batch": False,
    "is_video": False,
}


def _key_patches(name):
    return N if name == "time" else N_KEY


def _inputs(name, seed=0):
    """A query and a packed key / value of distinct values, shaped for `name`."""
    rng = np.random.default_rng(seed)
    if name == "global":
        return rng.standard_normal((B, 11, C)), rng.standard_normal((B, 13, 2 * C))
    query = rng.standard_normal((B, T, N, C))
    key_value = rng.standard_normal((B, T, _key_patches(name), 2 * C))
    return query, key_value


def _explicit_windows(name, x):
    """The windows of `x` built index by index: `(W, L, C)`."""
    if name == "global":
        return np.stack([x[b] for b in range(x.shape[0])])
    batch, frames, patches = x.shape[:3]
    if name == "time":  # window (b, n): the frames of patch n
        return np.stack(
            [
                np.stack([x[b, t, n] for t in range(frames)])
                for b in range(batch)
                for n in range(patches)
            ]
        )
    if name == "space":  # window (b, t): the patches of frame t
        return np.stack([x[b, t] for b in range(batch) for t in range(frames)])
    # "space_time": window b, tokens frame-major
    return np.stack(
        [
            np.stack([x[b, t, n] for t in range(frames) for n in range(patches)])
            for b in range(batch)
        ]
    )


@pytest.mark.parametrize("name", WINDOWS)
def test_group_equals_explicit_windows_and_ungroup_inverts_it(name):
    window = get_window(name)
    query, key_value = _inputs(name)
    q, kv = window.group(query, key_value, NUMPY_OPS)
    np.testing.assert_array_equal(q, _explicit_windows(name, query))
    np.testing.assert_array_equal(kv, _explicit_windows(name, key_value))
    # `cut` per tensor gives the key and value halves of `group`'s windows.
    np.testing.assert_array_equal(
        window.cut(key_value[..., :C], NUMPY_OPS), kv[..., :C]
    )
    np.testing.assert_array_equal(window.ungroup(q, query.shape, NUMPY_OPS), query)
    # The output may have another width than the query (e.g. one value per head).
    narrow = q[..., :1]
    np.testing.assert_array_equal(
        window.ungroup(narrow, query.shape, NUMPY_OPS), query[..., :1]
    )


@pytest.mark.parametrize("name", WINDOWS)
def test_keras_ops_group_matches_numpy_eager_and_symbolic(name):
    window = get_window(name)
    query, key_value = _inputs(name, seed=1)
    q, kv = window.group(
        keras.ops.convert_to_tensor(query), keras.ops.convert_to_tensor(key_value)
    )
    np.testing.assert_allclose(to_numpy(q), _explicit_windows(name, query), atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(kv), _explicit_windows(name, key_value), atol=1e-6
    )
    back = window.ungroup(q, query.shape, KERAS_OPS)
    np.testing.assert_allclose(to_numpy(back), query, atol=1e-6)

    # Functional-model construction: the batch is unknown, the rest is static.
    sym_q = keras.KerasTensor((None, *query.shape[1:]))
    sym_kv = keras.KerasTensor((None, *key_value.shape[1:]))
    q, kv = window.group(sym_q, sym_kv)
    expected_q = _explicit_windows(name, query).shape[1:]
    assert tuple(q.shape[1:]) == expected_q
    assert tuple(kv.shape[1:]) == _explicit_windows(name, key_value).shape[1:]
    assert tuple(window.ungroup(q, sym_q.shape).shape) == (None, *query.shape[1:])


@pytest.mark.skipif(BACKEND != "torch", reason=f"torch tensors: torch pass ({BACKEND})")
@pytest.mark.parametrize("name", WINDOWS)
def test_torch_ops_group_matches_numpy_on_a_strided_view(name):
    import torch

    window = get_window(name)
    query, key_value = _inputs(name, seed=2)
    # The query as the kernels see it: a CLS-sliced view of a wider stream.
    padded = np.concatenate([np.zeros_like(query[..., :1, :]), query], axis=-2)
    view = torch.tensor(padded)[..., 1:, :]
    q, kv = window.group(view, torch.tensor(key_value), TORCH_OPS)
    np.testing.assert_array_equal(q.numpy(), _explicit_windows(name, query))
    np.testing.assert_array_equal(kv.numpy(), _explicit_windows(name, key_value))
    back = window.ungroup(q, view.shape, TORCH_OPS)
    np.testing.assert_array_equal(back.numpy(), query)


def test_position_shapes():
    assert get_window("time").position_shape(VIDEO) == (T,)
    assert get_window("space").position_shape(VIDEO) == (N,)
    assert get_window("space").position_shape(VIDEO_WIDE) == (N_KEY,)
    assert get_window("space_time").position_shape(VIDEO) == (T * N,)
    assert get_window("global").position_shape(VIDEO) == (T * N,)
    assert get_window("global").position_shape(AUDIO) == (4 * 6,)


@pytest.mark.parametrize("name", WINDOWS)
def test_add_position_runs_along_the_window_axis(name):
    window = get_window(name)
    tokens, _ = _inputs(name, seed=3)
    layout = VIDEO if name != "global" else dict(AUDIO, grid=[1, 11])
    rng = np.random.default_rng(4)
    position = rng.standard_normal((*window.position_shape(layout), C))
    got = to_numpy(window.add_position(keras.ops.convert_to_tensor(tokens), position))
    expected = tokens.copy()
    if name == "time":
        for t in range(T):
            expected[:, t] += position[t]
    elif name == "space":
        for n in range(N):
            expected[:, :, n] += position[n]
    elif name == "space_time":
        for t in range(T):
            for n in range(N):
                expected[:, t, n] += position[t * N + n]
    else:
        expected += position
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_the_exchange_presents_flat_tokens_only_to_the_global_window():
    rng = np.random.default_rng(5)
    video = rng.standard_normal((B, T, N, C)).astype("float32")
    audio = rng.standard_normal((B, 24, C)).astype("float32")
    codes = rng.standard_normal((B, T * N, C)).astype("float32")
    window = get_window("global")
    query, key = window.present(video, audio, VIDEO, AUDIO)
    np.testing.assert_array_equal(to_numpy(query), video.reshape(B, T * N, C))
    np.testing.assert_array_equal(to_numpy(key), audio)
    query_codes, key_codes = window.present_codes(codes, audio, VIDEO, AUDIO)
    assert query_codes is codes and key_codes is audio
    restored = window.restore(keras.ops.convert_to_tensor(query), VIDEO)
    np.testing.assert_array_equal(to_numpy(restored), video)
    for name in ("time", "space", "space_time"):
        window = get_window(name)
        query, key = window.present(video, video, VIDEO, VIDEO)
        assert query is video and key is video
        query_codes, _ = window.present_codes(codes, codes, VIDEO, VIDEO)
        np.testing.assert_array_equal(to_numpy(query_codes), codes.reshape(video.shape))
        assert window.restore(video, VIDEO) is video


def test_validation_against_the_stream_layouts():
    for name in ("time", "space", "space_time"):
        with pytest.raises(
            ValueError,
            match=(
                f"Direction 'audio_to_spatial' uses window '{name}', but audio "
                "tokens have no frame grid; use 'global'"
            ),
        ):
            get_window(name).validate(VIDEO, AUDIO, "Direction 'audio_to_spatial'")
        with pytest.raises(ValueError, match="no frame grid"):
            get_window(name).validate(AUDIO, VIDEO)
    with pytest.raises(ValueError, match="as many key positions as queries"):
        get_window("time").validate(VIDEO, VIDEO_WIDE)
    with pytest.raises(ValueError, match="same frames"):
        get_window("space").validate(VIDEO, dict(VIDEO, grid=[T + 1, N]))
    # What every window accepts.
    get_window("time").validate(VIDEO, dict(VIDEO, frames_in_batch=False))
    get_window("space").validate(VIDEO, VIDEO_WIDE)
    get_window("space_time").validate(VIDEO, dict(VIDEO, grid=[T + 1, N_KEY]))
    get_window("global").validate(VIDEO, AUDIO)
    get_window("global").validate(AUDIO, AUDIO)


def test_get_window_and_kernel_names():
    from keras_ca2st import kernels

    assert WINDOWS == ("time", "space", "space_time", "global")
    for name in WINDOWS:
        window = get_window(name)
        assert isinstance(window, Window) and window.name == name
        assert get_window(window) is window
        assert window.kernel is None or callable(getattr(kernels, window.kernel))
    assert get_window("time").kernel == "time_window_attention"
    assert get_window("space").kernel == "space_window_attention"
    assert get_window("space_time").kernel is None
    assert isinstance(get_window("global"), GlobalWindow)
    with pytest.raises(
        ValueError,
        match=r"Unknown window 'spacetime'; expected one of \('time', 'space', "
        r"'space_time', 'global'\)",
    ):
        get_window("spacetime")
