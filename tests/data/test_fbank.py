"""Kaldi fbank parity with transformers' numpy `ASTFeatureExtractor` path."""

import numpy as np
import pytest
from transformers import ASTFeatureExtractor
from transformers.models.audio_spectrogram_transformer import (
    feature_extraction_audio_spectrogram_transformer as ast_features,
)

from keras_ca2st.data import fbank

SAMPLE_RATE = 16000

# transformers warns that Kaldi's filter 3 is empty; that is the point.
pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter:UserWarning")


def _signals():
    rng = np.random.default_rng(1234)

    def time(seconds):
        return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE

    tone = 0.5 * np.sin(2 * np.pi * 440 * time(1.0))
    chord = sum(0.2 * np.sin(2 * np.pi * f * time(3.7)) for f in (110, 987, 4100, 7600))
    noise = 0.3 * rng.standard_normal(int(5.0 * SAMPLE_RATE))
    gaps = 0.4 * np.sin(2 * np.pi * 1000 * time(10.0))
    gaps[SAMPLE_RATE : 3 * SAMPLE_RATE] = 0.0  # digital silence
    gaps[6 * SAMPLE_RATE : 6 * SAMPLE_RATE + 4000] = 0.0
    chirp_time = time(7.3)
    chirp = 0.6 * np.sin(2 * np.pi * (50 + 500 * chirp_time) * chirp_time)
    speechy = rng.standard_normal(int(2.5 * SAMPLE_RATE)) * np.repeat(
        rng.uniform(0, 0.5, 250), 160
    )  # noise with a 10 ms random envelope
    return {
        "tone_1s": tone,
        "chord_3.7s": chord,
        "noise_5s": noise,
        "tone_with_silence_gaps_10s": gaps,
        "chirp_7.3s": chirp,
        "modulated_noise_2.5s": speechy,
        "silence_1.5s": np.zeros(int(1.5 * SAMPLE_RATE)),
    }


SIGNALS = _signals()


def test_transformers_uses_its_numpy_path():
    # The extractor switches to torchaudio when it is installed; this parity
    # test is only meaningful against the numpy implementation.
    assert not ast_features.is_speech_available()
    extractor = ASTFeatureExtractor()
    assert hasattr(extractor, "mel_filters"), "numpy path builds its own filters"


@pytest.mark.parametrize("name", sorted(SIGNALS))
@pytest.mark.parametrize("num_frames", [1024, 300])
def test_fbank_matches_ast_feature_extractor(name, num_frames):
    waveform = SIGNALS[name].astype(np.float32)
    extractor = ASTFeatureExtractor(max_length=num_frames)
    expected = extractor(waveform, sampling_rate=SAMPLE_RATE, return_tensors="np")[
        "input_values"
    ][0]
    ours = fbank.audio_features(waveform, num_frames=num_frames)
    assert ours.shape == expected.shape == (num_frames, 128)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


def test_fbank_frame_count_snips_edges():
    # (n - 400) // 160 + 1 frames; none below one full frame.
    assert fbank.kaldi_fbank(np.zeros(399)).shape == (0, 128)
    assert fbank.kaldi_fbank(np.zeros(400)).shape == (1, 128)
    assert fbank.kaldi_fbank(np.zeros(16000)).shape == (98, 128)
    samples = fbank.num_samples_for_frames(1024)
    assert fbank.kaldi_fbank(np.zeros(samples)).shape == (1024, 128)
    assert fbank.kaldi_fbank(np.zeros(samples - 1)).shape == (1023, 128)


def test_mel_filters_follow_kaldi():
    filters = fbank.kaldi_mel_filters()
    assert filters.shape == (257, 128)
    assert np.all(filters[-1] == 0), "no weight on the Nyquist bin"
    empty = np.flatnonzero(filters.sum(axis=0) == 0)
    assert empty.tolist() == [3], "filter 3 falls between FFT bins at nfft 512"
    assert filters.max() <= 1.0 and filters.min() >= 0.0
    # Triangles peak in increasing frequency order.
    peaks = filters.argmax(axis=0)[4:]
    assert np.all(np.diff(peaks) >= 0)


def test_tone_energy_lands_in_the_right_mel_bin():
    time = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    low = fbank.kaldi_fbank(0.5 * np.sin(2 * np.pi * 300 * time)).mean(axis=0)
    high = fbank.kaldi_fbank(0.5 * np.sin(2 * np.pi * 3000 * time)).mean(axis=0)
    assert low.argmax() < 40 < high.argmax()


def test_padding_and_normalisation_match_ast():
    features = fbank.audio_features(np.zeros(4000), num_frames=50)
    # 23 real frames of silence hit the log floor; the rest are zero padding.
    floor = (np.log(fbank.LOG_FLOOR) - fbank.AUDIOSET_MEAN) / (2 * fbank.AUDIOSET_STD)
    padding = (0.0 - fbank.AUDIOSET_MEAN) / (2 * fbank.AUDIOSET_STD)
    np.testing.assert_allclose(features[:23], floor, atol=1e-6)
    np.testing.assert_allclose(features[23:], padding, atol=1e-6)
    cropped = fbank.pad_or_crop_frames(np.arange(10)[:, None], 4)
    assert cropped[:, 0].tolist() == [0, 1, 2, 3]


def test_rejects_multichannel_waveforms():
    with pytest.raises(ValueError, match="mono"):
        fbank.kaldi_fbank(np.zeros((2, 16000)))
