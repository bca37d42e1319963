"""Kaldi-compatible log-mel filter banks in numpy (the AST input features).

The Audio Spectrogram Transformer (https://arxiv.org/abs/2104.01778) was
trained on `torchaudio.compliance.kaldi.fbank` features. This module
reproduces them without torchaudio, following the recipe in SPEC section 9:
25 ms frames every 10 ms with no centre padding, per-frame DC removal,
pre-emphasis 0.97, a symmetric Hann window, a 512-point power spectrum,
128 Kaldi mel triangles from 20 Hz to Nyquist and a natural log floored at
float32 epsilon. Features are then padded or cropped to a fixed number of
frames and normalised with the AudioSet statistics used by AST.
"""

import functools

import numpy as np

SAMPLE_RATE = 16000
NUM_MEL_BINS = 128
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
PREEMPHASIS = 0.97
LOG_FLOOR = float(np.finfo(np.float32).eps)  # 1.1920929e-07, Kaldi's epsilon
LOW_FREQUENCY = 20.0
# AudioSet statistics of the un-normalised fbank, as used by AST and by
# `transformers.ASTFeatureExtractor`.
AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974


def samples_per_frame(sample_rate=SAMPLE_RATE, frame_length_ms=FRAME_LENGTH_MS):
    """Number of waveform samples in one analysis frame (400 at 16 kHz)."""
    return int(sample_rate * frame_length_ms / 1000.0)


def samples_per_hop(sample_rate=SAMPLE_RATE, frame_shift_ms=FRAME_SHIFT_MS):
    """Number of waveform samples between frame starts (160 at 16 kHz)."""
    return int(sample_rate * frame_shift_ms / 1000.0)


def num_samples_for_frames(num_frames, sample_rate=SAMPLE_RATE):
    """Waveform length that yields exactly `num_frames` fbank frames.

    Kaldi "snips edges": a frame is produced only when all of its samples
    exist, so `num_frames` frames need `(num_frames - 1) * hop + frame`
    samples (163,840 + 240 for 1024 frames at 16 kHz).

    Example:

    >>> num_samples_for_frames(1024)
    164080
    """
    hop = samples_per_hop(sample_rate)
    return (num_frames - 1) * hop + samples_per_frame(sample_rate)


def seconds_for_frames(num_frames, sample_rate=SAMPLE_RATE):
    """Length of the audio window that `num_frames` fbank frames describe.

    One frame per 10 ms hop, so 1024 frames are 10.24 s: the window an audio
    model sees, which the data pipeline cuts around a clip.

    Example:

    >>> seconds_for_frames(1024)
    10.24
    """
    return num_frames * samples_per_hop(sample_rate) / sample_rate


def _mel_scale(frequency):
    # Kaldi's mel scale: natural log, 1127 factor (HTK uses log10 and 2595).
    return 1127.0 * np.log(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=8)
def kaldi_mel_filters(
    num_mel_bins=NUM_MEL_BINS,
    fft_length=512,
    sample_rate=SAMPLE_RATE,
    low_frequency=LOW_FREQUENCY,
):
    """Kaldi's triangular mel filters, shape `(fft_length // 2 + 1, num_mel_bins)`.

    The triangles are linear in mel space and evaluated at the centre
    frequency of every FFT bin below Nyquist; the Nyquist row is zero and the
    triangles are not area-normalised, exactly as Kaldi builds them. At 16 kHz
    with a 512-point FFT and 128 bins, filter 3 falls between two FFT bins and
    is all zero; that is what the pretrained AST saw, so it is kept.

    Args:
        num_mel_bins: number of mel filters.
        fft_length: FFT size (the padded frame length).
        sample_rate: sampling rate in Hz.
        low_frequency: lower edge of the first filter in Hz.

    Returns:
        float64 array `(fft_length // 2 + 1, num_mel_bins)`; the returned
        array is cached, do not modify it.

    Example:

    >>> kaldi_mel_filters().shape
    (257, 128)
    """
    num_fft_bins = fft_length // 2
    mel_low = _mel_scale(low_frequency)
    mel_high = _mel_scale(sample_rate / 2.0)
    mel_step = (mel_high - mel_low) / (num_mel_bins + 1)
    left = mel_low + np.arange(num_mel_bins) * mel_step
    centre = left + mel_step
    right = centre + mel_step

    bin_mels = _mel_scale(np.arange(num_fft_bins) * sample_rate / fft_length)
    rising = (bin_mels[:, None] - left) / (centre - left)
    falling = (right - bin_mels[:, None]) / (right - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Kaldi has no Nyquist column; torchaudio appends a zero one.
    weights = np.concatenate([weights, np.zeros((1, num_mel_bins))], axis=0)
    weights.setflags(write=False)
    return weights


def kaldi_fbank(waveform, sample_rate=SAMPLE_RATE, num_mel_bins=NUM_MEL_BINS):
    """Log-mel filter bank features identical to `torchaudio...kaldi.fbank`.

    Matches `kaldi.fbank(waveform, sample_frequency=sample_rate,
    window_type="hanning", num_mel_bins=num_mel_bins, dither=0.0)`, the call
    AST makes. The waveform is used as given (float in [-1, 1], no int16
    scaling), like AST and `transformers.ASTFeatureExtractor`.

    Args:
        waveform: 1-D float array of mono samples.
        sample_rate: sampling rate of `waveform` in Hz.
        num_mel_bins: number of mel filters.

    Returns:
        float32 array `(num_frames, num_mel_bins)`, time-major. A waveform
        shorter than one frame gives zero frames.

    Example:

    >>> import numpy as np
    >>> tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    >>> kaldi_fbank(tone).shape
    (98, 128)
    """
    waveform = np.asarray(waveform, dtype=np.float64)
    if waveform.ndim != 1:
        raise ValueError(
            f"kaldi_fbank expects a 1-D mono waveform; got shape {waveform.shape}. "
            "Downmix multi-channel audio first (e.g. `waveform.mean(axis=0)`)."
        )
    frame_length = samples_per_frame(sample_rate)
    hop = samples_per_hop(sample_rate)
    # Kaldi pads each frame to the next power of two.
    fft_length = 1 << (frame_length - 1).bit_length()
    if waveform.shape[0] < frame_length:
        return np.zeros((0, num_mel_bins), dtype=np.float32)

    frames = np.lib.stride_tricks.sliding_window_view(waveform, frame_length)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    # Pre-emphasis y[n] = x[n] - 0.97 x[n-1], with Kaldi's x[-1] := x[0].
    emphasised = np.empty_like(frames)
    emphasised[:, 1:] = frames[:, 1:] - PREEMPHASIS * frames[:, :-1]
    emphasised[:, 0] = frames[:, 0] * (1.0 - PREEMPHASIS)
    # Kaldi's "hanning" window is the symmetric Hann window.
    windowed = emphasised * np.hanning(frame_length)
    power = np.abs(np.fft.rfft(windowed, n=fft_length, axis=1)) ** 2
    mel_energies = power @ kaldi_mel_filters(num_mel_bins, fft_length, sample_rate)
    return np.log(np.maximum(mel_energies, LOG_FLOOR)).astype(np.float32)


def pad_or_crop_frames(features, num_frames, pad_value=0.0):
    """Pads (with `pad_value`, at the end) or crops features to `num_frames` rows.

    AST pads the un-normalised fbank with zeros, so padded rows become
    `(0 - mean) / (2 std)` after `normalize_fbank`.

    Example:

    >>> import numpy as np
    >>> pad_or_crop_frames(np.ones((3, 2)), 5)[:, 0]
    array([1., 1., 1., 0., 0.])
    """
    features = np.asarray(features)
    missing = num_frames - features.shape[0]
    if missing <= 0:
        return features[:num_frames]
    padding = np.full((missing,) + features.shape[1:], pad_value, features.dtype)
    return np.concatenate([features, padding], axis=0)


def normalize_fbank(features, mean=AUDIOSET_MEAN, std=AUDIOSET_STD):
    """AST normalisation `(x - mean) / (2 std)` with the AudioSet statistics.

    Example:

    >>> float(normalize_fbank(AUDIOSET_MEAN))
    0.0
    """
    return ((np.asarray(features) - mean) / (2.0 * std)).astype(np.float32)


def audio_features(waveform, num_frames, sample_rate=SAMPLE_RATE):
    """Normalised AST input `(num_frames, 128)` from a 16 kHz mono waveform.

    fbank, then pad/crop to `num_frames`, then normalise: the order AST and
    `transformers.ASTFeatureExtractor` use.

    Example:

    >>> import numpy as np
    >>> audio_features(np.zeros(16000), num_frames=128).shape
    (128, 128)
    """
    fbank = kaldi_fbank(waveform, sample_rate=sample_rate)
    return normalize_fbank(pad_or_crop_frames(fbank, num_frames))
