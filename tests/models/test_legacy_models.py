"""Models saved by an earlier version of the package still load and agree.

The `.keras` files in `legacy/` were written with the code of commit 515cb2b
(`legacy/make_legacy_models.py`), before the one-way redesign. A user's saved
model must keep its class names, config keys and weight paths across any
refactor: each file loads in safe mode on every backend and reproduces the
logits recorded when it was written.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_ca2st import CA2ST, CAST, LAVISH
from keras_ca2st.training import LayerDecayAdamW
from keras_ca2st.training.keras_internals import adam_slots, variable_index
from tests.test_case import to_numpy

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "legacy")
FILES = {
    "ca2st_trained": CA2ST,
    "cast_ek100": CAST,
    "lavish_localization": LAVISH,
}


def recorded(name):
    arrays = np.load(os.path.join(HERE, f"{name}.npz"))
    inputs = {k[6:]: arrays[k] for k in arrays.files if k.startswith("input:")}
    outputs = {k[7:]: arrays[k] for k in arrays.files if k.startswith("output:")}
    return inputs, outputs


@pytest.mark.parametrize("name", FILES)
def test_a_model_saved_before_the_redesign_gives_its_recorded_logits(name):
    model = keras.saving.load_model(
        os.path.join(HERE, f"{name}.keras"), compile=False, safe_mode=True
    )
    assert type(model) is FILES[name]
    inputs, expected = recorded(name)
    outputs = to_numpy(model.predict(inputs, verbose=0))
    outputs = outputs if isinstance(outputs, dict) else {"logits": outputs}
    assert set(outputs) == set(expected)
    for key, value in expected.items():
        assert np.abs(value).max() > 1e-3  # the recorded logits are not trivial
        np.testing.assert_allclose(outputs[key], value, atol=2e-5, rtol=1e-5)


def test_a_trained_model_saved_before_the_redesign_keeps_its_optimizer():
    model = keras.saving.load_model(
        os.path.join(HERE, "ca2st_trained.keras"), safe_mode=True
    )
    optimizer = model.optimizer
    assert isinstance(optimizer, LayerDecayAdamW)
    assert int(to_numpy(optimizer.iterations)) == 1
    # Each variable gets back the AdamW moment the old code attached to it
    # (the optimizer saves its slots by position, so a change in the order of
    # the model's variables would hand them to the wrong ones).
    expected = np.load(os.path.join(HERE, "ca2st_trained_moments.npz"))
    variables = {v.path: v for v in model.trainable_variables}
    assert sorted(variables) == sorted(expected.files)
    for path, variable in variables.items():
        moment, _ = adam_slots(optimizer, variable_index(optimizer, variable))
        np.testing.assert_array_equal(to_numpy(moment), expected[path], err_msg=path)
    assert max(np.abs(expected[p]).max() for p in expected.files) > 0


@pytest.mark.skipif(
    keras.config.backend() != "torch",
    reason="class registration does not depend on the backend: run once",
)
def test_import_keras_ca2st_is_enough_to_load_a_trained_model():
    # A fresh process: the model, its optimizer, schedule, loss and metrics
    # are all classes of ours that `import keras_ca2st` must register.
    code = (
        "import keras, keras_ca2st\n"
        f"m = keras.saving.load_model({os.path.join(HERE, 'ca2st_trained.keras')!r})\n"
        "print(type(m).__name__, type(m.optimizer).__name__, type(m.loss).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["CA2ST", "LayerDecayAdamW", "SmoothedCrossEntropy"]
