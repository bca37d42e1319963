"""Sliding a model's clip window over a long file, decoding each frame once.

`ClipDecoder` seeks for every clip, which is right for a dataset of short
clips and wasteful for a timeline of a long file, whose windows overlap: each
frame would be decoded again by every window that holds it. `WindowStream`
reads the video stream once, front to back, and the audio track once beside
it. It keeps only the frames and audio samples that windows still to come
need, so its memory is bounded by one window's span, however long the file.

A window is a segment of consecutive frames starting at `start` (a multiple
of the stride after the first frame); its clip is the one `ClipDecoder` picks
from a record with that segment (`sample_frame_indices`, one test view), with
the audio window centred on the clip and kept inside the track, so the model
sees what it would see for that clip decoded on its own.
"""

import collections
import dataclasses
import itertools

import numpy as np

from keras_ca2st.data import fbank as fbank_lib
from keras_ca2st.data.audio import (
    AudioReader,
    _mono,
    audio_window_start,
)
from keras_ca2st.data.decoder import (
    DEFAULT_NUM_FRAMES,
    DecodedClip,
    check_decoding_options,
)
from keras_ca2st.data.errors import AudioDecodeError, VideoDecodeError
from keras_ca2st.data.sampling import sample_frame_indices
from keras_ca2st.data.video import VideoReader

# Window starts are multiples of the stride; a frame stamped a hair before
# one (rounded container time bases) still starts that window.
_START_TOLERANCE_S = 1e-6


@dataclasses.dataclass(frozen=True)
class TimelineWindow:
    """One window of a timeline and the clip decoded for it.

    Attributes:
        index: position of the window in the timeline (0, 1, ...).
        start: presentation time of the window's first frame, seconds.
        end: end of the window's last frame, seconds.
        clip: the `DecodedClip` the model reads (sampled frames, audio).
    """

    index: int
    start: float
    end: float
    clip: DecodedClip


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Where a window lies before any of its frames is decoded."""

    index: int
    first: int  # first frame of the window's segment
    indices: np.ndarray  # sampled frames, sorted as the clip orders them
    wanted: frozenset
    start: float
    end: float
    audio_start: float

    @property
    def last(self):
        return int(self.indices.max())


class WindowStream:
    """The windows of a long file every `stride` seconds, each frame decoded once.

    A window spans `window_frames` consecutive frames: the span of one dense
    clip (`(num_frames - 1) * frame_stride + 1` frames), or for uniform
    sampling `num_frames * frame_stride` frames cut into `num_frames`
    segments. Only complete windows are made: a file shorter than one window
    raises `VideoDecodeError`.

    Args:
        stride: seconds between window starts (> 0).
        num_frames: frames per clip.
        sampling: `"dense"` or `"uniform"`, as the model was trained.
        frame_stride: dense sampling stride, in frames.
        audio_frames: fbank frames of the audio window (10 ms each); `None`
            reads no audio.
        missing_audio: `"error"` or `"silence"` for a file without audio.
        decoder_threads: FFmpeg threads.

    Attributes:
        decoded_frames: frames the video decoder produced in the last
            `windows` call (each frame of the file once).

    Example:
    ```python
    stream = WindowStream.for_spec(model.backbone.clip_spec, stride=1.0)
    transform = ClipTransform(model.backbone.clip_spec)
    for windows, inputs in stream.batches("long.mp4", transform, batch_size=8):
        logits = model.predict_on_batch(inputs)
        [(w.start, w.end) for w in windows]  # [(0.0, 2.1), (1.0, 3.1), ...]
    ```
    """

    def __init__(
        self,
        stride,
        num_frames=DEFAULT_NUM_FRAMES,
        sampling="dense",
        frame_stride=4,
        audio_frames=None,
        missing_audio="error",
        decoder_threads=1,
    ):
        if not stride > 0:
            raise ValueError(f"stride must be positive seconds; got {stride}.")
        check_decoding_options(sampling, missing_audio)
        self.stride = float(stride)
        self.num_frames = num_frames
        self.sampling = sampling
        self.frame_stride = frame_stride
        self.audio_frames = audio_frames
        self.missing_audio = missing_audio
        self.decoder_threads = decoder_threads
        self.decoded_frames = 0

    @classmethod
    def for_spec(cls, spec, stride, num_frames=None, **kwargs):
        """The stream of the clips a model with this `ClipSpec` reads.

        Example:
        ```python
        stream = WindowStream.for_spec(spec, stride=2.0, frame_stride=4)
        ```
        """
        return cls(
            stride,
            num_frames=spec.num_frames or num_frames or DEFAULT_NUM_FRAMES,
            audio_frames=spec.audio_frames,
            **kwargs,
        )

    @property
    def window_frames(self):
        """Consecutive frames one window spans."""
        if self.sampling == "dense":
            return (self.num_frames - 1) * self.frame_stride + 1
        return self.num_frames * self.frame_stride

    @property
    def audio_seconds(self):
        """Length of each window's audio, seconds (`None` without audio)."""
        if self.audio_frames is None:
            return None
        return fbank_lib.seconds_for_frames(self.audio_frames)

    def windows(self, path):
        """Yields the `TimelineWindow`s of `path` in time order.

        Raises:
            VideoDecodeError, AudioDecodeError: for a bad file, or one shorter
                than one window.
        """
        with _ForwardVideoReader(path, self.decoder_threads) as video:
            self._check_length(video)
            audio = self._open_audio(path, video)
            try:
                yield from self._stream(video, audio)
            finally:
                self.decoded_frames = video.num_decoded_frames
                if audio is not None:
                    audio.close()

    def batches(self, path, transform, batch_size):
        """Yields `(windows, inputs)`: up to `batch_size` windows and their
        stacked model inputs (`transform` is the model's `ClipTransform`; each
        window is its evaluation crop 0)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
        windows, inputs = [], []
        for window in self.windows(path):
            windows.append(window)
            inputs.append(transform(window.clip))
            if len(windows) == batch_size:
                yield windows, _stack(inputs)
                windows, inputs = [], []
        if windows:
            yield windows, _stack(inputs)

    def segment_intervals(self, window, num_segments):
        """`(num_segments, 2)` `[start, end]` seconds of a window's audio segments.

        A per-segment head (LAVISH localisation) cuts the audio window into
        `num_segments` equal parts, segment `t` beside frame `t`.
        """
        if self.audio_frames is None:
            raise ValueError("Segments are cut from the audio window; no audio here.")
        edges = window.clip.audio_start + np.linspace(
            0.0, self.audio_seconds, num_segments + 1
        )
        return np.stack([edges[:-1], edges[1:]], axis=-1)

    # === Planning ===

    def _check_length(self, video):
        if video.num_frames < self.window_frames:
            raise VideoDecodeError(
                f"{video.path}: {video.num_frames} frames ({video.duration:.2f}s), "
                f"shorter than one window of the model ({self.window_frames} frames: "
                f"{self.num_frames} sampled with stride {self.frame_stride}); use a "
                "longer file, or predict it as one clip without --timeline."
            )

    def _plans(self, video, track_span):
        """The windows' `_Plan`s, made one at a time as the stream needs them."""
        times, durations = video.frame_times, video.frame_durations
        span = self.window_frames
        for index in itertools.count():
            start = times[0] + index * self.stride
            first = int(np.searchsorted(times, start - _START_TOLERANCE_S))
            if first + span > video.num_frames:
                return
            indices = first + sample_frame_indices(
                span,
                self.sampling,
                num_frames=self.num_frames,
                stride=self.frame_stride,
            )
            last_frame = first + span - 1
            clip_span = (
                float(times[indices[0]]),
                float(times[indices[-1]] + durations[indices[-1]]),
            )
            audio_start = None
            if self.audio_frames is not None:
                audio_start = audio_window_start(
                    *clip_span, self.audio_seconds, *track_span
                )
            yield _Plan(
                index,
                first,
                indices,
                frozenset(indices.tolist()),
                float(times[first]),
                float(times[last_frame] + durations[last_frame]),
                audio_start,
            )

    def _open_audio(self, path, video):
        if self.audio_frames is None:
            return None
        try:
            return _AudioStream(path)
        except AudioDecodeError as error:
            if self.missing_audio != "silence" or "has no audio stream" not in str(
                error
            ):
                raise
        return None

    # === Streaming ===

    def _stream(self, video, audio):
        if audio is not None:
            track_span = (audio.start_time, audio.end_time)
        else:  # silence stays inside the video, as `ClipDecoder` keeps it
            track_span = (video.frame_times[0], video.frame_times[0] + video.duration)
        plans = self._plans(video, track_span)
        upcoming = next(plans, None)
        open_plans = collections.deque()  # started, some frames still to come
        frames = {}
        for index, frame in video.frames_in_order():
            while upcoming is not None and upcoming.first <= index:
                open_plans.append(upcoming)
                upcoming = next(plans, None)
            if any(index in plan.wanted for plan in open_plans):
                frames[index] = video.to_rgb(frame)
            while open_plans and open_plans[0].last <= index:
                plan = open_plans.popleft()
                yield self._window(plan, frames, video, audio)
                following = open_plans[0] if open_plans else upcoming
                if following is None:
                    return
                for old in [i for i in frames if i < following.first]:
                    del frames[old]
                if audio is not None:
                    audio.drop_before(following.audio_start)
        unfinished = open_plans[0] if open_plans else upcoming
        if unfinished is not None:
            missing = sorted(unfinished.wanted - set(frames))
            raise VideoDecodeError(
                f"{video.path}: frame {missing[0]} of {video.num_frames} never came "
                "out of the decoder. The file is truncated or corrupt; re-encode it."
            )

    def _window(self, plan, frames, video, audio):
        indices = plan.indices
        waveform = None
        if self.audio_frames is not None:
            num_samples = fbank_lib.num_samples_for_frames(self.audio_frames)
            if audio is None:
                waveform = np.zeros(num_samples, np.float32)
            else:
                waveform = audio.window(plan.audio_start, num_samples)
        clip = DecodedClip(
            video.path,
            np.stack([frames[int(i)] for i in indices]),
            video.frame_times[indices],
            video.frame_durations[indices],
            waveform,
            plan.audio_start,
        )
        return TimelineWindow(plan.index, plan.start, plan.end, clip)


def per_second_average(intervals, values):
    """Averages per-segment values over the whole seconds their centres fall in.

    Windows that overlap give a second several segments; each second gets
    their mean. Seconds no segment covers are left out.

    Args:
        intervals: `(..., 2)` `[start, end]` seconds of each segment.
        values: `(..., K)` one row per segment (e.g. logits).

    Returns:
        `(seconds, averaged)`: int64 `(S,)` sorted seconds, float64 `(S, K)`.

    Example:

    >>> import numpy as np
    >>> seconds, mean = per_second_average(
    ...     np.array([[0.0, 1.0], [0.5, 1.5], [1.0, 2.0]]),
    ...     np.array([[1.0], [3.0], [5.0]]))
    >>> seconds.tolist(), mean[:, 0].tolist()
    ([0, 1], [1.0, 4.0])
    """
    intervals = np.asarray(intervals, np.float64).reshape(-1, 2)
    values = np.asarray(values, np.float64)
    values = values.reshape(intervals.shape[0], -1)
    # A centre on a second's edge (segments shifted by float rounding) joins
    # the second it starts.
    centres = intervals.mean(axis=1)
    seconds = np.floor(centres + 1e-6).astype(np.int64)
    covered, slot = np.unique(seconds, return_inverse=True)
    totals = np.zeros((covered.shape[0], values.shape[1]))
    np.add.at(totals, slot, values)
    counts = np.bincount(slot, minlength=covered.shape[0])[:, None]
    return covered, totals / counts


def _stack(inputs):
    return {name: np.stack([view[name] for view in inputs]) for name in inputs[0]}


class _ForwardVideoReader(VideoReader):
    """A `VideoReader` that also decodes the whole stream once, in order."""

    def frames_in_order(self):
        """Yields `(frame index, PyAV frame)` of every frame, first to last."""
        first = self._keyframe_pts[0]
        frames = self._seek(self._keyframe_dts.get(first, first))
        for frame in self._frames_until(frames, int(self._pts[-1])):
            index = self._pts_to_index.get(frame.pts)
            if index is not None:  # frames an edit list cuts away are not shown
                yield index, frame

    def to_rgb(self, frame):
        """The frame as uint8 RGB, rotated as a player shows it."""
        # A copy: PyAV's array is a view that keeps the whole converted
        # FFmpeg frame alive. The copy is compact numpy memory, which
        # tracemalloc counts (the memory test measures the frames held).
        return self._to_rgb(frame).copy()


class _AudioStream(AudioReader):
    """An `AudioReader` that decodes its track once, front to back, and keeps
    the samples between the earliest window still to come and the latest
    sample decoded so far."""

    def __init__(self, path):
        super().__init__(path)
        self._resampler = self._av.AudioResampler(format="flt", rate=self.sample_rate)
        self._frames = self._decode_from(self.start_time)
        try:
            self._next_frame = next(self._frames, None)
        except AudioDecodeError:
            self.close()
            raise
        # swresample keeps the first output sample aligned with the first
        # input sample, so sample k sits at origin + k / sample_rate, as in
        # `AudioReader.read`.
        if self._next_frame is None:
            self._origin = self.start_time
        else:
            self._origin = self._next_frame.pts * self._time_base
        self._samples = np.zeros(0, np.float32)
        self._offset = 0  # track sample index of self._samples[0]

    def window(self, start, num_samples):
        """The real audio of the window at `start`, as `ClipDecoder` cuts it:
        zeros where the window leaves the track, then cut to the samples
        inside the track."""
        begin = self._position(start)
        self._decode_until(begin + num_samples)
        window = np.zeros(num_samples, np.float32)
        source = max(begin - self._offset, 0)
        target = max(self._offset - begin, 0)
        length = min(self._samples.shape[0] - source, num_samples - target)
        if length > 0:
            window[target : target + length] = self._samples[source : source + length]
        return window[: self.samples_inside(start, num_samples)]

    def drop_before(self, time):
        """Forgets the samples before `time` (no later window starts earlier)."""
        drop = min(max(self._position(time) - self._offset, 0), self._samples.shape[0])
        self._samples = self._samples[drop:].copy()
        self._offset += drop

    def _position(self, time):
        return int(round((time - self._origin) * self.sample_rate))

    def _decode_until(self, end):
        pieces = [self._samples]
        decoded = self._offset + self._samples.shape[0]
        while decoded < end and self._resampler is not None:
            frame, self._next_frame = self._next_frame, None
            if frame is None:
                frame = next(self._frames, None)
            if frame is None:  # the end: flush the resampler, once
                outputs, self._resampler = self._resample(self._resampler, None), None
            else:
                outputs = self._resample(self._resampler, frame)
            for out in outputs:
                pieces.append(self._mono(out))
                decoded += pieces[-1].shape[0]
        if len(pieces) > 1:
            self._samples = np.concatenate(pieces)

    def _mono(self, frame):
        samples = _mono(frame)
        if not np.isfinite(samples).all():
            raise AudioDecodeError(
                f"{self.path}: the audio track holds non-finite samples (NaN or "
                "Inf), so it cannot be used. Re-encode the audio (e.g. `ffmpeg -i "
                "in.mp4 -c:v copy -c:a aac out.mp4`) or drop the file."
            )
        return samples

    def close(self):
        # `MediaReader` closes a file it cannot open, before `_frames` exists.
        frames = getattr(self, "_frames", None)
        if frames is not None:
            frames.close()
        super().close()
