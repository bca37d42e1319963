"""`ca2st` on a user's mistakes and broken files: one clear line, no traceback.

Also what the command costs before it does anything: `--help`, `presets` and
every command's `--help` load no Keras backend and print nothing on stderr.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_ca2st.data import make_synthetic_dataset, write_mp4
from keras_ca2st.data.synthetic import render_clip
from tests.bad_inputs.corpus import encode, h264, tone
from tests.cli.helpers import run_cli, save_tiny_model
from tests.cli.test_train_cli import assert_one_line_error

pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipping variable loading for optimizer"
)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIGHT_INVOCATIONS = [
    ["--help"],
    ["presets"],
    *[
        [command, "--help"]
        for command in (
            "train",
            "evaluate",
            "predict",
            "convert",
            "bench",
            "demo",
            "export",
            "info",
        )
    ],
]
HEAVY_MODULES = ("keras", "keras_hub", "tensorflow", "torch", "jax")


@pytest.mark.parametrize("argv", LIGHT_INVOCATIONS, ids=" ".join)
def test_help_and_presets_load_no_backend(argv):
    # As the `ca2st` console script runs it (its name is argv[0]).
    code = (
        "import sys; sys.argv[0] = 'ca2st'\n"
        "from keras_ca2st.cli.main import main\n"
        f"try:\n    status = main({argv!r})\nexcept SystemExit as e:\n"
        "    status = e.code\n"
        f"loaded = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "print('LOADED', loaded, status, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["LOADED [] 0"], result.stderr
    assert result.stdout.strip()


def test_the_console_script_prints_no_backend_log_lines():
    script = shutil.which("ca2st")
    if script is None:
        pytest.skip("the ca2st console script is not installed in this environment")
    for argv in (["--help"], ["presets"], ["train", "--help"]):
        result = subprocess.run(
            [script, *argv], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    frames, audio, _ = render_clip(1, 0, 0, np.random.default_rng(0))
    good = write_mp4(str(root / "good.mp4"), frames, audio=audio)
    nan_audio = tone(16000 * 3, 16000, 1)
    nan_audio[1000:1100] = np.nan
    broken_audio = encode(
        root / "nan_audio.mkv",
        video=h264(width=64, height=64, frames=40),
        audio={
            "codec": "pcm_f32le",
            "rate": 16000,
            "layout": "mono",
            "samples": nan_audio,
        },
    )
    return {
        "root": root,
        "model": save_tiny_model(root / "cava.keras", "CAVA"),
        "good": good,
        "nan_audio": broken_audio,
        "data": make_synthetic_dataset(root / "data", num_train=4, num_val=4),
    }


def test_predict_reports_a_file_with_nan_audio_and_scores_the_others(workspace):
    status, out, err = run_cli(
        ["predict", "--model", workspace["model"], "--json", "--views", "1x1"]
        + [workspace["nan_audio"], workspace["good"]]
    )
    assert status == 1
    results = json.loads(out)
    assert "nan_audio.mkv" in results[0]["error"]
    assert "non-finite" in results[0]["error"]
    scores = [p["score"] for p in results[1]["predictions"]]
    assert len(scores) == 5 and np.isfinite(scores).all()
    assert "Traceback" not in err


def test_a_run_file_that_is_not_a_table_is_refused_by_name(workspace, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(workspace["model"], run / "model.keras")
    for content, fragments in (
        ("[1, 2]", ("run.json", "not a list")),
        ('{"class_names": "abc"}', ("run.json", "'class_names' must be")),
        ('{"data": {"num_test_clips": 0}}', ("run.json", "'data.num_test_clips'")),
        ('{"dataset": "imagenet"}', ("run.json", "'dataset' must be one of")),
        ("{broken", ("run.json", "unreadable run file")),
    ):
        (run / "run.json").write_text(content)
        status, _, err = run_cli(["predict", "--model", run, workspace["good"]])
        assert_one_line_error(status, err, *fragments)


def test_evaluate_refuses_when_no_video_can_be_decoded(workspace, tmp_path):
    annotations = tmp_path / "broken.csv"
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 100)
    annotations.write_text("path,label\nempty.mp4,0\njunk.mp4,1\n")
    status, _, err = run_cli(
        ["evaluate", "--model", workspace["model"], "--annotations", annotations]
        + ["--data-root", tmp_path, "--views", "1x1", "--workers", 1]
    )
    assert status == 2
    assert "none of its 2 videos could be decoded" in err
    assert "Traceback" not in err


def test_evaluate_leaves_undecodable_videos_out_of_the_figures(workspace, tmp_path):
    data = workspace["data"]
    rows = open(data.val_annotations).read().strip().splitlines()
    (tmp_path / "empty.mp4").write_bytes(b"")
    annotations = tmp_path / "val.csv"
    annotations.write_text("\n".join(rows) + f"\n{tmp_path / 'empty.mp4'},0\n")
    argv = ["evaluate", "--model", workspace["model"], "--data-root", data.root]
    argv += ["--views", "1x1", "--workers", 1, "--json"]
    status, out, err = run_cli(argv + ["--annotations", annotations])
    assert status == 0, err
    with_bad = json.loads(out)
    status, out, _ = run_cli(argv + ["--annotations", data.val_annotations])
    without = json.loads(out)
    assert with_bad["videos"] == without["videos"] + 1
    assert with_bad["scored_videos"] == without["videos"]
    assert with_bad["bad_files"] == [str(tmp_path / "empty.mp4")]
    # Left out, the blank-scored video changes nothing.
    assert with_bad["metrics"] == without["metrics"]
    assert "left out of the figures" in err


def test_annotation_and_output_paths_that_are_directories(workspace, tmp_path):
    status, _, err = run_cli(
        ["evaluate", "--model", workspace["model"], "--annotations", tmp_path]
    )
    assert_one_line_error(status, err, str(tmp_path), "is a directory")
    data = workspace["data"]
    status, _, err = run_cli(
        ["evaluate", "--model", workspace["model"], "--data-root", data.root]
        + ["--annotations", data.val_annotations, "--views", "1x1"]
        + ["--workers", 1, "--per-video-csv", tmp_path]
    )
    assert_one_line_error(status, err, str(tmp_path))


@pytest.mark.parametrize(
    "content",
    [b"", b"PK\x03\x04" + bytes(100), b"\x80\x02}q\x00."[:-1]],
    ids=["empty", "truncated zip", "truncated pickle"],
)
def test_convert_reports_damaged_checkpoints_in_one_line(tmp_path, content):
    checkpoint = tmp_path / "cast.pth"
    checkpoint.write_bytes(content)
    status, _, err = run_cli(["convert", "official-cast", checkpoint, tmp_path / "out"])
    assert_one_line_error(status, err, "cast.pth")
