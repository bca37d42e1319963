"""`ca2st predict` on real mp4 files: scores, audio, and files it cannot read.

The model is the demo's tiny CAVA (CLIP + AST joined by B-CA with
time-interval codes), so every input kind goes through: frames, audio
features and both time intervals.
"""

import json
import types

import keras
import numpy as np
import pytest

from keras_ca2st.cli.predict import VideoViews
from keras_ca2st.data import VideoDataset, VideoRecord, write_mp4
from keras_ca2st.data.synthetic import class_names, render_clip
from keras_ca2st.training import average_view_softmax
from tests.cli.helpers import reference_probabilities, run_cli, save_tiny_model

pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipping variable loading for optimizer"
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny audio-visual model, class names, and one clip with two tones,
    without audio, and a corrupt file."""
    root = tmp_path_factory.mktemp("predict_cli")
    frames, low_tone, _ = render_clip(1, 0, 0, np.random.default_rng(3))
    high_tone, _ = render_clip(1, 0, 1, np.random.default_rng(3))[1:]
    videos = {
        "low": write_mp4(str(root / "low.mp4"), frames, audio=low_tone),
        "high": write_mp4(str(root / "high.mp4"), frames, audio=high_tone),
        "silent": write_mp4(str(root / "no_audio.mp4"), frames),
    }
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    videos["corrupt"] = str(corrupt)
    names = root / "classes.txt"
    names.write_text("\n".join(class_names()) + "\n")
    return types.SimpleNamespace(
        model=save_tiny_model(root / "tiny.keras", "CAVA"), names=names, videos=videos
    )


def predict_json(files, *videos, extra=()):
    status, out, err = run_cli(
        [
            "predict",
            "--model",
            files.model,
            "--class-names",
            files.names,
            "--json",
            *extra,
            *videos,
        ]
    )
    return status, json.loads(out), err


def test_predict_prints_top5_scores_equal_to_an_independent_computation(files):
    status, out, err = run_cli(
        ["predict", "--model", files.model, "--class-names", files.names]
        + [files.videos["low"]]
    )
    assert status == 0, err[-3000:]
    lines = out.strip().splitlines()
    assert lines[0] == files.videos["low"] and len(lines) == 6
    ranks, scores, labels = zip(*(line.split() for line in lines[1:]), strict=True)
    assert ranks == ("1.", "2.", "3.", "4.", "5.")
    scores = np.array([float(score) for score in scores])
    assert np.all(np.diff(scores) <= 0) and scores.sum() <= 1.0
    # No run.json: VideoDataset's default sampling and views (2 clips x 3
    # crops); the model's clip geometry (8 frames of 32x32, 1.28 s of audio).
    model = keras.saving.load_model(files.model, compile=False)
    expected = reference_probabilities(
        model,
        [files.videos["low"]],
        num_frames=8,
        crop_size=32,
        audio_frames=128,
        num_test_clips=2,
        num_test_crops=3,
    )[0]
    order = np.argsort(-expected, kind="stable")[:5]
    assert list(labels) == [class_names()[i] for i in order]
    np.testing.assert_allclose(scores, expected[order], atol=6e-5)  # 4 decimals


def test_predict_uses_the_audio_track(files):
    status, results, err = predict_json(
        files,
        files.videos["low"],
        files.videos["high"],
        files.videos["silent"],
        extra=["--views", "1x1", "--missing-audio", "silence"],
    )
    assert status == 0, err[-3000:]
    scores = []
    for result in results:
        top = result["predictions"]
        assert len(top) == 5 and sum(entry["score"] for entry in top) <= 1.0 + 1e-6
        full = np.full(8, np.nan)
        full[[entry["index"] for entry in top]] = [entry["score"] for entry in top]
        scores.append(full)
    # The same frames with another tone, or with silence: the scores move.
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert np.nanmax(np.abs(scores[a] - scores[b])) > 1e-4 or not np.array_equal(
            np.isnan(scores[a]), np.isnan(scores[b])
        )


def test_unreadable_videos_are_reported_and_the_others_predicted(files):
    status, results, err = predict_json(
        files, files.videos["silent"], files.videos["low"], files.videos["corrupt"]
    )
    assert status == 1
    silent, good, corrupt = results
    assert "Traceback" not in err
    assert "has no audio track" in silent["error"]
    assert "--missing-audio silence" in silent["error"]
    assert len(good["predictions"]) == 5
    assert corrupt["error"].startswith(files.videos["corrupt"])
    assert err.count("ca2st predict: ") == 2


def test_predict_decodes_transforms_and_scores_the_dataset_views(files):
    """decode → transform → model gives the views a test-mode `VideoDataset`
    gives, and the JSON scores are their averaged softmax."""
    model = keras.saving.load_model(files.model, compile=False)
    spec = model.backbone.clip_spec
    settings = {"spec": spec, "num_test_clips": 2, "num_test_crops": 3}
    path = files.videos["high"]
    inputs = VideoViews(settings).inputs(path)
    dataset = VideoDataset(
        [VideoRecord(path, 0)], 6, mode="test", bad_sample_policy="raise", spec=spec
    )
    expected_inputs = dataset[0][0]
    assert list(inputs) == list(spec.inputs) == list(expected_inputs)
    for name in spec.inputs:
        np.testing.assert_array_equal(inputs[name], expected_inputs[name])
    logits = np.asarray(model.predict(expected_inputs, verbose=0))
    expected = average_view_softmax(logits, dataset.view_record_indices, 1)[0]
    status, results, err = predict_json(files, path, extra=["--views", "2x3"])
    assert status == 0, err[-3000:]
    for entry in results[0]["predictions"]:
        assert entry["score"] == pytest.approx(expected[entry["index"]], abs=1e-6)


def test_explain_writes_each_direction_s_attention(files, tmp_path):
    out = tmp_path / "explain"
    status, results, err = predict_json(
        files, files.videos["low"], extra=["--views", "1x1", "--explain", out]
    )
    assert status == 0, err[-3000:]
    directory = out / "low"
    assert results[0]["explain"] == str(directory)
    summary = json.loads((directory / "attention.json").read_text())
    # One view: the explained view's top label is the prediction's.
    assert summary["top_label"] == results[0]["predictions"][0]["label"]
    names = {entry["name"] for entry in summary["maps"]}
    assert names == {"spatial_to_audio", "audio_to_spatial"}
    for name, path in summary["figures"].items():
        assert name in names
        assert (directory / path).read_bytes()[:4] == b"\x89PNG"
    with np.load(directory / "attention.npz") as arrays:
        assert len(arrays.files) == len(summary["maps"])
        for key in arrays.files:
            weights = arrays[key]
            assert weights.ndim == 4 and np.isfinite(weights).all()
            np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)


def test_explain_with_a_timeline_is_refused(files, tmp_path):
    status, out, err = run_cli(
        ["predict", "--model", files.model, "--timeline", "--explain", tmp_path]
        + [files.videos["low"]]
    )
    assert status != 0 and "--explain works on clips" in err
    assert "Traceback" not in err
