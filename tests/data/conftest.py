"""Shared fixtures for the data-pipeline tests: real mp4 files written with PyAV."""

import pytest
from media_helpers import barcode_frames

from keras_ca2st.data.encode import write_mp4


@pytest.fixture
def make_video(tmp_path):
    """Factory: writes a barcode video (optionally with audio) and returns its path."""
    counter = iter(range(10**6))

    def _make(
        num_frames=100,
        fps=25,
        height=48,
        width=64,
        audio=None,
        audio_sample_rate=16000,
        frame_times=None,
        keyframe_interval=None,
        name=None,
    ):
        path = tmp_path / (name or f"video_{next(counter)}.mp4")
        write_mp4(
            path,
            barcode_frames(num_frames, height, width),
            fps=fps,
            audio=audio,
            audio_sample_rate=audio_sample_rate,
            frame_times=frame_times,
            keyframe_interval=keyframe_interval,
        )
        return str(path)

    return _make
