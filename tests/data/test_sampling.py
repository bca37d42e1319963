"""Temporal sampling: the frame indices each scheme must produce."""

import numpy as np
import pytest

from keras_ca2st.data import sampling


def test_dense_train_is_stride_4_in_a_random_window():
    starts = set()
    for seed in range(200):
        indices = sampling.dense_train_indices(100, np.random.default_rng(seed))
        assert indices.shape == (16,) and indices.dtype == np.int64
        assert np.all(np.diff(indices) == 4)
        assert 0 <= indices[0] and indices[-1] <= 99
        starts.add(int(indices[0]))
    # Start is uniform over 0..(100 - 61): every position is reachable.
    assert starts == set(range(40))


def test_dense_train_is_reproducible_from_the_seed():
    first = sampling.dense_train_indices(500, np.random.default_rng(7))
    again = sampling.dense_train_indices(500, np.random.default_rng(7))
    other = sampling.dense_train_indices(500, np.random.default_rng(8))
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


def test_dense_test_windows_are_evenly_spaced():
    # Reference: strided = range(0, n, 4); start_k = int(k * (len - 16) / (K - 1)).
    num_video_frames, num_clips = 300, 5
    strided = np.arange(0, num_video_frames, 4)
    step = (len(strided) - 16) / (num_clips - 1)
    for clip in range(num_clips):
        indices = sampling.dense_test_indices(num_video_frames, clip, num_clips)
        start = int(clip * step)
        assert indices.tolist() == strided[start : start + 16].tolist()
    assert sampling.dense_test_indices(300, 0, 5)[0] == 0
    assert sampling.dense_test_indices(300, 4, 5)[-1] == 296  # last strided frame
    centre = sampling.dense_test_indices(300, 0, 1)
    assert centre[0] == 4 * ((75 - 16) // 2)


@pytest.mark.parametrize("num_video_frames", [1, 3, 10, 15, 40])
def test_dense_short_videos_repeat_the_last_frame(num_video_frames):
    expected = list(range(0, num_video_frames, 4))
    expected += [expected[-1]] * (16 - len(expected))
    train = sampling.dense_train_indices(num_video_frames, np.random.default_rng(0))
    test = sampling.dense_test_indices(num_video_frames, 1, 2)
    assert train.tolist() == expected
    assert test.tolist() == expected


def test_uniform_train_takes_one_frame_per_segment():
    seen = np.zeros((16, 10), bool)
    for seed in range(100):
        indices = sampling.uniform_train_indices(165, np.random.default_rng(seed))
        # Reference: segment length 165 // 16 = 10; frames 160..164 unused.
        assert np.all(indices // 10 == np.arange(16))
        seen[np.arange(16), indices % 10] = True
    assert seen.all(), "every frame of every segment can be drawn"


def test_uniform_test_views_are_segment_starts_and_centres():
    n = 50
    tick = n / 16
    starts = sampling.uniform_test_indices(n, 0, 2)
    centres = sampling.uniform_test_indices(n, 1, 2)
    assert starts.tolist() == [int(tick * i) for i in range(16)]
    assert centres.tolist() == [int(tick / 2.0 + tick * i) for i in range(16)]
    assert sampling.uniform_test_indices(n, 0, 1).tolist() == centres.tolist()


@pytest.mark.parametrize("num_video_frames", [1, 5, 15])
def test_uniform_short_videos_use_every_frame_in_order(num_video_frames):
    indices = sampling.uniform_train_indices(num_video_frames, np.random.default_rng(0))
    assert indices.shape == (16,)
    assert np.all(np.diff(indices) >= 0)
    assert set(indices.tolist()) == set(range(num_video_frames))
    test = sampling.uniform_test_indices(num_video_frames, 1, 2)
    assert test.tolist() == indices.tolist()


def test_dispatch_and_validation():
    rng = np.random.default_rng(0)
    assert sampling.sample_frame_indices(100, "dense", rng=rng).shape == (16,)
    assert (
        sampling.sample_frame_indices(
            100, "uniform", num_frames=8, clip_index=1, num_clips=2
        ).tolist()
        == sampling.uniform_test_indices(100, 1, 2, num_frames=8).tolist()
    )
    with pytest.raises(ValueError, match="scheme"):
        sampling.sample_frame_indices(100, "random")
    with pytest.raises(ValueError, match="clip_index"):
        sampling.dense_test_indices(100, 2, 2)
    with pytest.raises(ValueError, match="at least one frame"):
        sampling.dense_train_indices(0, rng)


def test_time_intervals_pair_frames_like_tubelets():
    times = np.arange(16) * 0.1 + 2.0
    durations = np.full(16, 0.04)
    intervals = sampling.video_time_intervals(times, durations, origin=1.5)
    assert intervals.shape == (8, 2) and intervals.dtype == np.float32
    # Tubelet t: from frame 2t's time to the end of frame 2t+1.
    np.testing.assert_allclose(intervals[0], [0.5, 0.64], atol=1e-6)
    np.testing.assert_allclose(intervals[7], [0.5 + 1.4, 0.5 + 1.5 + 0.04], atol=1e-6)
    audio = sampling.audio_time_intervals(10.24, 8)
    assert audio.shape == (8, 2)
    np.testing.assert_allclose(audio[:, 1] - audio[:, 0], 1.28, atol=1e-6)
    assert audio[0, 0] == 0.0 and audio[-1, 1] == pytest.approx(10.24)
