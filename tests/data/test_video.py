"""Video decoding on real mp4 files: right frames, right pixels, clear errors."""

import numpy as np
import pytest
from media_helpers import barcode_frames, read_barcodes

from keras_ca2st.data import VideoDecodeError, VideoReader, write_mp4


@pytest.mark.parametrize(
    "indices",
    [
        [0, 4, 8, 12],
        [199, 3, 3, 150, 151, 40],  # unordered, repeated, far apart
        list(range(0, 200, 13)),
        [57],
    ],
)
def test_reads_exactly_the_requested_frames(make_video, indices):
    path = make_video(num_frames=200, fps=30, keyframe_interval=30)
    with VideoReader(path) as reader:
        assert reader.num_frames == 200
        frames = reader.read(indices)
    assert frames.shape == (len(indices), 48, 64, 3)
    assert frames.dtype == np.uint8
    assert read_barcodes(frames) == list(indices)


def test_seeks_instead_of_decoding_the_whole_file(make_video):
    path = make_video(num_frames=250, fps=30, keyframe_interval=25)
    with VideoReader(path) as reader:
        frames = reader.read([230, 232, 234])
        # From the keyframe at 225, plus decoder look-ahead: not all 235.
        assert reader.num_decoded_frames <= 30
    assert read_barcodes(frames) == [230, 232, 234]


def test_decoded_pixels_match_the_encoded_ones(tmp_path):
    rng = np.random.default_rng(0)
    height, width, num_frames = 48, 64, 20
    ys, xs = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        # Smooth colour gradients that move: content the codec keeps well.
        frames[t, ..., 0] = (xs * 3 + t * 5) % 256
        frames[t, ..., 1] = (ys * 4 + 40) % 256
        frames[t, ..., 2] = 128 + 60 * np.sin((xs + ys + t) / 9.0)
    frames = np.clip(
        frames.astype(np.int16) + rng.integers(-2, 3, frames.shape), 0, 255
    )
    frames = frames.astype(np.uint8)
    path = write_mp4(tmp_path / "gradient.mp4", frames, fps=10, qp=0)
    with VideoReader(path) as reader:
        decoded = reader.read(range(num_frames))
    error = np.abs(decoded.astype(np.int16) - frames.astype(np.int16))
    # yuv420p halves the chroma resolution and rounds RGB<->YUV; nothing more.
    assert error.mean() < 3.0
    assert np.percentile(error, 99) < 16


def test_timestamps_of_a_constant_frame_rate_file(make_video):
    with VideoReader(make_video(num_frames=50, fps=25)) as reader:
        np.testing.assert_allclose(reader.frame_times, np.arange(50) / 25, atol=1e-9)
        np.testing.assert_allclose(reader.frame_durations, 1 / 25, atol=1e-9)
        assert reader.fps == pytest.approx(25.0)
        assert reader.duration == pytest.approx(2.0)


def test_variable_frame_rate_uses_real_timestamps(make_video):
    gaps = np.random.default_rng(3).uniform(0.02, 0.15, 59)
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    path = make_video(num_frames=60, frame_times=times)
    with VideoReader(path) as reader:
        assert reader.num_frames == 60
        np.testing.assert_allclose(reader.frame_times, times, atol=1e-4)
        np.testing.assert_allclose(reader.frame_durations[:-1], gaps, atol=1e-4)
        frames = reader.read([5, 59, 0, 33])
    assert read_barcodes(frames) == [5, 59, 0, 33]


def test_out_of_range_indices_are_a_clear_error(make_video):
    with VideoReader(make_video(num_frames=10)) as reader:
        with pytest.raises(VideoDecodeError, match=r"outside \[0, 10\)"):
            reader.read([0, 10])


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty"):
        VideoReader(path)


def test_missing_file(tmp_path):
    with pytest.raises(VideoDecodeError, match="no such file"):
        VideoReader(tmp_path / "nope.mp4")


def test_truncated_file(make_video, tmp_path):
    data = open(make_video(num_frames=60), "rb").read()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])  # mp4 index (moov) is at the end
    with pytest.raises(VideoDecodeError, match="truncated or corrupt"):
        VideoReader(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(
        np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes()
    )
    with pytest.raises(VideoDecodeError, match="cannot be opened"):
        VideoReader(path)


def test_corrupt_frame_data_fails_only_where_it_is(make_video, tmp_path):
    data = bytearray(open(make_video(num_frames=60, keyframe_interval=10), "rb").read())
    # Scribble over the middle of the media data (the 'mdat' box), leaving the
    # container index intact: frames there are damaged, the first GOP is not.
    mdat = data.find(b"mdat")
    size = int.from_bytes(data[mdat - 4 : mdat], "big")
    middle = mdat + size // 2
    noise = np.random.default_rng(1).integers(0, 256, 200, np.uint8).tobytes()
    data[middle : middle + 200] = noise
    path = tmp_path / "scribbled.mp4"
    path.write_bytes(bytes(data))
    with VideoReader(path) as reader:
        assert read_barcodes(reader.read(range(5))) == list(range(5))
        with pytest.raises(VideoDecodeError, match="scribbled.mp4: decoding failed"):
            reader.read(range(60))


def test_audio_only_file_has_no_video_stream(tmp_path):
    import av

    path = str(tmp_path / "audio_only.m4a")
    with av.open(path, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoDecodeError, match="no video stream"):
        VideoReader(path)


def test_writer_rejects_odd_sizes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", barcode_frames(2, 47, 64))
