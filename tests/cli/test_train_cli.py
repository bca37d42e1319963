"""`ca2st train` and `ca2st evaluate` on a tiny model and real synthetic mp4s.

The training runs use the demo's single-expert "audio only" model: it takes
the audio-visual data path (audio features, inputs the model does not take)
and traces in seconds on every backend, where the B-CA models take close to a
minute under TensorFlow. `test_predict_cli.py` predicts with a B-CA model.
"""

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest

from keras_ca2st.data import make_synthetic_dataset, read_csv_annotations
from tests.cli.helpers import reference_probabilities, run_cli, save_tiny_model
from tests.test_case import BACKEND

pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipping variable loading for optimizer"
)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EVALUATION_KEYS = (
    "num_frames",
    "crop_size",
    "audio_frames",
    "sampling",
    "frame_stride",
    "num_test_clips",
    "num_test_crops",
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_model(
        tmp_path_factory.mktemp("model") / "tiny.keras", "audio only"
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("train_cli")
    data = make_synthetic_dataset(root / "data", num_train=16, num_val=8)
    model = tiny_model
    config = root / "train.toml"
    # `epochs = 5` is overridden by `--epochs 2` on the command line.
    config.write_text(
        f"""
model = "{model}"
dataset = "synthetic"
train-annotations = "{data.train_annotations}"
val_annotations = "{data.val_annotations}"
data-root = "{data.root}"
class-names = "{data.class_names_path}"
epochs = 5
batch-size = 4
lr = 0.5
warmup_epochs = 0
workers = 1
"""
    )
    return types.SimpleNamespace(root=root, data=data, model=model, config=config)


def train_argv(workspace, run_dir, *extra):
    return [
        "train",
        "--config",
        workspace.config,
        "--epochs",
        2,
        "--output-dir",
        run_dir,
        *extra,
    ]


def log_rows(run_dir):
    with open(run_dir / "log.csv") as handle:
        return list(csv.DictReader(handle))


def test_train_resume_evaluate_and_predict_one_run(workspace):
    """One training run serves every check; training is the slow part."""
    run_dir = workspace.root / "run"
    status, out, err = run_cli(train_argv(workspace, run_dir))
    assert status == 0, err[-3000:]
    check_run_directory(workspace, run_dir, out)
    check_resume(workspace, run_dir)
    check_evaluate(workspace, run_dir)
    check_predict_with_run_class_names(workspace, run_dir)


def check_run_directory(workspace, run_dir, out):
    rows = log_rows(run_dir)
    assert [row["epoch"] for row in rows] == ["0", "1"]  # --epochs 2 won over 5
    assert {"loss", "top1", "top5", "val_loss", "val_top1", "val_top5"} <= set(rows[0])
    assert np.all(np.isfinite([float(row["loss"]) for row in rows]))
    checkpoints = set(os.listdir(run_dir / "checkpoints"))
    assert {"epoch_001.weights.h5", "epoch_002.weights.h5"} <= checkpoints
    assert (run_dir / "state" / "state.json").exists()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["class_names"] == workspace.data.class_names
    assert info["dataset"] == "synthetic" and info["num_classes"] == 8
    # The audio window is the model's, the sampling the recipe's.
    assert info["data"]["audio_frames"] == 128 and info["data"]["frame_stride"] == 2
    assert info["training"]["epochs"] == 2 and info["training"]["batch_size"] == 4
    assert f"wrote {run_dir / 'model.keras'}" in out
    assert "Epoch 2/2" in out  # Keras progress bars
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    start = keras.saving.load_model(workspace.model, compile=False)
    moved = max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(model.get_weights(), start.get_weights(), strict=True)
    )
    assert moved > 1e-4


def check_resume(workspace, run_dir):
    status, out, err = run_cli(train_argv(workspace, run_dir))
    assert status == 0, err[-3000:]
    assert "already trained for 2 epochs" in out
    assert "Epoch " not in out
    assert len(log_rows(run_dir)) == 2
    state = json.loads((run_dir / "state" / "state.json").read_text())
    assert state["epoch"] == 2


def check_evaluate(workspace, run_dir):
    data = workspace.data
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    settings = json.loads((run_dir / "run.json").read_text())["data"]
    records = read_csv_annotations(data.val_annotations, data.root)
    labels = np.array([r.label for r in records])
    probabilities = reference_probabilities(
        model,
        [r.path for r in records],
        labels,
        **{k: settings[k] for k in EVALUATION_KEYS},
    )
    top = np.argsort(-probabilities, axis=-1, kind="stable")
    expected = {
        "top-1": 100 * np.mean(top[:, 0] == labels),
        "top-5": 100 * np.mean(np.any(top[:, :5] == labels[:, None], axis=-1)),
    }

    per_video = workspace.root / "per_video.csv"
    status, out, err = run_cli(
        [
            "evaluate",
            "--model",
            run_dir,
            "--annotations",
            data.val_annotations,
            "--per-video-csv",
            per_video,
        ]
    )
    assert status == 0, err[-3000:]
    assert "8 videos × 1 clips × 1 crops" in out
    printed = dict(re.findall(r"^(top-[15])\s+([\d.]+)%$", out, re.MULTILINE))
    assert printed.keys() == expected.keys()
    for key, value in expected.items():
        assert float(printed[key]) == pytest.approx(value, abs=0.006)
    with open(per_video) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["prediction"]) for r in rows] == top[:, 0].tolist()
    np.testing.assert_allclose(
        [float(r["probability"]) for r in rows],
        probabilities[np.arange(8), top[:, 0]],
        atol=1e-6,
    )
    assert rows[0]["path"] == records[0].path


def check_predict_with_run_class_names(workspace, run_dir):
    video = os.path.join(workspace.data.root, "videos", "val_00000.mp4")
    # The model file inside a run directory finds its run.json too.
    status, out, err = run_cli(["predict", "--model", run_dir / "model.keras", video])
    assert status == 0, err[-3000:]
    lines = out.strip().splitlines()
    assert lines[0] == video and len(lines) == 6
    for rank, line in enumerate(lines[1:], start=1):
        position, score, label = line.split()
        assert position == f"{rank}." and label in workspace.data.class_names
        assert 0.0 <= float(score) <= 1.0


def test_killed_train_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """SIGKILL after epoch 1 of 3, the same command again: the same weights.

    A video model, so that each epoch's random clips and crops (the synthetic
    recipe's augmentation) and shuffle order decide what it learns: the
    resumed run must see the batches of the uninterrupted one.
    """
    model = save_tiny_model(tmp_path / "spatial.keras", "spatial only")
    data = make_synthetic_dataset(tmp_path / "data", num_train=8, num_val=8)
    argv = [
        "train",
        "--model",
        model,
        "--dataset",
        "synthetic",
        "--train-annotations",
        data.train_annotations,
        "--data-root",
        data.root,
        "--epochs",
        3,
        "--batch-size",
        4,
        "--lr",
        0.5,
        "--warmup-epochs",
        0,
        "--workers",
        1,
        "--seed",
        0,
    ]
    uninterrupted = tmp_path / "uninterrupted"
    status, _, err = run_cli([*argv, "--output-dir", uninterrupted])
    assert status == 0, err[-3000:]

    run_dir = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "keras_ca2st.cli.main",
        *map(str, argv),
        "--output-dir",
        str(run_dir),
    ]
    env = {**os.environ, "PYTHONPATH": ROOT}
    state_file = run_dir / "state" / "state.json"
    log = tmp_path / "killed.log"  # a file, not a pipe nobody reads
    with open(log, "w") as handle:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 300
    try:
        while process.poll() is None and not state_file.exists():
            assert time.monotonic() < deadline, "no state after 300 s"
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    killed_after = json.loads(state_file.read_text())["epoch"]
    assert killed_after in (1, 2)  # stopped in the middle of the run
    assert not (run_dir / "model.keras").exists()

    # The same command again (in this process: one interpreter start less).
    status, out, err = run_cli([*argv, "--output-dir", run_dir])
    assert status == 0, err[-3000:]
    assert f"resuming {run_dir} after epoch {killed_after} of 3" in out
    assert [row["epoch"] for row in log_rows(run_dir)] == ["0", "1", "2"]
    expected = keras.saving.load_model(uninterrupted / "model.keras", compile=False)
    actual = keras.saving.load_model(run_dir / "model.keras", compile=False)
    difference = max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(actual.get_weights(), expected.get_weights(), strict=True)
    )
    assert difference <= 1e-6, difference


def assert_one_line_error(status, err, *fragments):
    assert status == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_config_keys_and_values_are_reported_with_the_file(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("epoch = 3\n")
    status, _, err = run_cli(["train", "--config", config])
    assert_one_line_error(
        status, err, str(config), "'epoch'", "did you mean 'epochs'", "valid keys:"
    )
    config = tmp_path / "bad.json"
    config.write_text('{"epochs": "many"}')
    status, _, err = run_cli(["train", "--config", config])
    assert_one_line_error(status, err, str(config), "epochs", "'many'")
    config.write_text('{"distribution": "horovod"}')
    status, _, err = run_cli(["train", "--config", config])
    assert_one_line_error(status, err, "distribution", "torch-ddp")
    # A value argparse accepts but no recipe can use: the recipe's own message.
    status, _, err = run_cli(["train", "--layer-decay", "1.5"])
    assert_one_line_error(status, err, "layer_decay must be in (0, 1]")


def test_user_errors_exit_2_with_one_line(tiny_model, tmp_path):
    annotations = tmp_path / "train.csv"
    annotations.write_text("path,label\nvideos/a.mp4,0\n")
    status, _, err = run_cli(
        ["train", "--preset", "ca2st_huge", "--random-init"]
        + ["--train-annotations", annotations]
    )
    assert_one_line_error(status, err, "ca2st train:", "Unknown preset 'ca2st_huge'")
    status, _, err = run_cli(
        ["train", "--model", tiny_model, "--train-annotations", tmp_path / "no.csv"]
    )
    assert_one_line_error(status, err, "no.csv", "not found")
    status, _, err = run_cli(
        ["train", "--model", tiny_model, "--num-classes", 5]
        + ["--train-annotations", annotations, "--output-dir", tmp_path / "run"]
    )
    assert_one_line_error(status, err, "has 8 classes", "--num-classes says 5")
    annotations.write_text("path,label\nvideos/a.mp4,9\n")
    status, _, err = run_cli(
        ["train", "--model", tiny_model, "--train-annotations", annotations]
        + ["--output-dir", tmp_path / "run"]
    )
    assert_one_line_error(status, err, "train.csv:2", "outside the model's 8 classes")
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "plain.keras")
    status, _, err = run_cli(["predict", "--model", tmp_path / "plain.keras", "a.mp4"])
    assert_one_line_error(status, err, "plain.keras", "not a keras_ca2st model")
    (tmp_path / "junk.keras").write_text("not a model")
    status, _, err = run_cli(
        ["evaluate", "--model", tmp_path / "junk.keras", "--annotations", annotations]
    )
    assert_one_line_error(status, err, "junk.keras", "cannot load")
    status, _, err = run_cli(
        ["evaluate", "--model", tmp_path, "--annotations", annotations]
    )
    assert_one_line_error(status, err, "no model.keras")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(
    BACKEND != "torch", reason="torch DDP (torchrun) runs on the torch backend"
)
def test_torchrun_two_ranks_train_and_write_one_model(workspace, tmp_path):
    run_dir = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "keras_ca2st.cli.main",
        *map(str, train_argv(workspace, run_dir, "--distribution", "torch-ddp")),
        "--epochs",
        "1",
    ]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.count("wrote ") == 1  # the chief only
    assert "2 processes" in result.stdout
    info = json.loads((run_dir / "run.json").read_text())
    assert (info["distribution"], info["replicas"]) == ("torch-ddp", 2)
    assert [row["epoch"] for row in log_rows(run_dir)] == ["0"]
    assert (run_dir / "model.keras").exists()
    assert not [name for name in os.listdir(run_dir) if name.endswith(".tmp")]
