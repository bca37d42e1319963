"""The wheel carries the presets and kernels, not only an editable checkout."""

import os
import subprocess
import sys
import zipfile

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(
    keras.config.backend() != "torch",
    reason="backend-independent; runs once, in the torch pass of the suite",
)
def test_plain_wheel_ships_presets_and_kernels(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ROOT,
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = [f for f in os.listdir(tmp_path) if f.endswith(".whl")]
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(tmp_path / wheel) as archive:
        archive.extractall(unpacked)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import keras_ca2st, keras_ca2st.kernels;"
        "from keras_ca2st.presets import available_presets;"
        "assert keras_ca2st.__file__.startswith(sys.argv[1]), keras_ca2st.__file__;"
        "assert keras_ca2st.kernels.__file__.startswith(sys.argv[1]);"
        "print(','.join(available_presets()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(unpacked)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    presets = result.stdout.strip().splitlines()[-1].split(",")
    assert {"cast_base", "cava_base", "ca2st_base", "lavish_clip_base"} <= set(presets)
