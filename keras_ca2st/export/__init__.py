"""A trained model outside Keras: ONNX and TensorFlow SavedModel files.

`export_model(model, path, format)` writes a model with named inputs
(`video`, `audio`, `video_times`, `audio_times`, as the model takes them),
named outputs (`logits`, or one per head) and a dynamic batch;
`export_models` writes several files at once. `run_exported` runs a file
with ONNX Runtime or TensorFlow, and `max_abs_difference` compares it with
Keras `predict`. TensorFlow writes both formats; from torch or JAX the model
goes through a TensorFlow subprocess.
"""

from keras_ca2st.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ExportError": "formats",
        "ExportResult": "exporter",
        "FORMATS": "formats",
        "export_model": "exporter",
        "export_models": "exporter",
        "max_abs_difference": "runtime",
        "random_clip_inputs": "signature",
        "run_exported": "runtime",
    },
)
