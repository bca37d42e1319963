"""Audio track decoding with PyAV: seek, decode a window, resample, downmix.

The audio experts need 16 kHz mono. `AudioReader.read` decodes only the part
of the track around the requested window (plus a small margin so that the
AAC decoder's overlap-add has warmed up), resamples it with FFmpeg's
swresample at the native channel layout, and downmixes by averaging the
channels. Resampled audio is taken as interleaved (packed) samples: PyAV's
conversion of planar frames with 8 or more channels (7.1 and wider) reads
past its plane table and crashes the process, packed frames have one plane
whatever the layout. A track whose decoded samples are not finite (NaN or
Inf in a float codec) is a decode error, never fed to a model. Times are presentation times in seconds, the same clock as
`VideoReader.frame_times`, so an audio window can be aligned with a clip.
"""

import numpy as np

from keras_ca2st.data.errors import AudioDecodeError
from keras_ca2st.data.fbank import SAMPLE_RATE
from keras_ca2st.data.media import MediaReader

# Decode this much before the window so the decoder state is settled when the
# window starts (AAC frames overlap their neighbours by half a frame).
_DECODE_MARGIN_S = 0.1

MISSING_AUDIO_POLICIES = ("error", "silence")


class AudioReader(MediaReader):
    """Reads windows of a file's audio track as 16 kHz mono float32.

    Args:
        path: media file with an audio stream (mp4, mkv, wav, m4a, ...).
        sample_rate: output sampling rate in Hz.

    Attributes:
        start_time: presentation time of the first audio sample, seconds.
        duration: length of the track in seconds.
        native_sample_rate: the track's own sampling rate.
        num_channels: the track's channel count (averaged on output).

    Raises:
        AudioDecodeError: the file is missing, empty, corrupt or has no audio
            stream.

    Example:

    >>> with AudioReader("clip.mp4") as reader:  # doctest: +SKIP
    ...     waveform = reader.read(start=1.0, num_samples=16000)  # 1 s
    """

    error_class = AudioDecodeError

    def __init__(self, path, sample_rate=SAMPLE_RATE):
        self.sample_rate = sample_rate
        super().__init__(path)

    def _open(self):
        if not self._container.streams.audio:
            raise AudioDecodeError(
                f"{self.path}: has no audio stream. Audio models need one; pass "
                "`missing_audio='silence'` to feed silence instead, or drop "
                "the file from the audio-visual annotation file."
            )
        self._stream = self._container.streams.audio[0]
        self._time_base = float(self._stream.time_base)
        self.native_sample_rate = self._stream.codec_context.sample_rate
        self.num_channels = self._stream.codec_context.channels
        if not self.native_sample_rate or not self.num_channels:
            raise AudioDecodeError(
                f"{self.path}: the audio stream declares {self.native_sample_rate} "
                f"Hz and {self.num_channels} channels, so it cannot be decoded; "
                "re-encode it (e.g. `ffmpeg -i in.mp4 -c:v copy -c:a aac out.mp4`)."
            )
        self.start_time = (self._stream.start_time or 0) * self._time_base
        self.duration = self._track_duration()

    def _track_duration(self):
        if self._stream.duration:
            return self._stream.duration * self._time_base
        if self._container.duration:
            # Container duration is in microseconds (AV_TIME_BASE).
            return self._container.duration / 1e6 - self.start_time
        # No header information (e.g. some streamed formats): measure it.
        total = 0
        for frame in self._decode_from(self.start_time):
            total += frame.samples
        return total / self.native_sample_rate

    @property
    def end_time(self):
        """Presentation time just after the last audio sample, seconds."""
        return self.start_time + self.duration

    def samples_inside(self, start, num_samples):
        """How many leading samples of a window starting at `start` are audio.

        Used to compute features over real audio only and pad the features
        afterwards, as AST does for clips shorter than the window.

        Example:

        >>> reader.samples_inside(start=9.5, num_samples=16000)  # doctest: +SKIP
        8000
        """
        remaining = int(round((self.end_time - start) * self.sample_rate))
        return int(np.clip(remaining, 0, num_samples))

    def read(self, start, num_samples):
        """Returns `num_samples` samples starting at time `start` (seconds).

        Parts of the window before the track starts or after it ends are
        zeros, so a window can always be cut around a clip.

        Args:
            start: window start in seconds (presentation time).
            num_samples: window length in output samples.

        Returns:
            float32 array `(num_samples,)`, mono (mean of the channels), at
            `sample_rate`.

        Raises:
            AudioDecodeError: the audio data cannot be decoded.
        """
        window = np.zeros(num_samples, dtype=np.float32)
        end = start + num_samples / self.sample_rate
        if end <= self.start_time or start >= self.end_time or num_samples <= 0:
            return window
        decode_from = max(start - _DECODE_MARGIN_S, self.start_time)
        resampler = self._av.AudioResampler(format="flt", rate=self.sample_rate)
        chunks, first_time = [], None
        for frame in self._decode_from(decode_from):
            frame_time = frame.pts * self._time_base
            if frame_time + frame.samples / frame.sample_rate <= decode_from:
                continue  # the seek landed earlier than needed
            if first_time is None:
                first_time = frame_time
            chunks.extend(_mono(out) for out in self._resample(resampler, frame))
            if frame_time >= end + _DECODE_MARGIN_S:
                break
        chunks.extend(_mono(out) for out in self._resample(resampler, None))
        if first_time is None or not chunks:
            return window
        # swresample keeps the first output sample aligned with the first
        # input sample, so sample k of `decoded` sits at first_time + k / sr.
        decoded = np.concatenate(chunks)
        if not np.isfinite(decoded).all():
            raise AudioDecodeError(
                f"{self.path}: the audio track holds non-finite samples (NaN or "
                "Inf), so it cannot be used. Re-encode the audio (e.g. `ffmpeg -i "
                "in.mp4 -c:v copy -c:a aac out.mp4`) or drop the file."
            )
        offset = int(round((start - first_time) * self.sample_rate))
        source_start, target_start = max(offset, 0), max(-offset, 0)
        length = min(decoded.shape[0] - source_start, num_samples - target_start)
        if length > 0:
            window[target_start : target_start + length] = decoded[
                source_start : source_start + length
            ]
        return window

    def _resample(self, resampler, frame):
        try:
            return resampler.resample(frame)
        except (self._av.FFmpegError, ValueError) as error:
            raise AudioDecodeError(
                f"{self.path}: the audio cannot be resampled to "
                f"{self.sample_rate} Hz ({error}); re-encode it (e.g. `ffmpeg -i "
                "in.mp4 -c:v copy -c:a aac out.mp4`)."
            ) from error

    def _decode_from(self, time):
        """Yields decoded frames (with timestamps) from `time` onwards."""
        try:
            self._container.seek(
                int(time / self._time_base), stream=self._stream, backward=True
            )
            for frame in self._container.decode(self._stream):
                if frame.pts is not None:
                    yield frame
        except self._av.FFmpegError as error:
            raise AudioDecodeError(
                f"{self.path}: audio decoding failed ({error}). The file is "
                "corrupt; re-encode it (e.g. `ffmpeg -i in.mp4 -c:a aac out.mp4`)."
            ) from error

    def _summary(self):
        return (
            f"{self.native_sample_rate} Hz, {self.num_channels} ch, "
            f"{self.duration:.3f}s"
        )


def _mono(frame):
    """A packed resampled frame as mono float32: the mean of its channels."""
    channels = frame.layout.nb_channels
    return frame.to_ndarray().reshape(-1, channels).mean(axis=1, dtype=np.float32)


def read_audio_window(
    path, start, num_samples, sample_rate=SAMPLE_RATE, missing_audio="error"
):
    """Reads a mono window of a file's audio, or silence if asked to.

    Args:
        path: media file.
        start: window start in seconds.
        num_samples: window length in samples at `sample_rate`.
        sample_rate: output sampling rate in Hz.
        missing_audio: `"error"` raises `AudioDecodeError` when the file has
            no audio stream; `"silence"` returns zeros instead (for video
            files without sound in an audio-visual set).

    Returns:
        float32 array `(num_samples,)`.

    Example:

    >>> window = read_audio_window("clip.mp4", 0.5, 16000)  # doctest: +SKIP
    """
    if missing_audio not in MISSING_AUDIO_POLICIES:
        raise ValueError(
            f"missing_audio must be one of {MISSING_AUDIO_POLICIES}; "
            f"got {missing_audio!r}."
        )
    try:
        reader = AudioReader(path, sample_rate=sample_rate)
    except AudioDecodeError as error:
        if missing_audio == "silence" and "has no audio stream" in str(error):
            return np.zeros(num_samples, dtype=np.float32)
        raise
    with reader:
        return reader.read(start, num_samples)


def audio_window_start(clip_start, clip_end, window_seconds, track_start, track_end):
    """Start time of an audio window centred on a clip, kept inside the track.

    The window is centred on the clip `[clip_start, clip_end)`; when that
    would run past either end of the audio track it is shifted back inside.
    A track shorter than the window starts the window at the track start
    (the features are then zero-padded at the end, like AST pads).

    Args:
        clip_start: time of the first sampled frame, seconds.
        clip_end: end of the last sampled frame, seconds.
        window_seconds: audio window length, seconds.
        track_start: first audio sample time, seconds.
        track_end: time after the last audio sample, seconds.

    Returns:
        Window start time in seconds.

    Example:

    >>> audio_window_start(4.0, 6.0, window_seconds=2.0, track_start=0.0,
    ...                    track_end=10.0)
    4.0
    >>> audio_window_start(0.0, 1.0, 4.0, 0.0, 10.0)
    0.0
    """
    centred = 0.5 * (clip_start + clip_end) - 0.5 * window_seconds
    latest = track_end - window_seconds
    if latest <= track_start:
        return float(track_start)
    return float(min(max(centred, track_start), latest))
