"""Shared pieces of the `ca2st train / evaluate / predict` tests."""

import contextlib
import io

import keras
import numpy as np

from keras_ca2st.cli.demo import build_model
from keras_ca2st.cli.main import main
from keras_ca2st.data import VideoDataset, VideoRecord
from keras_ca2st.training import average_view_softmax


def save_tiny_model(path, name, seed=0):
    """A demo model (`DEMO_MODELS` name, 8 classes) with random adapters, saved.

    Its zero-initialised adapters and up-projections get random values, so
    the logits depend on every input from the start (at initialisation they
    equal the head bias).
    """
    keras.utils.set_random_seed(seed)
    model = build_model(name)
    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights:
        value = keras.ops.convert_to_numpy(weight)
        if value.ndim >= 2 and not value.any():
            weight.assign(rng.normal(0.0, 0.2, value.shape).astype("float32"))
    model.save(path)
    return path


def run_cli(argv):
    """`(exit status, stdout, stderr)` of `ca2st ARGV`, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def reference_probabilities(model, paths, labels=None, batch_size=8, **settings):
    """Softmax averaged over each video's views, computed without the CLI."""
    labels = [0] * len(paths) if labels is None else labels
    records = [
        VideoRecord(str(path), int(label))
        for path, label in zip(paths, labels, strict=True)
    ]
    dataset = VideoDataset(
        records, batch_size, mode="test", bad_sample_policy="raise", **settings
    )
    names = list(model.input)
    views = [dataset[i][0] for i in range(len(dataset))]
    inputs = {k: np.concatenate([v[k] for v in views]) for k in names}
    logits = np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0))
    return average_view_softmax(logits, dataset.view_record_indices, len(records))
