"""From a file to one clip's raw material: sampled frames, their times, audio.

`ClipDecoder` opens a record's file, picks the frames of one clip (dense or
uniform sampling, inside the record's segment), decodes only those, and cuts
the audio window centred on the clip out of the audio track. It returns
uint8 frames and a raw waveform: crops, augmentation and features are the
transform's job (`keras_ca2st.data.clip_transform`), so a clip decoded once
can give every crop of a multi-view evaluation.
"""

import dataclasses
import os

import numpy as np

from keras_ca2st.data import fbank as fbank_lib
from keras_ca2st.data.annotations import VideoRecord
from keras_ca2st.data.audio import (
    MISSING_AUDIO_POLICIES,
    AudioReader,
    audio_window_start,
)
from keras_ca2st.data.errors import AudioDecodeError, VideoDecodeError
from keras_ca2st.data.sampling import SAMPLING_SCHEMES, sample_frame_indices
from keras_ca2st.data.video import VideoReader

# Frames a clip samples when nobody says otherwise (the paper's clips).
DEFAULT_NUM_FRAMES = 16


@dataclasses.dataclass(frozen=True)
class DecodedClip:
    """One clip as its file holds it, before any transform.

    Attributes:
        path: the media file.
        frames: uint8 `(num_frames, height, width, 3)` RGB, the sampled frames.
        frame_times: float64 `(num_frames,)` presentation time of each
            sampled frame, seconds.
        frame_durations: float64 `(num_frames,)` display time of each.
        waveform: float32 mono samples of the audio window at `sample_rate`,
            `None` when no audio was asked for. Only real audio: a window
            that runs past the end of the track is shorter (AST computes
            features over the real samples and pads the features), a file
            without audio read with `missing_audio="silence"` gives zeros.
        audio_start: start of the audio window, seconds (`None` without
            audio). The time origin of `video_times`.
        sample_rate: sampling rate of `waveform`, Hz.
    """

    path: str
    frames: np.ndarray
    frame_times: np.ndarray
    frame_durations: np.ndarray
    waveform: np.ndarray = None
    audio_start: float = None
    sample_rate: int = fbank_lib.SAMPLE_RATE


class ClipDecoder:
    """Decodes the frames and the audio window of one clip of a record.

    Args:
        num_frames: frames per clip. A model without video still samples a
            clip: its centre places the audio window.
        sampling: `"dense"` (K400, audio-visual sets) or `"uniform"` (SSV2,
            EK100); see `keras_ca2st.data.sample_frame_indices`.
        frame_stride: dense sampling stride.
        num_clips: temporal views per record in evaluation; `decode` with
            `clip_index=k` gives view `k` of them.
        audio_frames: fbank frames of the audio window (10 ms each); `None`
            decodes no audio.
        missing_audio: `"error"` (a file without audio raises
            `AudioDecodeError`) or `"silence"` (zeros instead).
        decoder_threads: FFmpeg threads per file.

    Example:
    ```python
    decoder = ClipDecoder(num_frames=16, frame_stride=4, audio_frames=1024)
    clip = decoder.decode("video.mp4")  # the centre clip (evaluation)
    clip.frames.shape, clip.waveform.shape, clip.audio_start
    # ((16, 240, 320, 3), (164080,), 1.48)
    clip = decoder.decode(record, rng=np.random.default_rng(0))  # training
    ```
    """

    def __init__(
        self,
        num_frames=DEFAULT_NUM_FRAMES,
        sampling="dense",
        frame_stride=4,
        num_clips=1,
        audio_frames=None,
        missing_audio="error",
        decoder_threads=1,
    ):
        check_decoding_options(sampling, missing_audio)
        self.num_frames = num_frames
        self.sampling = sampling
        self.frame_stride = frame_stride
        self.num_clips = num_clips
        self.audio_frames = audio_frames
        self.missing_audio = missing_audio
        self.decoder_threads = decoder_threads

    @classmethod
    def for_spec(cls, spec, num_frames=None, **kwargs):
        """The decoder of the clips a model with this `ClipSpec` reads.

        Frames and audio window are the spec's; a spec without video samples
        `num_frames` (default 16) frames to place the audio window.

        Example:
        ```python
        decoder = ClipDecoder.for_spec(model.backbone.clip_spec, num_clips=2)
        ```
        """
        return cls(
            num_frames=spec.num_frames or num_frames or DEFAULT_NUM_FRAMES,
            audio_frames=spec.audio_frames,
            **kwargs,
        )

    def decode(self, record, clip_index=0, rng=None):
        """The `DecodedClip` of one clip of `record`.

        Args:
            record: a `VideoRecord` (its `start` / `end` segment is honoured)
                or a file path.
            clip_index: which of `num_clips` evaluation clips (without `rng`).
            rng: `numpy.random.Generator` for a random training clip.

        Raises:
            VideoDecodeError, AudioDecodeError: for bad files.
        """
        if not isinstance(record, VideoRecord):
            record = VideoRecord(os.fspath(record), None, source=os.fspath(record))
        with VideoReader(record.path, decoder_threads=self.decoder_threads) as reader:
            first, count = self.segment(reader, record)
            indices = first + sample_frame_indices(
                count,
                self.sampling,
                num_frames=self.num_frames,
                stride=self.frame_stride,
                rng=rng,
                clip_index=clip_index,
                num_clips=self.num_clips,
            )
            frames = reader.read(indices)
            frame_times = reader.frame_times[indices]
            frame_durations = reader.frame_durations[indices]
            video_span = (
                reader.frame_times[0],
                reader.frame_times[0] + reader.duration,
            )
        waveform = audio_start = None
        if self.audio_frames is not None:
            clip_span = (
                float(frame_times[0]),
                float(frame_times[-1] + frame_durations[-1]),
            )
            waveform, audio_start = self.audio_window(
                record.path, clip_span, video_span
            )
        return DecodedClip(
            record.path, frames, frame_times, frame_durations, waveform, audio_start
        )

    @staticmethod
    def segment(reader, record):
        """First frame index and frame count of the record's segment."""
        if record.start is None and record.end is None:
            return 0, reader.num_frames
        start = -np.inf if record.start is None else record.start
        end = np.inf if record.end is None else record.end
        inside = np.flatnonzero(
            (reader.frame_times >= start) & (reader.frame_times < end)
        )
        if inside.size == 0:
            raise VideoDecodeError(
                f"{record.path}: no frames between {record.start}s and {record.end}s "
                f"(video spans {reader.frame_times[0]:.2f}s to "
                f"{reader.frame_times[-1]:.2f}s). Check {record.source}."
            )
        return int(inside[0]), int(inside.size)

    def audio_window(self, path, clip_span, video_span):
        """`(waveform, start)` of the audio window centred on `clip_span`.

        The window stays inside the audio track (inside the video's span for
        a file without audio read as silence).
        """
        sample_rate = fbank_lib.SAMPLE_RATE
        window_seconds = fbank_lib.seconds_for_frames(self.audio_frames, sample_rate)
        num_samples = fbank_lib.num_samples_for_frames(self.audio_frames, sample_rate)
        try:
            reader = AudioReader(path, sample_rate=sample_rate)
        except AudioDecodeError as error:
            if self.missing_audio != "silence" or "has no audio stream" not in str(
                error
            ):
                raise
            start = audio_window_start(*clip_span, window_seconds, *video_span)
            return np.zeros(num_samples, np.float32), start
        with reader:
            start = audio_window_start(
                *clip_span, window_seconds, reader.start_time, reader.end_time
            )
            waveform = reader.read(start, num_samples)
            # Features over real audio only, padded afterwards like AST.
            return waveform[: reader.samples_inside(start, num_samples)], start


def check_decoding_options(sampling, missing_audio):
    """Raises `ValueError` for an unknown sampling scheme or audio policy."""
    if sampling not in SAMPLING_SCHEMES:
        raise ValueError(
            f"sampling must be one of {SAMPLING_SCHEMES}; got {sampling!r}."
        )
    if missing_audio not in MISSING_AUDIO_POLICIES:
        raise ValueError(
            f"missing_audio must be 'error' or 'silence'; got {missing_audio!r}."
        )
