"""Pictures of attention maps (`keras_ca2st.models.attention_maps`).

- `plot_frame_attention`: the clip's frames with the attention each patch
  received as a heat map (S2T, audio→visual, space-time, LAVISH latents);
- `plot_time_strip`: T2S, for each patch position the weights over frames;
- `plot_audio_attention`: the spectrogram with the attention each audio
  patch received from the visual tokens (and LAVISH latents);
- `explain_figures`: all that apply to one clip's maps, written as PNGs.

Heat maps show what keys *received*: a map's weights averaged over heads and
queries (and over blocks unless one is chosen), so each window's heat sums to
1. Audio patches are drawn as an even tiling of the spectrogram (AST's patches
overlap; the tiling shows each patch's centre region).
"""

import numpy as np

from keras_ca2st.models.attention_maps import AttentionMaps
from keras_ca2st.reports.figures import finish, new_figure


def received_attention(maps, block=None):
    """Attention each key received, averaged over heads, queries and the
    selected blocks: `(batch, windows, keys)`.

    Args:
        maps: `AttentionMap`s of one layer kind (e.g. `maps.select(name)`).
        block: one block, or `None` to average over all of them.
    """
    chosen = [m for m in maps if block is None or m.block == block]
    if not chosen:
        raise ValueError(f"No attention map of block {block}.")
    return np.mean([m.received() for m in chosen], axis=0)


def video_key_heat(maps, block=None, sample=0):
    """`(T, rows, columns)` heat over a video expert's patch grid, from maps
    whose keys are video patches (`"space"`, `"space_time"`, `"global"`)."""
    first = maps[0]
    frames, patches = first.key_grid
    heat = received_attention(maps, block)[sample]  # (windows, keys)
    heat = heat.reshape(frames, patches)  # one window per frame, or all frames
    side = int(round(np.sqrt(patches)))
    if side * side != patches:
        raise ValueError(f"{patches} patches are not a square grid.")
    return heat.reshape(frames, side, side)


def object_attention_share(maps, object_fraction, block=None):
    """How much attention mass lands on an object, and the object's area share.

    Args:
        maps: maps whose keys are video patches (e.g. S2T).
        object_fraction: `(batch, T, N)` fraction of each key patch the object
            covers (`patch_fractions` of a mask).
        block: one block or `None` (the mean over blocks).

    Returns:
        `(mass, area)`: the mean over clips and frames of the attention mass
        on the object and of the object's share of the frame.
    """
    heat = np.stack(
        [
            video_key_heat(maps, block, sample).reshape(object_fraction.shape[1:])
            for sample in range(object_fraction.shape[0])
        ]
    )
    heat = heat / heat.sum(axis=-1, keepdims=True)
    mass = float((heat * object_fraction).sum(axis=-1).mean())
    area = float(object_fraction.mean())
    return mass, area


def patch_fractions(mask, patch_size):
    """`(..., H, W)` boolean mask → `(..., N)` fraction of each patch it covers,
    patches row-major as the experts number them."""
    *lead, height, width = mask.shape
    rows, columns = height // patch_size, width // patch_size
    cells = mask[..., : rows * patch_size, : columns * patch_size].reshape(
        *lead, rows, patch_size, columns, patch_size
    )
    return cells.mean(axis=(-3, -1)).reshape(*lead, rows * columns)


def frames_for_grid(video, steps):
    """The frame of `video` (`(F, H, W, 3)`) shown for each of `steps` grid
    time steps: the middle frame of each step's share of the clip."""
    per_step = max(len(video) // steps, 1)
    return video[
        [min(t * per_step + per_step // 2, len(video) - 1) for t in range(steps)]
    ]


def plot_frame_attention(video, heat, path=None, title=None, max_frames=8):
    """Frames with heat-map overlays.

    Args:
        video: `(F, H, W, 3)` frames, RGB in `[0, 1]` or uint8.
        heat: `(T, rows, columns)` heat per grid time step (`video_key_heat`).
        path: PNG to write (else the figure is returned).
        title: figure title.
        max_frames: at most this many time steps, evenly picked.
    """
    frames = _as_float_image(frames_for_grid(video, len(heat)))
    steps = np.linspace(0, len(heat) - 1, min(len(heat), max_frames)).round()
    steps = steps.astype(int)
    figure = new_figure((2.2 * len(steps), 2.6))
    axes = figure.subplots(1, len(steps), squeeze=False)
    top = heat.max() or 1.0
    for axis, step in zip(axes[0], steps, strict=True):
        axis.imshow(frames[step])
        axis.imshow(
            _upsample(heat[step], frames.shape[1:3]),
            cmap="inferno",
            alpha=0.55,
            vmin=0,
            vmax=top,
        )
        axis.set_title(f"t = {step}", fontsize=8)
        axis.axis("off")
    return finish(figure, path, title)


def plot_time_strip(maps, path=None, block=None, sample=0, title=None):
    """T2S: for each patch position, the attention over the frames.

    Rows are patch positions, columns key frames; each row averages that
    patch's queries (every frame) and heads, and sums to 1.
    """
    strip = received_attention(maps, block)[sample]  # (patches, frames)
    figure = new_figure((4 + 0.2 * strip.shape[1], 4))
    axis = figure.subplots()
    image = axis.imshow(strip, aspect="auto", cmap="viridis", interpolation="nearest")
    axis.set_xlabel("key frame (grid time step)")
    axis.set_ylabel("patch position")
    figure.colorbar(image, ax=axis, label="attention")
    return finish(figure, path, title)


def plot_audio_attention(fbank, heat, path=None, title=None):
    """The spectrogram with the attention its patches received.

    Args:
        fbank: `(frames, mel_bins)` log-mel features.
        heat: `(frequency_patches, time_patches)` heat over the audio patch
            grid (`received_attention(...)` reshaped to the key grid).
    """
    spectrogram = np.asarray(fbank, "float32").T  # (mel bins, frames)
    figure = new_figure((8, 4.5))
    axes = figure.subplots(2, 1, sharex=True)
    # origin="lower": mel bin 0 (the lowest frequencies) at the bottom.
    axes[0].imshow(spectrogram, aspect="auto", cmap="magma", origin="lower")
    axes[0].set_ylabel("mel bin")
    axes[0].set_title("input spectrogram", fontsize=9)
    overlay = _upsample(np.asarray(heat), spectrogram.shape)
    axes[1].imshow(spectrogram, aspect="auto", cmap="gray", origin="lower")
    axes[1].imshow(overlay, aspect="auto", cmap="inferno", alpha=0.6, origin="lower")
    axes[1].set_xlabel("audio frame (10 ms)")
    axes[1].set_ylabel("mel bin")
    axes[1].set_title("attention received from the visual tokens", fontsize=9)
    return finish(figure, path, title)


def explain_figures(maps, inputs, spec, output_dir, stem="clip", sample=0):
    """Every picture that applies to one clip's maps, written as PNGs.

    Args:
        maps: `AttentionMaps` of the model on `inputs`.
        inputs: the model's inputs (numpy, batched), as `attention_maps` got them.
        spec: the model's `ClipSpec` (to undo the frames' normalisation).
        output_dir: where the PNGs go.
        stem: file-name prefix.
        sample: which clip of the batch.

    Returns:
        dict figure name → path.
    """
    import os

    os.makedirs(output_dir, exist_ok=True)
    video = None
    if "video" in inputs:
        video = np.asarray(inputs["video"][sample]) * spec.std + spec.mean
    written = {}

    def save(name, draw, *args, **kwargs):
        path = os.path.join(output_dir, f"{stem}_{name}.png")
        draw(*args, path=path, **kwargs)
        written[name] = path

    for name in maps.names:
        selected = AttentionMaps(maps.select(name))
        first = selected[0]
        if first.window == "time":
            save(name, plot_time_strip, selected, sample=sample, title=_title(first))
        elif first.window is not None and first.key_is_video and video is not None:
            heat = video_key_heat(selected, sample=sample)
            save(name, plot_frame_attention, video, heat, title=_title(first))
        elif first.window is not None and "audio" in inputs:
            heat = received_attention(selected)[sample].reshape(first.key_grid)
            audio = inputs["audio"][sample]
            save(name, plot_audio_attention, audio, heat, title=_title(first))
        elif first.key_is_video and video is not None:  # LAVISH latents read frames
            heat = received_attention(selected)[sample]  # (frames, tokens)
            patches = _square_tail(heat.shape[-1])
            if patches:
                side = int(round(np.sqrt(patches)))
                heat = heat[:, -patches:].reshape(len(heat), side, side)
                stem_name = name.replace("/", "_")
                save(stem_name, plot_frame_attention, video, heat, title=_title(first))
    return written


def _title(amap):
    if amap.window is None:
        return f"LAVISH {amap.name} (mean over blocks)"
    return (
        f"{amap.name}: {amap.target} queries over {amap.source} keys, "
        f"window {amap.window!r} (mean over blocks)"
    )


def _square_tail(tokens):
    """The patch count after prefix tokens when it is a square (LAVISH frames)."""
    for prefix in (0, 1, 2):
        side = int(round(np.sqrt(tokens - prefix)))
        if side > 0 and side * side == tokens - prefix:
            return side * side
    return None


def _upsample(grid, shape):
    """Nearest-neighbour resize of a 2-D grid to `shape` (rows, columns)."""
    grid = np.asarray(grid)
    rows = np.minimum(
        np.arange(shape[0]) * grid.shape[0] // shape[0], grid.shape[0] - 1
    )
    columns = np.minimum(
        np.arange(shape[1]) * grid.shape[1] // shape[1], grid.shape[1] - 1
    )
    return grid[rows][:, columns]


def _as_float_image(frames):
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames.astype("float32") / 255.0
    return np.clip(frames, 0.0, 1.0)
