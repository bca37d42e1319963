"""Which frames a clip uses, and the time intervals the Time-Interval MLP sees.

Two temporal sampling schemes, as in the CAST/VideoMAE reference loaders
(SPEC section 10):

- Dense (Kinetics and the audio-visual sets): `num_frames` frames `stride`
  apart in a random window for training; evenly spaced windows for testing.
- Uniform (SSV2, EK100; TSN-style): the video is cut into `num_frames` equal
  segments and one frame is taken from each; a random frame for training,
  segment starts / centres for the test views.

All functions work on frame indices `[0, num_frames_in_video)` and return
int64 arrays of length `num_frames`. Randomness comes from an explicit
`numpy.random.Generator`, so a seed makes a run reproducible.
"""

import numpy as np

SAMPLING_SCHEMES = ("dense", "uniform")


def _strided_indices_with_padding(num_video_frames, num_frames, stride):
    # Short videos: every `stride`-th frame from the start, then repeat the
    # last one (VideoMAE's loader pads the same way).
    indices = list(range(0, num_video_frames, stride))[:num_frames]
    indices += [indices[-1]] * (num_frames - len(indices))
    return np.asarray(indices, dtype=np.int64)


def dense_train_indices(num_video_frames, rng, num_frames=16, stride=4):
    """Random dense clip: `num_frames` frames exactly `stride` apart.

    The window start is uniform over every position where the whole clip
    fits. Videos shorter than the clip span take every `stride`-th frame from
    the start and repeat the last one. (The reference spreads 16 frames over
    a 64-frame window with `linspace`, which gives gaps of 4 or 5; this uses
    the exact stride the paper describes.)

    Args:
        num_video_frames: frames in the video (or the annotated segment).
        rng: `numpy.random.Generator`.
        num_frames: frames per clip.
        stride: gap between sampled frames.

    Returns:
        int64 array `(num_frames,)` of frame indices.

    Example:

    >>> import numpy as np
    >>> indices = dense_train_indices(100, np.random.default_rng(0))
    >>> np.diff(indices).tolist() == [4] * 15
    True
    """
    _check_video_length(num_video_frames)
    span = (num_frames - 1) * stride + 1
    if num_video_frames < span:
        return _strided_indices_with_padding(num_video_frames, num_frames, stride)
    start = int(rng.integers(0, num_video_frames - span + 1))
    return start + stride * np.arange(num_frames, dtype=np.int64)


def dense_test_indices(
    num_video_frames, clip_index, num_clips, num_frames=16, stride=4
):
    """Evenly spaced dense clip number `clip_index` of `num_clips`.

    Follows the reference test loader: take every `stride`-th frame of the
    video, then cut `num_clips` windows of `num_frames` consecutive entries
    whose starts are spread evenly from the first to the last possible one.
    With one clip the window is centred.

    Example:

    >>> dense_test_indices(100, clip_index=0, num_clips=2, num_frames=4)
    array([ 0,  4,  8, 12])
    >>> dense_test_indices(100, clip_index=1, num_clips=2, num_frames=4)
    array([84, 88, 92, 96])
    """
    _check_video_length(num_video_frames)
    _check_clip_index(clip_index, num_clips)
    strided = np.arange(0, num_video_frames, stride, dtype=np.int64)
    if strided.shape[0] < num_frames:
        return _strided_indices_with_padding(num_video_frames, num_frames, stride)
    last_start = strided.shape[0] - num_frames
    if num_clips == 1:
        start = last_start // 2
    else:
        start = int(clip_index * last_start / (num_clips - 1))
    return strided[start : start + num_frames]


def _segment_for_short_video(num_video_frames, num_frames):
    # Fewer frames than segments: segment i maps to frame floor(i * n / S),
    # so every frame is used and repeated in order. (The reference returns
    # frame 0 sixteen times here, a dead-branch bug.)
    return np.floor(np.arange(num_frames) * num_video_frames / num_frames).astype(
        np.int64
    )


def uniform_train_indices(num_video_frames, rng, num_frames=16):
    """TSN-style clip: one random frame from each of `num_frames` equal segments.

    Segment `i` covers `[i * d, (i + 1) * d)` with `d = n // num_frames`, as in
    the reference (the last `n % num_frames` frames are never drawn).

    Example:

    >>> import numpy as np
    >>> indices = uniform_train_indices(160, np.random.default_rng(0))
    >>> bool(np.all(indices // 10 == np.arange(16)))
    True
    """
    _check_video_length(num_video_frames)
    segment_length = num_video_frames // num_frames
    if segment_length == 0:
        return _segment_for_short_video(num_video_frames, num_frames)
    offsets = rng.integers(0, segment_length, size=num_frames)
    return np.arange(num_frames, dtype=np.int64) * segment_length + offsets


def uniform_test_indices(num_video_frames, clip_index, num_clips, num_frames=16):
    """Deterministic TSN clip number `clip_index` of `num_clips`.

    With segment length `tick = n / num_frames`, clip `k` takes frame
    `int(tick * (i + k / num_clips))` of segment `i`, and a single clip takes
    the segment centres. For the reference's two test clips this gives the
    segment starts (`k = 0`) and the segment centres (`k = 1`).

    Example:

    >>> uniform_test_indices(32, clip_index=0, num_clips=2, num_frames=4)
    array([ 0,  8, 16, 24])
    >>> uniform_test_indices(32, clip_index=1, num_clips=2, num_frames=4)
    array([ 4, 12, 20, 28])
    """
    _check_video_length(num_video_frames)
    _check_clip_index(clip_index, num_clips)
    if num_video_frames < num_frames:
        return _segment_for_short_video(num_video_frames, num_frames)
    tick = num_video_frames / num_frames
    phase = 0.5 if num_clips == 1 else clip_index / num_clips
    # Written as the reference does (tick / 2 + tick * i) so that float
    # rounding at segment boundaries picks the same frames.
    indices = (tick * phase + tick * np.arange(num_frames)).astype(np.int64)
    return np.minimum(indices, num_video_frames - 1)


def sample_frame_indices(
    num_video_frames,
    scheme,
    num_frames=16,
    stride=4,
    rng=None,
    clip_index=0,
    num_clips=1,
):
    """Frame indices for one clip: random when `rng` is given, else view `clip_index`.

    Args:
        num_video_frames: frames available.
        scheme: `"dense"` or `"uniform"`.
        num_frames: frames per clip.
        stride: dense sampling stride (ignored by `"uniform"`).
        rng: `numpy.random.Generator` for training clips; `None` selects the
            deterministic test view `clip_index` of `num_clips`.
        clip_index: test view index.
        num_clips: number of test views.

    Returns:
        int64 array `(num_frames,)`.

    Example:

    >>> sample_frame_indices(64, "dense", num_frames=4, stride=4)
    array([24, 28, 32, 36])
    """
    if scheme == "dense":
        if rng is not None:
            return dense_train_indices(num_video_frames, rng, num_frames, stride)
        return dense_test_indices(
            num_video_frames, clip_index, num_clips, num_frames, stride
        )
    if scheme == "uniform":
        if rng is not None:
            return uniform_train_indices(num_video_frames, rng, num_frames)
        return uniform_test_indices(num_video_frames, clip_index, num_clips, num_frames)
    raise ValueError(f"scheme must be one of {SAMPLING_SCHEMES}; got {scheme!r}.")


def video_time_intervals(frame_times, frame_durations, origin, frames_per_interval=2):
    """`[start, end]` of each group of sampled frames, relative to `origin`.

    The temporal expert's tubelet `t` covers sampled frames `2t` and `2t+1`;
    its interval runs from the first frame's timestamp to the end of the
    second frame (its timestamp plus its duration). Times are in seconds,
    measured from `origin` (the start of the audio window).

    Args:
        frame_times: `(num_frames,)` timestamps of the sampled frames.
        frame_durations: `(num_frames,)` durations of the sampled frames.
        origin: time origin in seconds.
        frames_per_interval: frames per interval (the tubelet size, 2).

    Returns:
        float32 array `(num_frames // frames_per_interval, 2)`.

    Example:

    >>> import numpy as np
    >>> times = np.arange(4) * 0.5
    >>> video_time_intervals(times, np.full(4, 0.5), origin=0.25).tolist()
    [[-0.25, 0.75], [0.75, 1.75]]
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    frame_durations = np.asarray(frame_durations, dtype=np.float64)
    groups = frame_times.shape[0] // frames_per_interval
    used = groups * frames_per_interval
    starts = frame_times[:used:frames_per_interval]
    last = slice(frames_per_interval - 1, used, frames_per_interval)
    ends = frame_times[last] + frame_durations[last]
    return (np.stack([starts, ends], axis=-1) - origin).astype(np.float32)


def audio_time_intervals(window_seconds, num_intervals=8):
    """The audio window `[0, window_seconds]` split into equal intervals.

    Example:

    >>> audio_time_intervals(8.0, num_intervals=4).tolist()
    [[0.0, 2.0], [2.0, 4.0], [4.0, 6.0], [6.0, 8.0]]
    """
    edges = np.linspace(0.0, window_seconds, num_intervals + 1)
    return np.stack([edges[:-1], edges[1:]], axis=-1).astype(np.float32)


def _check_video_length(num_video_frames):
    if num_video_frames < 1:
        raise ValueError(f"A video needs at least one frame; got {num_video_frames}.")


def _check_clip_index(clip_index, num_clips):
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index must be in [0, {num_clips}); got {clip_index}.")
