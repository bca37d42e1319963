"""Audio decoding on real mp4 files: alignment, resampling, downmix, fallbacks."""

import numpy as np
import pytest
from media_helpers import click_track, onset_times

from keras_ca2st.data import AudioDecodeError, AudioReader, read_audio_window
from keras_ca2st.data.audio import audio_window_start

CLICKS = [0.5, 1.5, 3.0, 5.2]


@pytest.mark.parametrize(
    "sample_rate, channels", [(16000, 1), (44100, 2), (48000, 2), (22050, 1)]
)
def test_window_is_aligned_with_the_requested_time(make_video, sample_rate, channels):
    audio = click_track(6.0, CLICKS, sample_rate, channels)
    path = make_video(num_frames=30, fps=5, audio=audio, audio_sample_rate=sample_rate)
    with AudioReader(path) as reader:
        assert reader.native_sample_rate == sample_rate
        assert reader.num_channels == channels
        assert reader.duration == pytest.approx(6.0, abs=0.03)
        for start in [0.0, 0.3, 1.2, 2.9, 4.0]:
            window = reader.read(start, 32000)  # 2 s at 16 kHz
            assert window.shape == (32000,) and window.dtype == np.float32
            expected = [t for t in CLICKS if start <= t < start + 1.99]
            found = onset_times(window, 16000) + start
            # One 16 kHz sample is 0.06 ms; allow 1 ms for codec ringing.
            np.testing.assert_allclose(found, expected, atol=1e-3)


def test_window_outside_the_track_is_zero_padded(make_video):
    audio = click_track(2.0, [0.25], 16000)
    path = make_video(num_frames=10, fps=5, audio=audio)
    with AudioReader(path) as reader:
        early = reader.read(-0.5, 16000)
        np.testing.assert_allclose(onset_times(early, 16000) - 0.5, [0.25], atol=1e-3)
        assert np.all(early[:7000] == 0.0)
        late = reader.read(1.5, 16000)
        assert np.all(late[8000 + 400 :] == 0.0)
        assert reader.samples_inside(1.5, 16000) == 8000
        assert np.all(reader.read(5.0, 1000) == 0.0)


def test_stereo_is_averaged_and_resampled(make_video):
    sample_rate = 44100
    time = np.arange(3 * sample_rate) / sample_rate
    left = 0.6 * np.sin(2 * np.pi * 500 * time)
    right = 0.2 * np.sin(2 * np.pi * 500 * time)
    path = make_video(
        num_frames=15,
        fps=5,
        audio=np.stack([left, right]),
        audio_sample_rate=sample_rate,
    )
    window = read_audio_window(path, 1.0, 16000)
    # Mean of the channels: amplitude (0.6 + 0.2) / 2 = 0.4 (not 0.8 / sqrt 2).
    amplitude = np.sqrt(2) * np.std(window)
    assert amplitude == pytest.approx(0.4, rel=0.05)
    spectrum = np.abs(np.fft.rfft(window))
    assert np.argmax(spectrum) == pytest.approx(500, abs=2)  # 1 Hz bins over 1 s


def test_file_without_audio_raises_or_gives_silence(make_video):
    path = make_video(num_frames=10)
    with pytest.raises(AudioDecodeError, match="has no audio stream.*silence"):
        AudioReader(path)
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        read_audio_window(path, 0.0, 1600)
    silence = read_audio_window(path, 0.0, 1600, missing_audio="silence")
    assert silence.shape == (1600,) and np.all(silence == 0.0)


def test_broken_files_raise_audio_errors(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty"):
        AudioReader(empty)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a media file" * 100)
    with pytest.raises(AudioDecodeError, match="cannot be opened"):
        read_audio_window(garbage, 0.0, 100, missing_audio="silence")


def test_window_placement_is_centred_and_clamped():
    # Centred on the clip when it fits.
    assert audio_window_start(4.0, 6.0, 2.0, 0.0, 10.0) == pytest.approx(4.0)
    assert audio_window_start(4.0, 6.0, 4.0, 0.0, 10.0) == pytest.approx(3.0)
    # Shifted back inside the track at both ends.
    assert audio_window_start(0.0, 1.0, 4.0, 0.0, 10.0) == pytest.approx(0.0)
    assert audio_window_start(9.0, 10.0, 4.0, 0.0, 10.0) == pytest.approx(6.0)
    # Track shorter than the window: start at the track start.
    assert audio_window_start(1.0, 2.0, 10.24, 0.0, 3.0) == pytest.approx(0.0)
    assert audio_window_start(1.0, 2.0, 10.24, 0.5, 3.0) == pytest.approx(0.5)
