"""`ClipDecoder` on real mp4 files: the right frames, times and audio window."""

import numpy as np
import pytest
from media_helpers import click_track, onset_times, read_barcodes

from keras_ca2st.data import (
    AudioDecodeError,
    ClipDecoder,
    ClipSpec,
    VideoDecodeError,
    VideoRecord,
    sample_frame_indices,
)
from keras_ca2st.data.fbank import num_samples_for_frames


@pytest.fixture
def clicks_video(make_video):
    """4 s at 25 fps with a 48 kHz stereo track clicking at 1.5 s and 3.5 s."""
    audio = click_track(4.0, [1.5, 3.5], 48000, channels=2)
    return make_video(num_frames=100, fps=25, audio=audio, audio_sample_rate=48000)


@pytest.mark.parametrize("sampling", ["dense", "uniform"])
def test_evaluation_clips_are_the_sampled_frames(clicks_video, sampling):
    decoder = ClipDecoder(num_frames=8, sampling=sampling, frame_stride=3, num_clips=2)
    for clip_index in range(2):
        clip = decoder.decode(clicks_video, clip_index)
        expected = sample_frame_indices(
            100, sampling, num_frames=8, stride=3, clip_index=clip_index, num_clips=2
        )
        assert clip.frames.shape == (8, 48, 64, 3) and clip.frames.dtype == np.uint8
        assert read_barcodes(clip.frames) == expected.tolist()
        np.testing.assert_allclose(clip.frame_times, expected / 25.0, atol=1e-6)
        np.testing.assert_allclose(clip.frame_durations, 0.04, atol=1e-6)
        assert clip.waveform is None and clip.audio_start is None  # no audio asked


def test_training_clips_follow_the_generator(clicks_video):
    decoder = ClipDecoder(num_frames=6, frame_stride=5)
    clips = [
        decoder.decode(clicks_video, rng=np.random.default_rng(seed))
        for seed in (4, 4, 5)
    ]
    codes = [read_barcodes(clip.frames) for clip in clips]
    assert codes[0] == codes[1] and codes[0] != codes[2]
    assert all(np.all(np.diff(code) == 5) for code in codes)


def test_audio_window_is_centred_on_the_clip(clicks_video):
    decoder = ClipDecoder(num_frames=16, audio_frames=200)  # a 2 s window
    clip = decoder.decode(VideoRecord(clicks_video, 0))
    # Centre clip: frames 16..76 (0.64 s to 3.08 s); the window is centred
    # on it, so it starts at 1.86 - 1 = 0.86 s.
    indices = sample_frame_indices(100, "dense")
    assert (indices[0], indices[-1]) == (16, 76)
    assert clip.audio_start == pytest.approx(0.86, abs=1e-6)
    assert clip.waveform.shape == (num_samples_for_frames(200),)
    # The click at 1.5 s is inside it, at 1.5 - 0.86 s; the one at 3.5 s not.
    onsets = onset_times(clip.waveform, 16000)
    np.testing.assert_allclose(onsets, [1.5 - 0.86], atol=2e-3)


def test_a_track_shorter_than_the_window_gives_only_its_samples(make_video):
    audio = click_track(2.5, [1.0], 16000)
    path = make_video(num_frames=100, fps=25, audio=audio)  # 4 s of video
    clip = ClipDecoder(audio_frames=300).decode(path)  # a 3 s window
    # The window starts at the track start; features are padded later, over
    # the real samples only (as AST pads).
    assert clip.audio_start == pytest.approx(0.0, abs=1e-3)
    assert clip.waveform.shape[0] == pytest.approx(2.5 * 16000, abs=400)
    np.testing.assert_allclose(onset_times(clip.waveform, 16000), [1.0], atol=2e-3)


def test_missing_audio_is_an_error_or_silence(make_video):
    path = make_video(num_frames=50, fps=25)  # no audio stream
    with pytest.raises(AudioDecodeError, match="has no audio stream"):
        ClipDecoder(num_frames=4, audio_frames=100).decode(path)
    silent = ClipDecoder(num_frames=4, audio_frames=100, missing_audio="silence")
    clip = silent.decode(path)
    assert clip.waveform.shape == (num_samples_for_frames(100),)
    assert not clip.waveform.any()
    # The 1 s window stays inside the 2 s of video.
    assert 0.0 <= clip.audio_start <= 1.0
    with pytest.raises(ValueError, match="missing_audio"):
        ClipDecoder(missing_audio="skip")


def test_record_segments_and_their_errors(make_video):
    path = make_video(num_frames=100, fps=25)
    decoder = ClipDecoder(num_frames=4, sampling="uniform")
    clip = decoder.decode(VideoRecord(path, 0, start=2.0, end=3.0))
    assert (
        read_barcodes(clip.frames)
        == (50 + sample_frame_indices(25, "uniform", num_frames=4)).tolist()
    )
    outside = VideoRecord(path, 0, start=7.0, end=8.0, source="train.csv:3")
    with pytest.raises(VideoDecodeError, match="no frames between.*train.csv:3"):
        decoder.decode(outside)


def test_a_spec_without_video_still_samples_the_clip_that_places_the_audio():
    audio_only = ClipSpec(("audio",), audio_frames=128)
    assert ClipDecoder.for_spec(audio_only).num_frames == 16
    assert ClipDecoder.for_spec(audio_only, num_frames=8).num_frames == 8
    video = ClipSpec(("video",), num_frames=4, crop_size=32)
    decoder = ClipDecoder.for_spec(video, num_frames=8, frame_stride=2)
    assert (decoder.num_frames, decoder.audio_frames, decoder.frame_stride) == (
        4,
        None,
        2,
    )
