"""`ca2st bench`: each benchmark runs end to end and reports ratios and its setting."""

import re

import numpy as np
import pytest

from keras_ca2st.cli.main import main
from tests.test_case import BACKEND

# The benchmarks pick their own backend (the kernel benchmark re-runs itself
# under torch) and time the data pipeline, which has no backend: once is enough.
pytestmark = pytest.mark.skipif(
    BACKEND != "torch", reason="backend-independent benchmarks run in the torch pass"
)


def test_bench_data_reports_rates_ratios_and_environment(capsys):
    status = main(
        [
            "bench",
            "data",
            "--num-videos=1",
            "--seconds=1",
            "--repeats=1",
            "--workers=1",
            "--crop-size=64",
            "--audio-frames=100",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert re.search(r"environment: .* \d+ CPUs, Python .*PyAV", printed)
    rates = dict(
        re.findall(
            r"^  (video decode|full sample \(video \+ audio\)) +([\d.]+)", printed, re.M
        )
    )
    assert (
        float(rates["video decode"]) > 0
        and float(rates["full sample (video + audio)"]) > 0
    )
    assert re.search(r"video decode +[\d.]+ +\( *[\d.]+ ms/clip,  1\.00x\)", printed)
    assert re.search(r"1 worker\(s\) .* [\d.]+x\)", printed)


def test_bench_kernels_compares_the_kernels_with_the_baselines(capfd):
    assert main(["bench", "kernels", "--skip-model", "--batch", "1"]) == 0
    printed = capfd.readouterr().out
    assert "NOT GPU measurements" in printed
    rows = re.findall(
        r"^\| (T2S|S2T) \| 1 \| (triton|regroup\+einsum|regroup\+sdpa) \|",
        printed,
        re.M,
    )
    assert len(rows) == 6
    # The SDPA path is the baseline of the speed-up column.
    assert len(re.findall(r"regroup\+sdpa .* 1\.00× \|$", printed, re.M)) == 2


def test_bench_rejects_unknown_targets(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "gpu"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_the_cpu_and_says_so(tmp_path):
    import json

    from keras_ca2st.benchmarks import gpu_check

    report = gpu_check.run_check(str(tmp_path), tiny=True, budget_s=900)
    written = json.loads((tmp_path / "gpu_check.json").read_text())
    assert written["sections"].keys() == set(gpu_check.SECTIONS)
    failed = {n: s["error"] for n, s in report["sections"].items() if "error" in s}
    assert failed == {}
    sections = report["sections"]
    assert sections["kernels"]["all_passed"] and len(sections["kernels"]["rows"]) == 12
    runs = {row["run"]: row for row in sections["training"]["rows"]}
    assert set(runs) == {"torch, no fused path", "torch, fused", "jax"}
    assert all("error" not in row for row in runs.values())
    assert runs["torch, no fused path"]["flops"] > 0 and "mfu" in runs["jax"]
    # The memory plan: peaks measured at batch 1 and 2 give the cost per clip;
    # the largest batch reported was run and stayed within the budget.
    (plan,) = sections["memory"]["rows"]
    trials = {int(batch): peak for batch, peak in plan["trials"].items()}
    assert trials[1] > 0 and trials[2] > 0
    assert plan["per_clip"] == max(trials[2] - trials[1], 1)
    largest = plan["largest_batch"]
    assert largest >= 1 and trials[largest] <= plan["budget_gib"] * 2**30
    fits = {row["kind"]: row for row in sections["fit"]["rows"]}
    assert set(fits) == {"torch-ddp", "jax-data-parallel"}
    assert all(np.isfinite(row["loss"]) for row in fits.values())
    text = (tmp_path / "gpu_check.md").read_text()
    assert "NOT GPU figures" in text.splitlines()[2]
