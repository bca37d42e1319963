"""`ClipTransform` on clips decoded from real mp4 files: it makes exactly the
inputs of the spec, with the spec's crop, mel bins, intervals and mean / std."""

import numpy as np
import pytest
from media_helpers import click_track

from keras_ca2st.data import (
    AudioAugment,
    ClipDecoder,
    ClipSpec,
    ClipTransform,
    RandAugment,
    sample_frame_indices,
)
from keras_ca2st.data.fbank import AUDIOSET_MEAN, AUDIOSET_STD

ALL_INPUTS = ("video", "audio", "video_times", "audio_times")
# No normalisation: the pixels stay readable as barcodes.
RAW = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@pytest.fixture
def clicks_video(make_video):
    """4 s of 48x64 barcode frames at 25 fps; clicks at 1.5 s and 3.5 s."""
    audio = click_track(4.0, [1.5, 3.5], 16000)
    return make_video(num_frames=100, fps=25, audio=audio)


def _decode(spec, path, **kwargs):
    return ClipDecoder.for_spec(spec, **kwargs).decode(path)


def test_evaluation_crops_cover_the_long_side(clicks_video):
    spec = ClipSpec(("video",), num_frames=4, crop_size=48, **RAW)
    clip = _decode(spec, clicks_video)
    transform = ClipTransform(spec, num_crops=3)
    crops = [transform(clip, crop_index=k)["video"] for k in range(3)]
    # 48x64 frames, short side already 48: three 48x48 crops start at 0, 8
    # and 16 along the width. Mean 0, std 1: the values are pixels / 255.
    for crop, left in zip(crops, (0, 8, 16), strict=True):
        assert crop.shape == (4, 48, 48, 3) and crop.dtype == np.float32
        np.testing.assert_allclose(
            255 * crop, clip.frames[:, :, left : left + 48], atol=1e-4
        )
    centre = ClipTransform(spec)(clip)["video"]  # one crop: the centre one
    np.testing.assert_array_equal(centre, crops[1])


def test_mean_and_std_come_from_the_spec(clicks_video):
    raw = ClipSpec(("video",), num_frames=4, crop_size=48, **RAW)
    imagenet = ClipSpec(("video",), num_frames=4, crop_size=48)
    clip = _decode(raw, clicks_video)
    pixels = ClipTransform(raw)(clip)["video"]
    normalised = ClipTransform(imagenet)(clip)["video"]
    mean, std = np.array(imagenet.mean), np.array(imagenet.std)
    np.testing.assert_allclose(normalised, (pixels - mean) / std, atol=1e-5)


def test_audio_features_have_the_spec_mel_bins_and_length(clicks_video):
    spec = ClipSpec(
        ALL_INPUTS,
        num_frames=8,
        crop_size=32,
        frames_per_interval=4,
        audio_frames=150,
        mel_bins=64,
    )
    clip = _decode(spec, clicks_video)
    inputs = ClipTransform(spec)(clip)
    assert list(inputs) == list(ALL_INPUTS)
    assert {name: value.shape for name, value in inputs.items()} == (
        spec.input_shapes()
    )
    assert inputs["audio"].shape == (150, 64)
    # The click inside the 1.5 s window is a loud fbank frame at
    # (1.5 s - window start) / 10 ms.
    loudness = inputs["audio"].mean(axis=1)
    loud = np.flatnonzero(loudness > loudness.min() + 0.5)
    assert loud.size and np.min(np.abs(loud - (1.5 - clip.audio_start) / 0.01)) <= 2


def test_time_intervals_group_the_spec_frames_per_interval(clicks_video):
    spec = ClipSpec(
        ALL_INPUTS, num_frames=8, crop_size=32, frames_per_interval=4, audio_frames=100
    )
    clip = _decode(spec, clicks_video)
    inputs = ClipTransform(spec)(clip)
    times = sample_frame_indices(100, "dense", num_frames=8) / 25.0
    # Two intervals of 4 frames: first frame's time to the end of the fourth.
    expected = np.array([[times[0], times[3] + 0.04], [times[4], times[7] + 0.04]])
    np.testing.assert_allclose(
        inputs["video_times"], expected - clip.audio_start, atol=1e-5
    )
    np.testing.assert_allclose(inputs["audio_times"], [[0.0, 0.5], [0.5, 1.0]])


def test_only_the_spec_inputs_are_made(clicks_video):
    # LAVISH: frames and audio, no time intervals.
    lavish = ClipSpec(
        ("video", "audio"),
        num_frames=4,
        crop_size=32,
        frames_per_interval=1,
        audio_frames=100,
    )
    assert list(ClipTransform(lavish)(_decode(lavish, clicks_video))) == [
        "video",
        "audio",
    ]
    audio_only = ClipSpec(("audio",), audio_frames=100)
    clip = _decode(audio_only, clicks_video)
    assert clip.frames.shape[0] == 16  # the clip that places the window
    assert list(ClipTransform(audio_only)(clip)) == ["audio"]


def test_shared_clip_inputs_equal_recomputed_ones(clicks_video):
    spec = ClipSpec(ALL_INPUTS, num_frames=4, crop_size=32, audio_frames=100)
    clip = _decode(spec, clicks_video)
    transform = ClipTransform(spec, num_crops=3)
    shared = transform.clip_inputs(clip)
    for k in range(3):
        reused, fresh = (
            transform(clip, crop_index=k, clip_inputs=shared),
            transform(clip, crop_index=k),
        )
        for name in ALL_INPUTS:
            np.testing.assert_array_equal(reused[name], fresh[name])


def test_training_views_are_reproducible_and_augmented(clicks_video):
    spec = ClipSpec(ALL_INPUTS, num_frames=4, crop_size=32, audio_frames=100)
    clip = _decode(spec, clicks_video)
    transform = ClipTransform(
        spec, rand_augment=RandAugment(), audio_augment=AudioAugment(time_mask=20)
    )
    views = [transform(clip, np.random.default_rng(s)) for s in (1, 1, 2)]
    for name in ALL_INPUTS:
        np.testing.assert_array_equal(views[0][name], views[1][name])
    assert not np.array_equal(views[0]["video"], views[2]["video"])
    assert not np.array_equal(views[0]["audio"], views[2]["audio"])
    plain = ClipTransform(spec)(clip)["audio"]
    assert not np.array_equal(views[0]["audio"], plain)  # masked and perturbed
    # Intervals do not depend on augmentation.
    np.testing.assert_array_equal(views[0]["video_times"], views[2]["video_times"])


def test_zeros_have_the_spec_shapes():
    spec = ClipSpec(
        ALL_INPUTS,
        num_frames=8,
        crop_size=16,
        frames_per_interval=4,
        audio_frames=30,
        mel_bins=40,
    )
    zeros = ClipTransform(spec).zeros()
    assert {k: v.shape for k, v in zeros.items()} == {
        "video": (8, 16, 16, 3),
        "audio": (30, 40),
        "video_times": (2, 2),
        "audio_times": (2, 2),
    }
    assert not any(value.any() for value in zeros.values())


def test_silence_is_the_log_floor_normalised(make_video):
    path = make_video(num_frames=30, fps=25)
    spec = ClipSpec(("audio",), audio_frames=50, mel_bins=32)
    clip = ClipDecoder.for_spec(spec, num_frames=4, missing_audio="silence").decode(
        path
    )
    audio = ClipTransform(spec)(clip)["audio"]
    silence = (np.log(np.finfo(np.float32).eps) - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)
    assert audio.shape == (50, 32)
    np.testing.assert_allclose(audio, silence, atol=1e-5)


def test_time_inputs_need_video_and_audio():
    with pytest.raises(ValueError, match="need both the video and the audio"):
        ClipSpec(("video", "video_times"), num_frames=4, crop_size=32)
    with pytest.raises(ValueError, match="do not split"):
        ClipSpec(
            ALL_INPUTS,
            num_frames=6,
            crop_size=32,
            frames_per_interval=4,
            audio_frames=10,
        )
