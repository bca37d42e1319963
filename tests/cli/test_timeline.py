"""`ca2st predict --timeline` on long mp4 files: a label change found within one
stride, LAVISH's per-second logits, and one clear line for bad input.

The classifier is a tiny CLIP-only model whose head is set here from its
features of clips of two colours, made by the same generator as the long
video; nothing about its weights or outputs is written down.
"""

import csv
import json
import types

import keras
import numpy as np
import pytest

from keras_ca2st.cli.runs import write_run_info
from keras_ca2st.cli.timeline import score_timeline
from keras_ca2st.data import (
    ClipDecoder,
    ClipTransform,
    VideoRecord,
    WindowStream,
    write_mp4,
)
from keras_ca2st.models import (
    LAVISH,
    CA2STBackbone,
    VideoClassifier,
)
from tests.cli.helpers import run_cli
from tests.cli.test_train_cli import assert_one_line_error
from tests.models.test_lavish import tiny_lavish
from tests.test_case import tiny_experts

FPS = 4
CLASSES = ["warm", "cool"]
COLOURS = np.array([(200, 70, 40), (40, 90, 210)], np.float32)
CHANGE_AT = 60.0
# The classifier's clips: 4 frames, 2 apart (0.5 s), so a window spans 1.75 s.
FRAME_STRIDE = 2


def two_colour_frames(seconds, rng, change_at=CHANGE_AT, size=(48, 64)):
    """Noisy warm frames before `change_at` seconds, noisy cool ones after."""
    count = int(seconds * FPS)
    kinds = (np.arange(count) / FPS >= change_at).astype(int)
    noise = rng.normal(0.0, 25.0, (count, *size, 3))
    brightness = rng.uniform(-30.0, 30.0, (count, 1, 1, 1))
    frames = COLOURS[kinds][:, None, None, :] + noise + brightness
    return np.clip(frames, 0, 255).astype(np.uint8)


def tone(seconds, rng):
    """A tone whose pitch wanders, so every second of audio differs."""
    time = np.arange(int(seconds * 16000)) / 16000
    pitch = 300 + 200 * np.sin(2 * np.pi * time / 7) + rng.uniform(0, 50)
    return (0.4 * np.sin(2 * np.pi * np.cumsum(pitch) / 16000)).astype(np.float32)


def write_run(directory, model, frame_stride):
    directory.mkdir()
    model.save(directory / "model.keras")
    info = {"class_names": CLASSES, "data": {"frame_stride": frame_stride}}
    write_run_info(str(directory / "run.json"), info)
    return directory


def colour_classifier(rng):
    """A tiny CLIP classifier whose head is the nearest class mean of its
    (random) features of 8 clips of each colour: closed form, no training."""
    keras.utils.set_random_seed(0)
    experts = tiny_experts(depth=1, names=["spatial"])
    # Late fusion: the head reads the pooled CLIP feature directly.
    backbone = CA2STBackbone(experts=experts, pairs=[], fusion="late_add")
    model = VideoClassifier(backbone, num_classes=2)
    transform = ClipTransform(backbone.clip_spec)
    means = []
    for change_at in (np.inf, 0.0):  # all warm, all cool
        clips = [
            transform.frames(two_colour_frames(1.0, rng, change_at=change_at))
            for _ in range(8)
        ]
        features = backbone.predict({"video": np.stack(clips)}, verbose=0)
        means.append(features["spatial"].mean(axis=0))
    means = np.stack(means)
    # logit_c = m_c·f − |m_c|²/2: the larger logit is the nearer mean.
    head = model.heads["logits"]
    head.set_weights([means.T, -0.5 * (means**2).sum(axis=1)])
    return model


def tiny_lavish_localizer():
    """LAVISH localisation on 2 frames and 2 s of audio: 1 s segments."""
    keras.utils.set_random_seed(1)
    backbone = tiny_lavish(num_layers=1, audio_frames=200)
    model = LAVISH(backbone, num_classes=2, head="localization", hidden_units=16)
    # Its zero-initialised adapters and gates get values, so the logits
    # depend on the frames and the audio from the start.
    rng = np.random.default_rng(1)
    for weight in model.trainable_weights:
        value = keras.ops.convert_to_numpy(weight)
        if not value.any():
            weight.assign(rng.normal(0.0, 0.3, value.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline")
    rng = np.random.default_rng(0)
    long_video = write_mp4(
        str(root / "two_halves.mp4"), two_colour_frames(120.0, rng), fps=FPS
    )
    with_audio = write_mp4(
        str(root / "with_audio.mp4"),
        two_colour_frames(20.0, rng, change_at=10.0),
        fps=FPS,
        audio=tone(20.0, rng),
    )
    short = write_mp4(str(root / "short.mp4"), two_colour_frames(1.0, rng), fps=FPS)
    lavish = tiny_lavish_localizer()
    return types.SimpleNamespace(
        root=root,
        long_video=long_video,
        with_audio=with_audio,
        short=short,
        silent=long_video,
        classifier=write_run(root / "colours", colour_classifier(rng), FRAME_STRIDE),
        lavish=lavish,
        # One frame a second at 4 fps: frame t beside the audio of second t.
        lavish_run=write_run(root / "lavish", lavish, 4),
    )


def test_the_timeline_finds_where_the_label_changes(files, tmp_path):
    out = tmp_path / "timelines"
    status, stdout, err = run_cli(
        ["predict", "--model", files.classifier, "--timeline", "--stride", "1"]
        + ["--top-k", "2", "--batch-size", "128", "--timeline-out", out]
        + [files.long_video]
    )
    assert status == 0, err[-3000:]
    with open(out / "two_halves.timeline.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # A window every second while its 1.75 s fit in the 120 s.
    starts = np.array([float(row["start"]) for row in rows])
    np.testing.assert_allclose(starts, np.arange(119))
    ends = np.array([float(row["end"]) for row in rows])
    np.testing.assert_allclose(ends - starts, 1.75)
    labels = [row["label_1"] for row in rows]
    changes = [i for i in range(1, len(rows)) if labels[i] != labels[i - 1]]
    assert labels[0] == "warm" and labels[-1] == "cool" and len(changes) == 1, labels
    first_cool = changes[0]
    centre = (starts[first_cool] + ends[first_cool]) / 2
    assert abs(centre - CHANGE_AT) <= 1.0, centre  # within one stride
    for row in rows:
        assert 0.5 <= float(row["score_1"]) <= 1.0
        assert float(row["score_1"]) + float(row["score_2"]) == pytest.approx(1, 1e-5)
    # One printed line per window, in the CSV's order, then the files.
    lines = stdout.strip().splitlines()
    assert lines[0] == files.long_video and len(lines) == len(rows) + 2
    for line, row in zip(lines[1:-1], rows, strict=True):
        fields = line.split()
        assert fields[0] == f"{float(row['start']):.2f}-{float(row['end']):.2f}s"
        assert fields[2] == row["label_1"]
    assert str(out / "two_halves.timeline.png") in lines[-1]
    png = (out / "two_halves.timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_lavish_per_second_logits_are_the_model_on_each_window(files):
    """Windows 2 s apart do not overlap: second `2k + t` is segment `t` of
    window `k`, as the model scores that clip decoded on its own."""
    model, spec = files.lavish, files.lavish.backbone.clip_spec
    stream = WindowStream.for_spec(spec, stride=2.0, frame_stride=4)
    transform = ClipTransform(spec)
    intervals, logits, unit = score_timeline(
        model, stream, transform, files.with_audio, batch_size=10
    )
    assert unit == "second"
    np.testing.assert_array_equal(intervals[:, 0], np.arange(20))  # a 20 s file
    decoder = ClipDecoder(num_frames=2, frame_stride=4, audio_frames=200)
    clips = [
        transform(decoder.decode(VideoRecord(files.with_audio, 0, 2 * k, 2 * k + 1.1)))
        for k in range(10)
    ]
    inputs = {name: np.stack([c[name] for c in clips]) for name in spec.inputs}
    expected = np.asarray(model.predict(inputs, batch_size=10, verbose=0))
    expected = expected.reshape(20, 2)
    assert np.ptp(expected, axis=0).min() > 1e-3  # seconds differ
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_lavish_timeline_has_a_row_per_second_where_windows_overlap(files, tmp_path):
    status, stdout, err = run_cli(
        ["predict", "--model", files.lavish_run, "--timeline", "--json"]
        + ["--batch-size", "32"]
        + ["--timeline-out", tmp_path, files.with_audio]
    )
    assert status == 0, err[-3000:]
    (result,) = json.loads(stdout)
    assert result["unit"] == "second"
    assert [row["start"] for row in result["rows"]] == list(range(20))
    assert all(len(row["predictions"]) == 2 for row in result["rows"])
    with open(result["csv"], newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 20


def test_bad_timeline_input_is_one_line_naming_the_file(files, tmp_path):
    base = ["predict", "--timeline", "--timeline-out", tmp_path]
    status, _, err = run_cli(
        base + ["--model", files.classifier, "--stride", "0", files.long_video]
    )
    assert_one_line_error(status, err, "--stride", "positive")
    status, _, err = run_cli(
        base + ["--model", files.classifier, "--views", "2x3", files.long_video]
    )
    assert_one_line_error(status, err, "--views", "one centre crop per window")
    status, _, err = run_cli(
        ["predict", "--timeline", "--timeline-out", files.short]
        + ["--model", files.classifier, files.long_video]
    )
    assert_one_line_error(status, err, "--timeline-out", files.short)
    # One model, two bad files: a line for each, and exit status 1.
    status, stdout, err = run_cli(
        base + ["--model", files.lavish_run, files.short, files.silent]
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 1 and len(lines) == 2 and "Traceback" not in err, err
    for line, video, fragments in (
        (lines[0], files.short, ["shorter than one window"]),
        (lines[1], files.silent, ["no audio track", "--missing-audio"]),
    ):
        assert line.startswith(f"ca2st predict: {video}")
        for fragment in fragments:
            assert fragment in line
