"""The synthetic audio-visual set: real files whose label needs all three cues."""

import hashlib
import os

import numpy as np
import pytest

from keras_ca2st.data import (
    AudioReader,
    VideoReader,
    make_synthetic_dataset,
    read_class_names,
    read_csv_annotations,
)
from keras_ca2st.data.synthetic import TONE_FREQUENCIES, label_factors


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_dataset(root, num_train=24, num_val=8, seed=11)


def _object_mask(frame):
    # The object is far brighter than the dark background in red or blue.
    return frame.max(axis=-1) > 150


def _object_centre_x(frame):
    """Circular mean of the object's columns (it wraps around the edges)."""
    columns = np.flatnonzero(_object_mask(frame).any(axis=0))
    angles = 2 * np.pi * (columns + 0.5) / frame.shape[1]
    angle = np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())
    return (angle % (2 * np.pi)) * frame.shape[1] / (2 * np.pi)


def _decode(record):
    with VideoReader(record.path) as reader:
        frames = reader.read(range(reader.num_frames))
    with AudioReader(record.path) as reader:
        audio = reader.read(0.0, int(reader.duration * 16000))
    return frames, audio


def test_layout_and_annotations(synthetic):
    assert synthetic.num_classes == 8
    assert read_class_names(synthetic.class_names_path) == synthetic.class_names
    train = read_csv_annotations(synthetic.train_annotations, synthetic.root)
    val = read_csv_annotations(synthetic.val_annotations, synthetic.root)
    assert len(train) == 24 and len(val) == 8
    assert sorted(r.label for r in val) == list(range(8)), "balanced classes"
    assert np.bincount([r.label for r in train], minlength=8).tolist() == [3] * 8
    sizes = [os.path.getsize(r.path) for r in train]
    assert max(sizes) < 40_000, "files stay tiny"


def test_every_factor_is_encoded_as_described(synthetic):
    records = read_csv_annotations(synthetic.train_annotations, synthetic.root)
    start_positions = {0: [], 1: []}
    for record in records:
        appearance, direction, sound = label_factors(record.label)
        frames, audio = _decode(record)
        assert frames.shape == (32, 64, 64, 3)

        # Appearance, from one frame: colour and shape of the object.
        first = frames[0].astype(np.float32)
        mask = _object_mask(frames[0])
        red, blue = first[mask][:, 0].mean(), first[mask][:, 2].mean()
        assert (red > blue) == (appearance == 0)
        rows = np.flatnonzero(mask.any(axis=1))
        fill = mask.sum() / (rows.size * rows.size)  # square ~1, disc ~pi/4
        assert (fill > 0.9) == (appearance == 0)

        # Motion, from several frames: wrapped displacement per frame.
        centres = np.array([_object_centre_x(f) for f in frames[::4]])
        steps = (np.diff(centres) + 32) % 64 - 32
        assert np.all(np.sign(steps) == (1 if direction == 0 else -1))
        start_positions[direction].append(centres[0])

        # Sound: the dominant frequency of the decoded track.
        spectrum = np.abs(np.fft.rfft(audio))
        peak = np.argmax(spectrum) * 16000 / audio.shape[0]
        assert peak == pytest.approx(TONE_FREQUENCIES[sound], rel=0.02)

    # One frame says nothing about direction: both directions start anywhere.
    for positions in start_positions.values():
        assert min(positions) < 20 and max(positions) > 44


def test_same_seed_same_files_other_seed_other_files(synthetic, tmp_path):
    def digest(root):
        names = sorted(os.listdir(os.path.join(root, "videos")))
        content = hashlib.sha256()
        for name in names:
            with open(os.path.join(root, "videos", name), "rb") as file:
                content.update(file.read())
        with open(os.path.join(root, "train.csv"), "rb") as file:
            content.update(file.read())
        return content.hexdigest()

    again = make_synthetic_dataset(tmp_path / "again", num_train=24, num_val=8, seed=11)
    other = make_synthetic_dataset(tmp_path / "other", num_train=24, num_val=8, seed=12)
    assert digest(again.root) == digest(synthetic.root)
    assert digest(other.root) != digest(synthetic.root)
