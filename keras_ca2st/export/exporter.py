"""`export_model`: a trained model as an ONNX file or a TensorFlow SavedModel.

TensorFlow writes both formats (see `formats.py`). Under the TensorFlow
backend the model is written in this process; under torch or JAX it is saved
as a `.keras` file and reloaded (safe mode) in a subprocess with
`KERAS_BACKEND=tensorflow`, which writes the file. Starting that subprocess
(importing TensorFlow, rebuilding the model) costs more than writing a small
model, so `export_models` writes many files with one.
"""

import dataclasses
import os
import subprocess
import sys
import tempfile

from keras_ca2st.export.formats import (
    WRITER_BACKEND,
    ExportError,
    export_format,
    require,
)
from keras_ca2st.export.signature import input_shapes, output_names

# TensorFlow's C++ INFO logs would bury the worker's one-line error.
WORKER_ENVIRONMENT = {"KERAS_BACKEND": WRITER_BACKEND, "TF_CPP_MIN_LOG_LEVEL": "2"}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_model` wrote.

    Args:
        path: the ONNX file or SavedModel directory.
        format: `"onnx"` or `"saved_model"`.
        in_subprocess: whether a TensorFlow subprocess wrote it (the
            model's backend is torch or JAX).
        inputs: dict input name → shape, `None` for the dynamic batch.
        outputs: the output names (`["logits"]`, or the heads).
    """

    path: str
    format: str
    in_subprocess: bool
    inputs: dict
    outputs: list

    def describe(self):
        """One line: format, writer, inputs and outputs."""
        where = "a TensorFlow subprocess" if self.in_subprocess else "TensorFlow"
        shapes = ", ".join(
            f"{name} {_shape_text(shape)}" for name, shape in self.inputs.items()
        )
        return (
            f"wrote {self.path} ({self.format}, traced by {where}); "
            f"inputs: {shapes}; outputs: {', '.join(self.outputs)}"
        )


def export_model(model, path, format="onnx"):
    """Writes a keras_ca2st classifier as an ONNX file or a SavedModel.

    Args:
        model: a `VideoClassifier` (CAST, CAVA, CA2ST) or `LAVISH`, in float32.
        path: the `.onnx` file or the SavedModel directory to write.
        format: `"onnx"` or `"saved_model"`.

    Returns:
        An `ExportResult`.

    Raises:
        ExportError: unknown format, a missing package (the message names
            the `pip install`), or a writer that failed.

    Example:
    ```python
    model = keras_ca2st.CAVA.from_preset("cava_base", num_classes=8,
                                         load_weights=False)
    result = export_model(model, "cava.onnx", format="onnx")
    result.inputs   # {"video": (None, 16, 224, 224, 3), "audio": ..., ...}
    result.outputs  # ["logits"]
    ```
    """
    (result,) = export_models([(model, path, format)])
    return result


def export_models(exports):
    """`export_model` for several `(model, path, format)` triples at once.

    Under torch or JAX one TensorFlow subprocess writes them all.

    Returns:
        A list of `ExportResult`, in the order of `exports`.
    """
    import keras

    exports = [
        (model, os.fspath(path), export_format(format))
        for model, path, format in exports
    ]
    for _, _, chosen in exports:
        require(chosen.writer_packages, f"Writing {chosen.description}")
    in_subprocess = keras.config.backend() != WRITER_BACKEND
    if in_subprocess:
        _write_in_subprocess(exports)
    else:
        from keras_ca2st.export import tensorflow_writer

        for model, path, chosen in exports:
            tensorflow_writer.write(model, path, chosen.name)
    return [
        ExportResult(
            path=path,
            format=chosen.name,
            in_subprocess=in_subprocess,
            inputs=input_shapes(model),
            outputs=output_names(model),
        )
        for model, path, chosen in exports
    ]


def _write_in_subprocess(exports):
    with tempfile.TemporaryDirectory(prefix="ca2st_export_") as directory:
        saved = {}  # id(model) → its .keras file, each model saved once
        arguments = []
        for model, path, chosen in exports:
            if id(model) not in saved:
                saved[id(model)] = os.path.join(directory, f"{len(saved)}.keras")
                model.save(saved[id(model)])
            arguments += [saved[id(model)], chosen.name, os.path.abspath(path)]
        result = subprocess.run(
            [sys.executable, "-m", "keras_ca2st.export.worker", *arguments],
            env={**os.environ, **WORKER_ENVIRONMENT},
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise ExportError(f"the {WRITER_BACKEND} subprocess failed: {reason}")


def _shape_text(shape):
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"
