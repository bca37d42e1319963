"""A shortened `ca2st demo`: the whole command runs and reports.

The command runs in the torch pass only: guide 01 runs the demo (`run_demo`,
what the command calls) on every backend, and `predict --explain` and the
attention maps are tested on every backend in `test_predict_cli.py` and
`tests/models/test_attention_maps.py`.
"""

import json
import os

import pytest

from keras_ca2st.cli.main import main
from keras_ca2st.cli.object_attention import object_attention
from keras_ca2st.data.synthetic import class_names
from tests.test_case import BACKEND


@pytest.mark.skipif(
    BACKEND != "torch", reason="the demo runs on every backend in guide 01"
)
def test_demo_runs_end_to_end_and_reports(tmp_path, capsys):
    output = tmp_path / "demo"
    status = main(
        [
            "demo",
            "--output-dir",
            str(output),
            "--num-train",
            "16",
            "--num-val",
            "8",
            "--epochs",
            "1",
            "--models",
            "audio only,CA²ST,LAVISH",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    for name in ("audio only", "CA²ST", "LAVISH", "val acc"):
        assert name in printed
    results = json.loads((output / "demo_results.json").read_text())
    assert list(results) == ["audio only", "CA²ST", "LAVISH"]
    for result in results.values():
        assert 0.0 <= result["val_accuracy"] <= 1.0
        assert result["val_epochs"] == [1] and len(result["val_accuracy_curve"]) == 1
        assert sum(map(sum, result["confusion"])) == 8
    assert (output / "demo.png").stat().st_size > 10_000
    assert len(os.listdir(output / "data" / "videos")) == 24

    # Each trained model is a run directory that `predict --explain` takes.
    assert results["CA²ST"]["run_dir"] == str(output / "runs" / "ca2st")
    video = output / "data" / "videos" / "val_00000.mp4"
    explain = tmp_path / "explain"
    argv = ["predict", "--model", results["CA²ST"]["run_dir"], "--json"]
    assert main([*argv, "--explain", str(explain), str(video)]) == 0
    predicted = json.loads(capsys.readouterr().out)[0]
    assert predicted["predictions"][0]["label"] in class_names()
    summary = json.loads((explain / "val_00000" / "attention.json").read_text())
    assert "spatial_to_temporal" in summary["figures"]
    for figure in summary["figures"].values():
        assert os.path.getsize(figure) > 2000

    # The object is a square of side 0.3 or a disc of radius 0.17 (in frame
    # widths): ~9% of the frame, whatever the model attends to.
    share = object_attention(results["CA²ST"]["run_dir"], output / "data", limit=3)
    assert share["clips"] == 3 and 0.05 < share["area"] < 0.13
    assert 0.0 < share["mass"] < 1.0 and sorted(share["per_block"]) == [0, 1]


def test_demo_rejects_unknown_models(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path), "--models", "CAST,VAST"]) == 2
    assert "unknown model" in capsys.readouterr().err
