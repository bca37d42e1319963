"""How an expert's token stream splits into prefix tokens and patch tokens.

A layout is a plain dict, so layers that work on several experts' streams (the
fusion modules) can store it in their config:

- `prefix_tokens`: CLS-like tokens before the patches (CLIP 1, VideoMAE 0, AST 2);
- `grid`: `[T, N]` frames × patches for video, `[F, T]` frequency × time for audio;
- `frames_in_batch`: the stream folds frames into the batch, `(B·T, p + N, C)`
  (CLIP); otherwise it is `(B, p + ∏grid, C)`;
- `is_video`: patch tokens are exposed on the `(B, T, N, C)` grid; audio patch
  tokens stay flat, `(B, F·T, C)`, frequency-major.
"""

import numpy as np
from keras import ops


def make_layout(prefix_tokens, grid, frames_in_batch, is_video):
    return {
        "prefix_tokens": int(prefix_tokens),
        "grid": [int(g) for g in grid],
        "frames_in_batch": bool(frames_in_batch),
        "is_video": bool(is_video),
    }


def split_stream(stream, layout):
    """`stream → (prefix or None, patches)`; works for any channel width."""
    prefix_count = layout["prefix_tokens"]
    channels = stream.shape[-1]
    prefix = stream[:, :prefix_count, :] if prefix_count else None
    if layout["frames_in_batch"]:
        frames, patches = layout["grid"]
        grid = ops.reshape(stream, (-1, frames, prefix_count + patches, channels))
        return prefix, grid[:, :, prefix_count:, :]
    patches = stream[:, prefix_count:, :] if prefix_count else stream
    if layout["is_video"]:
        patches = ops.reshape(patches, (-1, *layout["grid"], channels))
    return prefix, patches


def merge_stream(prefix, patches, layout):
    """Inverse of `split_stream`."""
    channels = patches.shape[-1]
    if layout["frames_in_batch"]:
        patches = ops.reshape(patches, (-1, layout["grid"][1], channels))
    elif layout["is_video"]:
        patches = ops.reshape(patches, (-1, int(np.prod(layout["grid"])), channels))
    if prefix is None:
        return patches
    return ops.concatenate([prefix, patches], axis=1)


def patch_time_steps(layout, num_intervals):
    """The time-interval index of every patch token, in flattened order.

    Video: one interval per time step, so `num_intervals` must equal `T`. Audio:
    the spectrogram columns are split into `num_intervals` equal parts; every
    frequency row of a column shares the column's interval (frequency-major).
    """
    if layout["is_video"]:
        frames, patches = layout["grid"]
        if num_intervals != frames:
            raise ValueError(
                f"The video expert has {frames} time steps but {num_intervals} "
                "time intervals were given; give one [start, end] per time step."
            )
        return np.repeat(np.arange(frames), patches)
    rows, columns = layout["grid"]
    return np.tile((np.arange(columns) * num_intervals) // columns, rows)
