"""`WindowStream` on real mp4 files: the clips `ClipDecoder` would decode, each
frame decoded once, and memory that does not grow with the file's length."""

import tracemalloc

import numpy as np
import pytest
from media_helpers import click_track, read_barcodes

from keras_ca2st.data import (
    ClipDecoder,
    ClipSpec,
    ClipTransform,
    VideoDecodeError,
    VideoRecord,
    WindowStream,
)
from keras_ca2st.data.timeline import per_second_average

FPS = 8
# CA²ST's inputs, small: 4 frames of 32×32, 1.28 s of audio, both time inputs.
SPEC = ClipSpec(
    ("video", "audio", "video_times", "audio_times"),
    num_frames=4,
    crop_size=32,
    audio_frames=128,
)


def barcode_video(make_video, seconds, name=None):
    """Barcode frames (index mod 256) and a click every 0.7 s, 96×128 at 8 fps."""
    clicks = np.arange(0.2, seconds, 0.7)
    audio = click_track(seconds, clicks, 16000)
    return make_video(
        num_frames=int(seconds * FPS),
        fps=FPS,
        height=96,
        width=128,
        audio=audio,
        keyframe_interval=16,
        name=name,
    )


def reference_clip(stream, path, window):
    """What `ClipDecoder` decodes for the window's segment as a record."""
    decoder = ClipDecoder(
        num_frames=stream.num_frames,
        sampling=stream.sampling,
        frame_stride=stream.frame_stride,
        audio_frames=stream.audio_frames,
    )
    last_frame = round(window.start * FPS) + stream.window_frames - 1
    # Frames from `start` up to and including the segment's last one.
    record = VideoRecord(path, 0, start=window.start, end=(last_frame + 0.5) / FPS)
    return decoder.decode(record)


@pytest.mark.parametrize("sampling", ["dense", "uniform"])
def test_windows_are_the_clips_the_clip_decoder_decodes(make_video, sampling):
    path = barcode_video(make_video, 12.0)
    stream = WindowStream.for_spec(SPEC, stride=0.75, sampling=sampling, frame_stride=3)
    transform = ClipTransform(SPEC)
    windows = list(stream.windows(path))
    span = stream.window_frames
    # Every start 0.75 s apart whose whole segment fits in the 96 frames.
    starts = [s for s in np.arange(0, 12, 0.75) if np.ceil(s * FPS) + span <= 96]
    np.testing.assert_allclose(
        [w.start for w in windows], np.ceil(np.array(starts) * FPS) / FPS
    )
    # Overlapping windows, yet every frame up to the last window's end was
    # decoded exactly once.
    last = max(read_barcodes(windows[-1].clip.frames))
    assert stream.decoded_frames == last + 1 <= 96
    assert len(windows) * span > stream.decoded_frames
    for window in windows[:3] + windows[-2:]:
        clip = window.clip
        expected = reference_clip(stream, path, window)
        np.testing.assert_array_equal(clip.frames, expected.frames)
        np.testing.assert_array_equal(clip.frame_times, expected.frame_times)
        assert clip.audio_start == pytest.approx(expected.audio_start, abs=1e-9)
        ours, theirs = transform(clip), transform(expected)
        assert list(ours) == list(SPEC.inputs)
        np.testing.assert_array_equal(ours["video"], theirs["video"])
        np.testing.assert_array_equal(ours["video_times"], theirs["video_times"])
        np.testing.assert_array_equal(ours["audio_times"], theirs["audio_times"])
        np.testing.assert_allclose(ours["audio"], theirs["audio"], atol=1e-4)
        assert np.std(ours["audio"]) > 0.05  # the clicks are in it
        assert window.end == pytest.approx(window.start + span / FPS)


def test_peak_memory_does_not_grow_with_the_video_length(make_video):
    """tracemalloc's peak over a whole stream of a 1- and a 2-minute file.

    It counts numpy and Python memory: the frames the stream holds (numpy
    copies), its audio buffer and the file's frame index, not FFmpeg's own
    decoder state (fixed by the codec, not the length).
    """
    stream = WindowStream.for_spec(SPEC, stride=1.0, frame_stride=4)
    peaks = []
    for minutes in (1, 2):
        path = barcode_video(make_video, 60.0 * minutes)
        tracemalloc.start()
        count = sum(1 for _ in stream.windows(path))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == 60 * minutes - 1  # the last start leaves too few frames
    # The second minute adds 480 frames to the index (timestamps, ~100 bytes
    # a frame) and nothing else: holding the frames windows read would add
    # 4.5 MB (36 KB each), holding the audio 7.7 MB.
    added_frames = 60 * FPS
    assert peaks[1] - peaks[0] < 200 * added_frames, peaks
    assert peaks[0] < 2_000_000, peaks  # about one window's frames and audio


def test_too_short_files_and_bad_strides_are_refused(make_video):
    path = barcode_video(make_video, 1.0)
    stream = WindowStream.for_spec(SPEC, stride=1.0, frame_stride=4)
    with pytest.raises(VideoDecodeError, match="shorter than one window") as error:
        next(stream.windows(path))
    assert str(error.value).startswith(path)
    for stride in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="stride must be positive"):
            WindowStream(stride)


def test_per_second_average_bins_segments_by_their_centre():
    intervals = np.array([[[0.0, 1.0], [1.0, 2.0]], [[1.0, 2.0], [2.0, 3.0]]])
    values = np.arange(8.0).reshape(2, 2, 2)
    seconds, mean = per_second_average(intervals, values)
    assert seconds.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(mean, [[0, 1], [3, 4], [6, 7]])
