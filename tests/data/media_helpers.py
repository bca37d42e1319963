"""Helpers for the data-pipeline tests: self-describing video and audio.

Frames carry their own index as an 8-bit barcode (white or black vertical
bars), which survives H.264 compression, so a test can read back which frame
it got. Audio carries short clicks at known times.
"""

import numpy as np

BAR_WIDTH = 8


def barcode_frames(num_frames, height=48, width=64):
    """Frames whose index is written as 8 black/white bars (bit b = bar b)."""
    frames = np.full((num_frames, height, width, 3), 0, np.uint8)
    for index in range(num_frames):
        for bit in range(8):
            if (index >> bit) & 1:
                frames[index, :, bit * BAR_WIDTH : (bit + 1) * BAR_WIDTH] = 255
    return frames


def read_barcodes(frames):
    """Recovers the frame index from each barcode frame (uint8 or float)."""
    frames = np.asarray(frames, np.float32)
    codes = []
    for frame in frames:
        value = 0
        for bit in range(8):
            # Sample the bar's centre, away from codec ringing at the edges.
            bar = frame[:, bit * BAR_WIDTH + 2 : (bit + 1) * BAR_WIDTH - 2]
            if bar.mean() > 127:
                value |= 1 << bit
        codes.append(value)
    return codes


def click_track(duration_s, click_times, sample_rate, channels=1, amplitude=0.8):
    """Silence with 10 ms 1 kHz bursts starting at `click_times`."""
    audio = np.zeros((channels, int(round(duration_s * sample_rate))), np.float32)
    burst = amplitude * np.sin(
        2 * np.pi * 1000 * np.arange(sample_rate // 100) / sample_rate
    )
    for time in click_times:
        start = int(round(time * sample_rate))
        audio[:, start : start + burst.shape[0]] = burst[: audio.shape[1] - start]
    return audio


def onset_times(waveform, sample_rate, threshold=0.2, min_gap_s=0.05):
    """Start times of bursts in a mono waveform."""
    loud = np.flatnonzero(np.abs(waveform) > threshold)
    if loud.size == 0:
        return np.zeros(0)
    starts = loud[np.r_[True, np.diff(loud) > min_gap_s * sample_rate]]
    return starts / sample_rate
