"""Random-access video frame decoding with PyAV.

A clip needs 16 frames out of hundreds, so decoding whole files wastes most of
the work. `VideoReader` first demuxes the packet headers (cheap: no decoding)
to learn every frame's presentation timestamp and which frames are keyframes,
then, for the requested frame indices, seeks to the nearest keyframe and
decodes forward only as far as needed. Frame indices and timestamps come from
the real presentation timestamps, so variable-frame-rate files are indexed
correctly.

Two things the container decides are handled here rather than left to the
caller. Seeking: a seek to a keyframe's presentation time lands on that
keyframe in MP4 and Matroska, but one group of pictures late in containers
that seek by decoding time (MPEG-TS). When a seek lands after the frame it
needs, the reader seeks to the keyframe's decoding time instead (and does so
from then on for that file), then steps back one keyframe at a time.
Orientation: phones store portrait video as landscape frames plus a display
rotation; frames are returned as a player shows them (rotated by multiples of
90 degrees; the mirror flips of a display matrix are not applied).
"""

import bisect
from fractions import Fraction

import numpy as np

from keras_ca2st.data.errors import VideoDecodeError
from keras_ca2st.data.media import MediaReader


class VideoReader(MediaReader):
    """Decodes selected frames of a video file, seeking instead of scanning.

    On opening, the reader demuxes the video packets (no decoding) to build
    an index of presentation timestamps and keyframes. `read` then decodes
    only the groups of pictures that contain the requested frames.

    Args:
        path: path of a video file (any container/codec FFmpeg reads).
        decoder_threads: FFmpeg decoder threads. Keep 1 when the data
            pipeline already runs several workers, so the cores are not
            oversubscribed.

    Attributes:
        num_frames: number of frames in the file.
        rotation: display rotation in degrees, counter-clockwise (0, 90, 180
            or 270), applied to the returned frames.
        frame_times: float64 `(num_frames,)` presentation time of each frame
            in seconds (from the container's timestamps, so variable frame
            rates are exact).
        frame_durations: float64 `(num_frames,)` display duration of each
            frame in seconds.
        fps: average frame rate.
        height, width: frame size in pixels, as displayed (after rotation).
        num_decoded_frames: frames decoded so far (seeking keeps this far
            below `num_frames`).

    Example:

    >>> with VideoReader("clip.mp4") as reader:  # doctest: +SKIP
    ...     frames = reader.read([0, 4, 8, 12])
    ...     frames.shape  # (4, height, width, 3), uint8 RGB
    """

    error_class = VideoDecodeError

    def __init__(self, path, decoder_threads=1):
        self.decoder_threads = decoder_threads
        # Counts frames the decoder produced, so tests and benchmarks can
        # check that seeking avoids decoding whole files.
        self.num_decoded_frames = 0
        super().__init__(path)

    def _open(self):
        self._open_stream(self.decoder_threads)
        self._build_index()
        self.rotation = self._display_rotation()
        if self.rotation in (90, 270):
            self.height, self.width = self.width, self.height

    # === Index ===

    def _open_stream(self, decoder_threads):
        if not self._container.streams.video:
            raise VideoDecodeError(
                f"{self.path}: has no video stream (audio-only file?). Remove it "
                "from the video annotation file."
            )
        self._stream = self._container.streams.video[0]
        self._stream.thread_count = decoder_threads
        self._time_base = self._stream.time_base or Fraction(1, 1)
        self.height = self._stream.codec_context.height
        self.width = self._stream.codec_context.width

    def _build_index(self):
        pts, durations, keyframe_pts, keyframe_seek = [], [], [], {}
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:  # flush packet at end of stream
                    continue
                timestamp = packet.pts if packet.pts is not None else packet.dts
                if timestamp is None:
                    raise VideoDecodeError(
                        f"{self.path}: packets carry no timestamps, so frames "
                        "cannot be located. Remux the file to mp4 "
                        "(`ffmpeg -i in -c copy out.mp4`)."
                    )
                if packet.is_keyframe:
                    keyframe_pts.append(int(timestamp))
                    # Seeking to the decoding time never lands after the
                    # keyframe, whichever timestamp the container seeks by.
                    seek_to = packet.dts if packet.dts is not None else timestamp
                    keyframe_seek[int(timestamp)] = min(int(seek_to), int(timestamp))
                # Packets an edit list cuts away (files trimmed without
                # re-encoding) are decoded but never shown: seek points, not
                # frames.
                if packet.is_discard:
                    continue
                pts.append(timestamp)
                durations.append(packet.duration or 0)
        except self._av.FFmpegError as error:
            # A damaged tail still leaves the frames demuxed so far usable.
            if not pts:
                raise VideoDecodeError(
                    f"{self.path}: cannot read video packets ({error}). The file "
                    "is corrupt; re-download or re-encode it."
                ) from error
        if not pts:
            raise VideoDecodeError(
                f"{self.path}: the video stream contains no frames. Re-encode "
                "the file or remove it from the annotation file."
            )
        order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
        self._pts = np.asarray(pts, dtype=np.int64)[order]
        self._pts_to_index = {int(p): i for i, p in enumerate(self._pts)}
        self._keyframe_pts = sorted(keyframe_pts) or [int(self._pts[0])]
        self._keyframe_dts = keyframe_seek
        self._seeks_by_decoding_time = False
        time_base = float(self._time_base)
        self.num_frames = len(self._pts)
        self.frame_times = self._pts * time_base
        self.fps = self._average_fps()
        packet_durations = np.asarray(durations, dtype=np.float64)[order] * time_base
        # Prefer the real gap to the next frame; the last frame keeps its
        # packet duration (or the average frame period if it has none).
        gaps = np.diff(self.frame_times, append=np.nan)
        fallback = np.where(packet_durations > 0, packet_durations, 1.0 / self.fps)
        self.frame_durations = np.where(np.isfinite(gaps) & (gaps > 0), gaps, fallback)

    def _average_fps(self):
        rate = self._stream.average_rate or self._stream.guessed_rate
        if rate:
            return float(rate)
        if len(self._pts) > 1:
            span = self.frame_times[-1] - self.frame_times[0]
            if span > 0:
                return (len(self._pts) - 1) / span
        return 25.0

    @property
    def duration(self):
        """Time from the first frame's start to the last frame's end, seconds."""
        return float(
            self.frame_times[-1] + self.frame_durations[-1] - self.frame_times[0]
        )

    # === Decoding ===

    def read(self, indices):
        """Decodes the frames at `indices` (any order, repeats allowed).

        Args:
            indices: sequence of frame indices in `[0, num_frames)`.

        Returns:
            uint8 array `(len(indices), height, width, 3)`, RGB.

        Raises:
            VideoDecodeError: an index is out of range or a frame cannot be
                decoded (corrupt or truncated data).
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_frames):
            raise VideoDecodeError(
                f"{self.path}: frame indices {indices.tolist()} are outside "
                f"[0, {self.num_frames}). The annotation's start/end may not "
                "match the file."
            )
        wanted = sorted({int(self._pts[i]) for i in indices})
        decoded = self._decode_pts(wanted)
        frames = [decoded[int(self._pts[i])] for i in indices]
        if not frames:
            return np.zeros((0, self.height, self.width, 3), dtype=np.uint8)
        return np.stack(frames)

    def _display_rotation(self):
        """The stream's display rotation (0, 90, 180, 270), read off its first
        frame (PyAV exposes the display matrix per frame)."""
        try:
            self._container.seek(
                self._keyframe_dts.get(self._keyframe_pts[0], self._keyframe_pts[0]),
                stream=self._stream,
                backward=True,
            )
            frame = next(self._container.decode(self._stream), None)
        except self._av.FFmpegError:
            return 0  # the first read reports a damaged start with its frame
        degrees = getattr(frame, "rotation", 0) or 0
        return int(round(degrees / 90.0)) % 4 * 90

    def _keyframe_before(self, pts, steps_back=0):
        position = bisect.bisect_right(self._keyframe_pts, pts) - 1 - steps_back
        return self._keyframe_pts[max(position, 0)]

    def _seek_point(self, target, attempt):
        """`(timestamp, keyframe)` of seek attempt `attempt` for frame `target`.

        Attempt 0 seeks to the keyframe's presentation time, unless this
        file already showed that its container seeks by decoding time; each
        later attempt uses the decoding time, one keyframe further back.
        """
        if not self._seeks_by_decoding_time:
            if attempt == 0:
                keyframe = self._keyframe_before(target)
                return keyframe, keyframe
            attempt -= 1
        keyframe = self._keyframe_before(target, steps_back=attempt)
        return self._keyframe_dts.get(keyframe, keyframe), keyframe

    def _decode_pts(self, wanted):
        """Decodes the frames whose pts are in the sorted list `wanted`."""
        decoded = {}
        wanted_pts = set(wanted)
        frames = None  # the live decoding generator
        last_pts = None
        for target in wanted:
            if target in decoded:
                continue
            # Decode forward when the target is in the GOP being decoded (or
            # in the next ones with no keyframe in between); otherwise seeking
            # to its keyframe is cheaper than decoding everything between.
            seek = (
                frames is None
                or last_pts is None
                or target <= last_pts
                or self._keyframe_before(target) > last_pts
            )
            attempt = 0
            while True:
                if seek:
                    timestamp, keyframe = self._seek_point(target, attempt)
                    frames = self._seek(timestamp)
                    last_pts = None
                first_pts = None
                for frame in self._frames_until(frames, target):
                    first_pts = frame.pts if first_pts is None else first_pts
                    last_pts = frame.pts
                    if frame.pts in wanted_pts and frame.pts not in decoded:
                        decoded[frame.pts] = self._to_rgb(frame)
                overshot = seek and first_pts is not None and first_pts > target
                if target in decoded or not overshot:
                    break
                # The seek landed after the target: by decoding time, then
                # one keyframe earlier at a time.
                if attempt == 0 and not self._seeks_by_decoding_time:
                    self._seeks_by_decoding_time = True
                elif keyframe == self._keyframe_pts[0]:
                    break
                else:
                    attempt += 1
                seek = True
            if target not in decoded:
                raise VideoDecodeError(
                    f"{self.path}: frame {self._pts_to_index[target]} (t="
                    f"{target * float(self._time_base):.3f}s) could not be decoded. "
                    "The file is truncated or corrupt; re-encode it."
                )
        return decoded

    def _to_rgb(self, frame):
        image = frame.to_ndarray(format="rgb24")
        if self.rotation:
            # np.rot90 turns counter-clockwise, as the display matrix does.
            image = np.ascontiguousarray(np.rot90(image, self.rotation // 90))
        return image

    def _seek(self, timestamp):
        try:
            self._container.seek(
                timestamp,
                stream=self._stream,
                backward=True,
                any_frame=False,
            )
        except self._av.FFmpegError as error:
            raise VideoDecodeError(
                f"{self.path}: seeking failed ({error}). Re-encode the file."
            ) from error
        return self._container.decode(self._stream)

    def _frames_until(self, frames, target):
        """Yields decoded frames up to and including the one at `target` pts."""
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except self._av.FFmpegError as error:
                raise VideoDecodeError(
                    f"{self.path}: decoding failed ({error}). The file is "
                    "corrupt; re-encode it."
                ) from error
            self.num_decoded_frames += 1
            if frame.pts is None:
                continue
            yield frame
            if frame.pts >= target:
                return

    def _summary(self):
        return (
            f"frames={self.num_frames}, size={self.width}x{self.height}, "
            f"fps={self.fps:.3f}"
        )
