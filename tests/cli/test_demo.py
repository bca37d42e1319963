"""A shortened `ca2st demo`: the whole job runs on this backend and reports."""

import json
import os

from keras_ca2st.cli.main import main


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


def test_demo_rejects_unknown_models(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path), "--models", "CAST,VAST"]) == 2
    assert "unknown model" in capsys.readouterr().err
