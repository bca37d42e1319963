"""Writing small H.264/AAC mp4 files with PyAV.

Used by the synthetic dataset, the tests (which check that what is decoded is
what was encoded) and the throughput benchmark.
"""

import os
from fractions import Fraction

import numpy as np

from keras_ca2st.data.media import import_av

# Audio frames handed to the AAC encoder; AAC consumes 1024 samples per packet.
_AUDIO_CHUNK = 1024
# Timestamp resolution for variable-frame-rate files (the MPEG 90 kHz clock).
_VFR_TIME_BASE = Fraction(1, 90000)


def write_mp4(
    path,
    frames,
    fps=16,
    audio=None,
    audio_sample_rate=16000,
    frame_times=None,
    qp=18,
    keyframe_interval=None,
    audio_bit_rate=None,
):
    """Writes frames (and optionally audio) to an H.264 + AAC mp4 file.

    Args:
        path: output file path.
        frames: uint8 array `(num_frames, height, width, 3)`, RGB. Height and
            width must be even (yuv420p chroma subsampling).
        fps: nominal frame rate.
        audio: optional float waveform in [-1, 1], shape `(samples,)` (mono)
            or `(channels, samples)` with 1 or 2 channels.
        audio_sample_rate: sampling rate of `audio` in Hz.
        frame_times: optional increasing presentation times in seconds, one
            per frame, for variable-frame-rate files. Defaults to `i / fps`.
        qp: x264 constant quantiser (lower is higher quality; 0 is lossless
            in YUV). A constant quantiser, unlike x264's CRF rate control, gives
            byte-identical files for identical input in any process.
        keyframe_interval: x264 GOP length; `None` keeps x264's default.
        audio_bit_rate: AAC bit rate in bits/s; defaults to 64 kb/s per
            channel.

    Returns:
        The path written.

    Example:

    >>> import numpy as np
    >>> frames = np.zeros((8, 32, 32, 3), np.uint8)
    >>> write_mp4("/tmp/black.mp4", frames, fps=8)  # doctest: +SKIP
    '/tmp/black.mp4'
    """
    av = import_av()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            "frames must be a uint8 array (num_frames, height, width, 3); got "
            f"{frames.dtype} {frames.shape}."
        )
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"Frame size must be even for yuv420p; got {width}x{height}.")
    path = os.fspath(path)
    with av.open(path, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator())
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # Reproducible output: one thread, and a constant quantiser instead of
        # CRF, whose macroblock-tree rate control was seen to produce
        # different bitstreams for the same frames after other encoders had
        # run in the process.
        options = {"qp": str(qp), "threads": "1"}
        if keyframe_interval is not None:
            options["g"] = str(keyframe_interval)
            options["keyint_min"] = str(keyframe_interval)
            options["sc_threshold"] = "0"
        video.options = options
        video.codec_context.thread_count = 1
        if frame_times is not None:
            video.codec_context.time_base = _VFR_TIME_BASE
            video.time_base = _VFR_TIME_BASE
            pts = np.round(np.asarray(frame_times) / float(_VFR_TIME_BASE))
            if len(pts) != len(frames) or np.any(np.diff(pts) <= 0):
                raise ValueError("frame_times must be increasing, one per frame.")
        audio_stream, audio = _add_audio_stream(
            container, audio, audio_sample_rate, audio_bit_rate
        )

        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), "rgb24")
            if frame_times is not None:
                frame.pts = int(pts[index])
                frame.time_base = _VFR_TIME_BASE
            container.mux(video.encode(frame))
        container.mux(video.encode(None))

        if audio_stream is not None:
            layout = audio_stream.layout.name
            for start in range(0, audio.shape[1], _AUDIO_CHUNK):
                chunk = np.ascontiguousarray(audio[:, start : start + _AUDIO_CHUNK])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = audio_sample_rate
                frame.pts = start
                frame.time_base = Fraction(1, audio_sample_rate)
                container.mux(audio_stream.encode(frame))
            container.mux(audio_stream.encode(None))
    return path


def _add_audio_stream(container, audio, sample_rate, bit_rate):
    if audio is None:
        return None, None
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise ValueError(
            f"audio must be (samples,) or (channels<=2, samples); got {audio.shape}."
        )
    stream = container.add_stream("aac", rate=sample_rate)
    stream.layout = "mono" if audio.shape[0] == 1 else "stereo"
    stream.bit_rate = bit_rate or 64000 * audio.shape[0]
    return stream, np.clip(audio, -1.0, 1.0)
