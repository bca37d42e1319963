"""The B-CA attention windows: one object per window kind (CAST, SPEC §5).

Both video streams share one token grid (frames T × patches N), so a window is a
choice of which tokens attend to which:

| kind | windows | query × keys | fused torch kernel |
|---|---|---|---|
| `"time"` | one per patch position (b, n) | T × T | `time_window_attention` (T2S) |
| `"space"` | one per frame (b, t) | N × N' | `space_window_attention` (S2T) |
| `"space_time"` | one per clip | T·N × T'·N' | none: whole-clip SDPA |
| `"global"` | one per clip, flat tokens | Lq × Lk | none: whole-clip SDPA |

A window owns everything that depends on its kind: which pairs of stream layouts
it can join (`validate`), the learned position embedding of one side
(`position_shape`, `add_position`), whether the exchange hands it flat tokens or
the `(B, T, N, C)` grid (`present`, `present_codes`, `restore`), how windows are
cut out of the tokens and put back (`group`, `ungroup`), and which fused kernel
runs it (`kernel`).

`group` / `ungroup` only reshape and transpose, through an `ArrayOps` pair of
functions, so one definition serves the plain `keras.ops` path (`KERAS_OPS`, also
on symbolic tensors), the JAX dispatch and numpy (`NUMPY_OPS`) and the pure torch
reference (`TORCH_OPS`). Layouts are the plain dicts of
`keras_ca2st.experts.stream_layout`; only their keys are read here.

Example:

>>> from keras_ca2st.kernels.windows import NUMPY_OPS, get_window
>>> import numpy as np
>>> window = get_window("time")
>>> q, kv = window.group(np.zeros((2, 8, 4, 16)), np.zeros((2, 8, 4, 32)), NUMPY_OPS)
>>> q.shape, kv.shape
((8, 8, 16), (8, 8, 32))
>>> window.ungroup(q, (2, 8, 4, 16), NUMPY_OPS).shape
(2, 8, 4, 16)
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from keras import ops


class ArrayOps(NamedTuple):
    """The two layout functions `group` / `ungroup` need, for one array library.

    Args:
        reshape: `(x, shape) → x` with a `-1` allowed in `shape`.
        transpose: `(x, axes) → x`, a full permutation of the axes.
    """

    reshape: Callable[[Any, tuple], Any]
    transpose: Callable[[Any, tuple], Any]


KERAS_OPS = ArrayOps(ops.reshape, ops.transpose)
"""`keras.ops`: backend tensors and symbolic `KerasTensor`s (the plain path)."""

NUMPY_OPS = ArrayOps(
    lambda x, shape: x.reshape(shape), lambda x, axes: x.transpose(axes)
)
"""Array methods of numpy and `jax.numpy` arrays (the JAX dispatch)."""

TORCH_OPS = ArrayOps(lambda x, shape: x.reshape(shape), lambda x, axes: x.permute(axes))
"""Tensor methods of torch (the torch reference and the benchmark baselines)."""


class Window:
    """Base of the window kinds; use `get_window(name)` to get one.

    Attributes:
        name: the window kind as written in configs (`"time"`, ...).
        kernel: name of the fused torch op in `keras_ca2st.kernels.ops` that runs
            this window, or `None` where whole-clip SDPA runs it.

    Example:
    ```python
    layout = {"prefix_tokens": 0, "grid": [8, 4], "frames_in_batch": False,
              "is_video": True}
    window = get_window("space")
    window.validate(layout, layout)
    window.position_shape(layout)                          # (4,)
    q, kv = window.group(np.ones((2, 8, 4, 16)), np.ones((2, 8, 4, 32)), NUMPY_OPS)
    q.shape, kv.shape                                      # (16, 4, 16), (16, 4, 32)
    ```
    """

    name = None
    kernel = None

    # --- stream layouts ---

    def validate(self, query_layout, key_layout, where="This cross-attention"):
        """Raise `ValueError` unless this window can join the two streams.

        Args:
            query_layout: `stream_layout` dict of the target (query) expert.
            key_layout: `stream_layout` dict of the source (key / value) expert.
            where: how the error names the direction, e.g. `"Direction 'a_to_b'"`.
        """
        if not (query_layout["is_video"] and key_layout["is_video"]):
            raise ValueError(
                f"{where} uses window {self.name!r}, but audio tokens have no frame "
                "grid; use 'global'."
            )
        self.check_grids(query_layout["grid"], key_layout["grid"])

    def check_grids(self, query_grid, key_grid):
        """Raise `ValueError` unless windows can be cut from these `(T, N)` grids."""

    def position_shape(self, layout):
        """Shape (without channels) of a learned position embedding for one side."""
        raise NotImplementedError

    def add_position(self, tokens, position):
        """`tokens` plus the `(positions, C)` embedding along this window's axis."""
        position = ops.cast(position, tokens.dtype)
        return tokens + self._broadcast_position(position, tokens)

    def _broadcast_position(self, position, tokens):
        raise NotImplementedError

    # --- how the exchange hands tokens to the window ---

    def flat_tokens(self, query_layout):
        """Whether the exchange passes flat `(B, L, C)` patch tokens, not the grid.

        Windows on the frame grid take video patches on their `(B, T, N, C)` grid;
        an audio target has no grid, so its tokens stay flat (only the lateral
        ablation gets there: `validate` refuses grid windows with audio).
        """
        return not query_layout["is_video"]

    def present(self, query, key, query_layout, key_layout):
        """Both sides' patch tokens (each in its expert's layout) as this window
        takes them: flattened where `flat_tokens`, else on the grid as they are."""
        if not self.flat_tokens(query_layout):
            return query, key
        return _flatten(query, query_layout), _flatten(key, key_layout)

    def present_codes(self, query_codes, key_codes, query_layout, key_layout):
        """Both sides' flat `(B, L, C)` time-interval codes shaped like `present`'s
        tokens."""
        if self.flat_tokens(query_layout):
            return query_codes, key_codes
        return _unflatten(query_codes, query_layout), _unflatten(key_codes, key_layout)

    def restore(self, attended, query_layout):
        """The attention output back in the target expert's patch layout."""
        if self.flat_tokens(query_layout):
            return _unflatten(attended, query_layout)
        return attended

    # --- windows ---

    def group(self, query, key_value, xp=KERAS_OPS):
        """Cut the windows: `(W, Lq, C)` queries and `(W, Lk, 2C)` keys / values.

        Args:
            query: `(B, T, N, C)` (`(B, Lq, C)` for `"global"`).
            key_value: `(B, T', N', 2C)` (`(B, Lk, 2C)` for `"global"`).
            xp: the `ArrayOps` of the arrays' library.
        """
        return self.cut(query, xp), self.cut(key_value, xp)

    def cut(self, tokens, xp=KERAS_OPS):
        """The windows of one side, `(B, T, N, C) → (W, L, C)`; `group` per tensor.

        For callers that keep keys and values apart (the plain path, the torch
        reference, the benchmark baselines): `cut(key)` and `cut(value)` are the
        halves of `group`'s key / value windows.
        """
        raise NotImplementedError

    def ungroup(self, out, query_shape, xp=KERAS_OPS):
        """Inverse of `group` for the queries: `(W, Lq, C') → query_shape[:-1] + (C',)`.

        `query_shape` is the shape `group` was given (its batch may be `None`); the
        last axis of `out` may differ from the query's (e.g. per-head values).
        """
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class TimeWindow(Window):
    """`"time"`: each patch position (b, n) attends along the frames (T2S in CAST).

    The T queries at `(b, ·, n)` attend to the T keys at `(b, ·, n)`, so both
    streams need the same `(T, N)` grid; the position embedding has one row per
    frame.
    """

    name = "time"
    kernel = "time_window_attention"

    def check_grids(self, query_grid, key_grid):
        if tuple(query_grid) != tuple(key_grid):
            raise ValueError(
                "The time window needs as many key positions as queries: the query "
                f"grid is {tuple(query_grid)}, the key grid {tuple(key_grid)}."
            )

    def position_shape(self, layout):
        return (layout["grid"][0],)

    def _broadcast_position(self, position, tokens):
        return position[None, :, None, :]

    def cut(self, tokens, xp=KERAS_OPS):
        # (B, T, N, C) → (B, N, T, C) → (B·N, T, C): fold the patch axis into W.
        windows = xp.transpose(tokens, (0, 2, 1, 3))
        return xp.reshape(windows, (-1, tokens.shape[1], tokens.shape[3]))

    def ungroup(self, out, query_shape, xp=KERAS_OPS):
        _, frames, patches = query_shape[:3]
        out = xp.reshape(out, (-1, patches, frames, out.shape[-1]))
        return xp.transpose(out, (0, 2, 1, 3))


class SpaceWindow(Window):
    """`"space"`: each frame (b, t) attends within itself (S2T in CAST).

    The N queries of frame `(b, t)` attend to the N' keys of the same frame, so
    both streams need the same frames; the position embedding has one row per
    patch.
    """

    name = "space"
    kernel = "space_window_attention"

    def check_grids(self, query_grid, key_grid):
        if query_grid[0] != key_grid[0]:
            raise ValueError(
                "The space window needs the same frames on both sides: the query "
                f"grid is {tuple(query_grid)}, the key grid {tuple(key_grid)}."
            )

    def position_shape(self, layout):
        return (layout["grid"][1],)

    def _broadcast_position(self, position, tokens):
        return position[None, None, :, :]

    def cut(self, tokens, xp=KERAS_OPS):
        # (B, T, N, C) → (B·T, N, C): fold the frame axis into W.
        return xp.reshape(tokens, (-1, tokens.shape[2], tokens.shape[3]))

    def ungroup(self, out, query_shape, xp=KERAS_OPS):
        return xp.reshape(out, (-1, *query_shape[1:3], out.shape[-1]))


class _ClipWindow(Window):
    """One window per clip: every query token attends to every key token."""

    def cut(self, tokens, xp=KERAS_OPS):
        return xp.reshape(tokens, (-1, math.prod(tokens.shape[1:-1]), tokens.shape[-1]))

    def ungroup(self, out, query_shape, xp=KERAS_OPS):
        return xp.reshape(out, (-1, *query_shape[1:-1], out.shape[-1]))


class SpaceTimeWindow(_ClipWindow):
    """`"space_time"`: every query of the clip attends to every key of the clip.

    Tokens stay on the `(B, T, N, C)` grid (any key grid); the position embedding
    has one row per grid position, `T·N`.
    """

    name = "space_time"

    def position_shape(self, layout):
        return (layout["grid"][0] * layout["grid"][1],)

    def _broadcast_position(self, position, tokens):
        # (T·N, C) onto the (B, T, N, C) grid, frame-major like the tokens.
        return ops.reshape(position, (1, tokens.shape[1], tokens.shape[2], -1))


class GlobalWindow(_ClipWindow):
    """`"global"`: flat token sequences of any lengths, one window per clip.

    The only window between an audio and a video expert (CAVA, CA²ST): tokens are
    flat `(B, L, C)` on both sides and the position embedding has one row per
    token (`F·T` for audio, `T·N` for video).
    """

    name = "global"

    def validate(self, query_layout, key_layout, where="This cross-attention"):
        """Any two streams: no grid is needed."""

    def position_shape(self, layout):
        return (int(layout["grid"][0] * layout["grid"][1]),)

    def _broadcast_position(self, position, tokens):
        return position[None]

    def flat_tokens(self, query_layout):
        return True


_WINDOWS = {
    window.name: window
    for window in (TimeWindow(), SpaceWindow(), SpaceTimeWindow(), GlobalWindow())
}
WINDOWS = tuple(_WINDOWS)
"""The window kinds, as written in configs."""


def get_window(window):
    """The `Window` for a kind name (a `Window` is returned as it is).

    Raises:
        ValueError: for an unknown name, listing the kinds.
    """
    if isinstance(window, Window):
        return window
    if window not in _WINDOWS:
        raise ValueError(f"Unknown window {window!r}; expected one of {WINDOWS}.")
    return _WINDOWS[window]


def _flatten(patches, layout):
    """Patch tokens in `layout` as one sequence per clip, `(B, L, C)`."""
    if not layout["is_video"]:
        return patches
    return ops.reshape(patches, (-1, math.prod(layout["grid"]), patches.shape[-1]))


def _unflatten(tokens, layout):
    """Inverse of `_flatten`."""
    if not layout["is_video"]:
        return tokens
    return ops.reshape(tokens, (-1, *layout["grid"], tokens.shape[-1]))
