"""The export formats, which backend writes them, and the packages they need.

Only TensorFlow writes either format here, so a model exported from torch or
JAX is written by a TensorFlow subprocess (`exporter.py`). What was tried in
this environment (Keras 3.15, torch 2.13, JAX 0.10, TensorFlow 2.21):

| backend | ONNX | SavedModel |
|---|---|---|
| tensorflow | tf2onnx (with an `Erfc` rule, see `tensorflow_writer.py`) | yes |
| torch | `torch.onnx`: the TorchScript exporter has no `aten::ravel`; the dynamo exporter writes graphs ONNX Runtime rejects (a `Squeeze` of an axis longer than 1, a `Conv` bias of the wrong shape) | needs `torch_xla` |
| jax | needs `jax2onnx` | through `jax2tf` |
"""

import dataclasses
import importlib.util


class ExportError(RuntimeError):
    """An export that cannot be written or checked; the message says why and what
    to do."""


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Args:
        name: the name `export_model(format=...)` and `ca2st export --format`
            take.
        description: what the file is, for messages.
        runtime: what runs it (the check uses it).
        writer_packages: modules the writing (TensorFlow) process imports.
        runtime_packages: modules the check imports.
    """

    name: str
    description: str
    runtime: str
    writer_packages: tuple
    runtime_packages: tuple


FORMATS = {
    "onnx": ExportFormat(
        "onnx",
        "an ONNX file",
        "onnxruntime",
        writer_packages=("tensorflow", "tf2onnx", "onnx"),
        runtime_packages=("onnxruntime",),
    ),
    "saved_model": ExportFormat(
        "saved_model",
        "a TensorFlow SavedModel directory",
        "tf.saved_model.load",
        writer_packages=("tensorflow",),
        runtime_packages=("tensorflow",),
    ),
}
# The backend that traces the model for both formats.
WRITER_BACKEND = "tensorflow"
INSTALL_HINT = "pip install 'keras-ca2st[export]'"


def export_format(name):
    """The `ExportFormat` called `name`; an unknown name is an `ExportError`."""
    if name not in FORMATS:
        raise ExportError(
            f"unknown export format {name!r}; choose one of {', '.join(FORMATS)}."
        )
    return FORMATS[name]


def require(packages, purpose):
    """Raises `ExportError` naming the `pip install` when a package is missing."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise ExportError(
            f"{purpose} needs {', '.join(missing)}, which is not installed: run "
            f"`{INSTALL_HINT}` (or `pip install {' '.join(missing)}`)."
        )
