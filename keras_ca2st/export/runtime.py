"""Runs an exported model outside Keras and compares it with Keras `predict`."""

import numpy as np

from keras_ca2st.export.formats import export_format, require
from keras_ca2st.export.signature import named_outputs


def run_exported(path, format, inputs):
    """Outputs of an exported model on `inputs`, without Keras.

    ONNX files run with `onnxruntime` (CPU); SavedModels with
    `tf.saved_model.load` and their `serving_default` signature.

    Args:
        path: the `.onnx` file or SavedModel directory.
        format: `"onnx"` or `"saved_model"`.
        inputs: dict input name → float32 array; extra keys are ignored.

    Returns:
        dict output name → NumPy array.
    """
    chosen = export_format(format)
    require(chosen.runtime_packages, f"Running {chosen.description}")
    if chosen.name == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
        feed = {i.name: _float32(inputs[i.name]) for i in session.get_inputs()}
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feed), strict=True))
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    names = serve.structured_input_signature[1]
    outputs = serve(**{name: tf.constant(_float32(inputs[name])) for name in names})
    return {name: value.numpy() for name, value in outputs.items()}


def max_abs_difference(actual, expected):
    """Largest absolute difference over every output (`expected` from `predict`:
    an array, or a dict per head)."""
    expected = named_outputs(expected)
    if set(actual) != set(expected):
        raise ValueError(
            f"the exported outputs {sorted(actual)} are not the model's "
            f"{sorted(expected)}."
        )
    return max(
        float(np.max(np.abs(np.asarray(actual[name]) - np.asarray(expected[name]))))
        for name in expected
    )


def _float32(value):
    return np.asarray(value, dtype="float32")
