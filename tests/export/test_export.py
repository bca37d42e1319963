"""Every model family as an ONNX file and a SavedModel, run without Keras.

ONNX Runtime and `tf.saved_model.load` run the exported files at two batch
sizes and must give Keras `predict`'s outputs (fp32, max abs error 1e-4).
Under torch and JAX a TensorFlow subprocess writes the files, so this also
checks that the model traced there is the one the backend predicts with.
"""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import onnxruntime
import pytest

from keras_ca2st import (
    LAVISH,
    CA2STBackbone,
    VideoClassifier,
)
from keras_ca2st.cli.main import main
from keras_ca2st.cli.predict import VideoViews
from keras_ca2st.data import write_mp4
from keras_ca2st.data.synthetic import render_clip
from keras_ca2st.export import (
    ExportError,
    export_model,
    export_models,
    random_clip_inputs,
)
from keras_ca2st.export.signature import named_outputs
from tests.cli.helpers import run_cli
from tests.cli.test_train_cli import assert_one_line_error
from tests.models.test_lavish import tiny_lavish
from tests.test_case import BACKEND, tiny_experts

pytestmark = pytest.mark.filterwarnings(
    # One bottleneck token per window in these tiny models: a softmax over it.
    "ignore:You are using a softmax over axis -1",
    "ignore:Skipping variable loading for optimizer",
)
TOLERANCE = 1e-4
# The named inputs and outputs each family's export must have.
FAMILIES = {
    "CAST": (["video"], ["noun", "verb"]),  # the EPIC-KITCHENS two-head model
    "CAVA": (["video", "audio", "video_times", "audio_times"], ["logits"]),
    "CA2ST": (["video", "audio", "video_times", "audio_times"], ["logits"]),
    "LAVISH": (["video", "audio"], ["logits"]),
}
FORMATS = ("onnx", "saved_model")


def tiny_model(family, seed=0):
    """The family's model at the tiniest size: 1 block of width 16, 2 frames.

    Its zero-initialised adapters and projections get random values, so every
    input reaches the outputs.
    """
    keras.utils.set_random_seed(seed)
    if family == "LAVISH":
        backbone = tiny_lavish(num_layers=1)
        model = LAVISH(backbone, num_classes=3)
    else:
        names = {
            "CAST": ["spatial", "temporal"],
            "CAVA": ["spatial", "audio"],
            "CA2ST": ["spatial", "temporal", "audio"],
        }[family]
        experts = tiny_experts(frames=2, width=16, depth=1, names=names)
        pairs = [
            {"experts": [a, b]} for i, a in enumerate(names) for b in names[i + 1 :]
        ]
        backbone = CA2STBackbone(experts=experts, pairs=pairs, cross_attention_heads=2)
        classes = {"verb": 3, "noun": 4} if family == "CAST" else 3
        model = VideoClassifier(backbone, num_classes=classes)
    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights:
        value = keras.ops.convert_to_numpy(weight)
        if value.ndim >= 2 and not value.any():
            weight.assign(rng.normal(0.0, 0.2, value.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def models():
    """Each family's tiny model, a batch of 4 inputs and Keras `predict` on it."""
    built = {}
    for family in FAMILIES:
        model = tiny_model(family)
        inputs = random_clip_inputs(model, batch=4)
        expected = model.predict(inputs, verbose=0)
        built[family] = (model, inputs, named_outputs(expected))
    return built


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    """`(family, format)` → `ExportResult`, all written by one `export_models`
    call (one TensorFlow subprocess under torch and JAX)."""
    root = tmp_path_factory.mktemp("exported")
    jobs = [(family, format) for family in FAMILIES for format in FORMATS]
    results = export_models(
        [
            (models[family][0], root / f"{family}.{format}", format)
            for family, format in jobs
        ]
    )
    return dict(zip(jobs, results, strict=True))


def load_onnx(path):
    """`(input names, output names, run)`; every batch dimension is `batch`."""
    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    for value in [*session.get_inputs(), *session.get_outputs()]:
        assert value.shape[0] == "batch", (value.name, value.shape)
    outputs = [o.name for o in session.get_outputs()]

    def run(inputs):
        feed = {i.name: inputs[i.name] for i in session.get_inputs()}
        return dict(zip(outputs, session.run(outputs, feed), strict=True))

    return [i.name for i in session.get_inputs()], outputs, run


def load_saved_model(path):
    """`(input names, output names, run)` of the `serving_default` signature;
    every batch dimension is `None`."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    outputs = serve.structured_outputs
    for spec in [*inputs.values(), *outputs.values()]:
        assert spec.shape[0] is None, spec

    def run(feed):
        # Read through `loaded`, which must outlive its signatures' variables.
        serve = loaded.signatures["serving_default"]
        results = serve(**{name: tf.constant(feed[name]) for name in inputs})
        return {name: value.numpy() for name, value in results.items()}

    return list(inputs), list(outputs), run


@pytest.mark.slow  # its fixture exports every family in every format
@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("family", FAMILIES)
def test_export_runs_outside_keras_and_equals_predict(models, exported, family, format):
    _, inputs, expected = models[family]
    result = exported[family, format]
    input_names, output_names = FAMILIES[family]
    assert list(result.inputs) == input_names
    assert sorted(result.outputs) == output_names
    assert result.in_subprocess == (BACKEND != "tensorflow")

    load = load_onnx if format == "onnx" else load_saved_model
    exported_inputs, exported_outputs, run = load(result.path)
    assert sorted(exported_inputs) == sorted(input_names)
    assert sorted(exported_outputs) == output_names
    for rows in (slice(0, 1), slice(1, 4)):  # batches of 1 and 3: a dynamic batch
        actual = run({name: value[rows] for name, value in inputs.items()})
        for name in output_names:
            assert actual[name].shape == expected[name][rows].shape
            np.testing.assert_allclose(
                actual[name], expected[name][rows], atol=TOLERANCE, rtol=0
            )


def test_unknown_format_is_an_export_error(models, tmp_path):
    with pytest.raises(ExportError, match="'tflite'; choose one of onnx, saved_model"):
        export_model(models["CAVA"][0], tmp_path / "model.tflite", "tflite")


@pytest.fixture(scope="module")
def run_with_clip(models, tmp_path_factory):
    """A run directory holding the tiny CAVA, and a real mp4 with sound."""
    root = tmp_path_factory.mktemp("export_cli")
    run_dir = root / "run"
    run_dir.mkdir()
    models["CAVA"][0].save(run_dir / "model.keras")
    frames, tone, _ = render_clip(1, 0, 0, np.random.default_rng(3))
    return run_dir, write_mp4(str(root / "clip.mp4"), frames, audio=tone)


def test_cli_export_prints_the_check_on_a_decoded_clip(models, run_with_clip, tmp_path):
    run_dir, clip = run_with_clip
    out = tmp_path / "cava.onnx"
    status, stdout, err = run_cli(
        ["export", "--model", run_dir, "--format", "onnx", out, "--check-video", clip]
    )
    assert status == 0, err[-3000:]
    wrote, check = stdout.strip().splitlines()
    assert wrote.startswith(f"wrote {out} (onnx, traced by ")
    assert "inputs: video (batch, 2, 32, 32, 3), audio (batch, 66, 32)" in wrote
    match = re.fullmatch(
        r"check: onnxruntime vs Keras predict \((\w+)\) on (\d+) views of (.+): "
        r"max abs difference (\S+)",
        check,
    )
    assert match, check
    backend, views, video, difference = match.groups()
    assert (backend, video) == (BACKEND, clip)
    assert float(difference) <= TOLERANCE
    # The views are the clip as `ca2st predict` decodes it, and the file the
    # command wrote gives the model's outputs on them.
    model = models["CAVA"][0]
    decoded = VideoViews({"spec": model.backbone.clip_spec}).inputs(clip)
    assert int(views) == len(decoded["video"]) > 1
    _, _, run = load_onnx(out)
    np.testing.assert_allclose(
        run(decoded)["logits"],
        model.predict(decoded, verbose=0),
        atol=TOLERANCE,
        rtol=0,
    )


def test_cli_mistakes_are_one_line_without_traceback(run_with_clip, tmp_path, capsys):
    run_dir, clip = run_with_clip
    out = tmp_path / "model.onnx"
    missing = tmp_path / "missing.keras"
    status, _, err = run_cli(["export", "--model", missing, out])
    assert_one_line_error(status, err, str(missing), "no such model file")
    status, _, err = run_cli(["export", out])
    assert_one_line_error(status, err, "give --model")
    status, _, err = run_cli(
        ["export", "--model", run_dir, out, "--check-video", tmp_path / "none.mp4"]
    )
    assert_one_line_error(status, err, "none.mp4")
    assert not os.path.exists(out)  # nothing is exported before the clip is read
    with pytest.raises(SystemExit) as exit:
        main(["export", "--model", str(run_dir), "--format", "tflite", str(out)])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "Traceback" not in err
    assert "argument --format: invalid choice: 'tflite'" in err and "saved_model" in err


def test_export_help_loads_no_backend():
    # As the `ca2st` console script runs it (its name is argv[0]).
    code = (
        "import sys; sys.argv[0] = 'ca2st'\n"
        "from keras_ca2st.cli.main import main\n"
        "try:\n    main(['export', '--help'])\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--format {onnx,saved_model}" in result.stdout
    assert "--check-video FILE" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
