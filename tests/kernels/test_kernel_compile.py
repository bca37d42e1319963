"""Offline compile of every kernel for sm_90 (H100/H200); no GPU needed.

Fails if a kernel stops compiling for the GPU (Triton's shape rules are not enforced
by the interpreter the other tests run in) or if ptxas reports register spills.
The check runs in a subprocess because this process runs Triton in interpreter
mode.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.kernels.utils import requires_torch_kernels

pytestmark = requires_torch_kernels


@pytest.mark.slow
def test_kernels_compile_for_sm90_without_spills():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("TRITON_INTERPRET", None)
    result = subprocess.run(
        [sys.executable, "-m", "keras_ca2st.kernels.compile_check", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    compiled = {(r["name"], r["dtype"], r["width"]) for r in reports}
    kernels = {"t2s_fwd", "t2s_bwd", "s2t_fwd", "s2t_bwd_pre", "s2t_bwd"}
    assert compiled == {
        (k, d, w)
        for k in kernels
        for d in ("bf16", "fp16", "fp32")
        for w in ("d32", "d64")
    }
    for report in reports:
        print(report)  # registers / spills / shared memory, shown with -s
        assert "error" not in report, report
        assert report["arch"] == "sm_90"
        assert report["spill_stores"] == 0 and report["spill_loads"] == 0, report
        assert 0 < report["registers"] <= 255, report
    assert result.returncode == 0, result.stderr[-3000:]
