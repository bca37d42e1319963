"""`MediaReader`, the base of both readers: open, close once, describe."""

import re

import pytest
from media_helpers import click_track

from keras_ca2st.data import AudioDecodeError, AudioReader, VideoReader
from keras_ca2st.data.errors import VideoDecodeError
from keras_ca2st.data.media import MediaReader


@pytest.mark.parametrize("reader_class", [VideoReader, AudioReader])
def test_readers_close_once_and_describe_themselves(make_video, reader_class):
    path = make_video(num_frames=25, fps=25, audio=click_track(1.0, [0.5], 16000))
    with reader_class(path) as reader:
        assert isinstance(reader, MediaReader)
        assert reader._container is not None
        text = repr(reader)
    assert reader._container is None  # the with block closed it
    reader.close()  # a second close is a no-op
    assert text.startswith(f"{reader_class.__name__}({path!r}, ")
    if reader_class is VideoReader:
        assert text.endswith("frames=25, size=64x48, fps=25.000)")
    else:
        assert re.search(r", 16000 Hz, 1 ch, \d+\.\d{3}s\)$", text), text


class _Refusing(MediaReader):
    """A reader whose header check fails, keeping itself for inspection."""

    error_class = VideoDecodeError
    made = []

    def _open(self):
        self.made.append(self)
        raise VideoDecodeError(f"{self.path}: refused")


def test_a_failed_header_closes_the_file(make_video):
    path = make_video(num_frames=5)
    with pytest.raises(VideoDecodeError, match="refused"):
        _Refusing(path)
    assert _Refusing.made[-1]._container is None


def test_open_errors_use_the_reader_error_class(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="file is empty"):
        VideoReader(empty)
    with pytest.raises(AudioDecodeError, match="file is empty"):
        AudioReader(empty)
    with pytest.raises(AudioDecodeError, match="no such file"):
        AudioReader(tmp_path / "missing.mp4")
