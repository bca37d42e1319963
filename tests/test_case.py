"""A small shared test base, in the spirit of keras-hub's `TestCase`.

Every check here runs on whichever backend `KERAS_BACKEND` selects; the CI runs
the suite once per backend.
"""

import os
import subprocess
import sys

import keras
import numpy as np
from keras import ops

from keras_ca2st import ASTEncoder, CLIPVisionEncoder, VideoMAEEncoder

BACKEND = keras.config.backend()


def to_numpy(x):
    return keras.tree.map_structure(lambda t: np.asarray(ops.convert_to_numpy(t)), x)


def tiny_experts(
    frames=4, image_size=32, audio_frames=66, width=32, depth=2, heads=2, names=None
):
    """ViT experts small enough for CPU tests (2 blocks, width 32)."""
    common = dict(
        hidden_dim=width, num_layers=depth, num_heads=heads, intermediate_dim=2 * width
    )
    experts = {
        "spatial": CLIPVisionEncoder(
            image_size=image_size, patch_size=16, num_frames=frames, **common
        ),
        "temporal": VideoMAEEncoder(
            image_size=image_size, patch_size=16, num_frames=frames, **common
        ),
        "audio": ASTEncoder(
            num_time_frames=audio_frames,
            frequency_bins=32,
            position_grid=(2, 8),
            **common,
        ),
    }
    return {name: experts[name] for name in (names or experts)}


def random_inputs(backbone, batch=2, seed=0):
    """Random inputs for every (non-optional) input of a backbone."""
    rng = np.random.default_rng(seed)
    shapes = backbone.input_shapes()
    return {
        name: rng.standard_normal((batch, *shape)).astype("float32")
        for name, shape in shapes.items()
        if not name.endswith("_times")
    }


def assert_allclose(actual, expected, atol=1e-6, rtol=0.0):
    keras.tree.map_structure(
        lambda a, e: np.testing.assert_allclose(a, e, atol=atol, rtol=rtol),
        to_numpy(actual),
        to_numpy(expected),
    )


def run_layer_serialization_test(layer):
    """`get_config` → `from_config` gives an equal config."""
    config = layer.get_config()
    revived = layer.__class__.from_config(config)
    assert revived.get_config() == config
    return revived


def run_saved_model_test(model, inputs, path, atol=1e-6):
    """A `.keras` round trip (safe mode) reproduces the outputs."""
    expected = model.predict(inputs, verbose=0)
    filepath = os.path.join(path, "model.keras")
    model.save(filepath)
    restored = keras.saving.load_model(filepath, safe_mode=True)
    assert type(restored) is type(model)
    assert_allclose(restored.predict(inputs, verbose=0), expected, atol=atol)
    return restored


def count_params(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


NEXT_BACKEND = {"torch": "jax", "jax": "tensorflow", "tensorflow": "torch"}


def predict_in_next_backend(model, inputs, path):
    """Save `model` as `.keras`, load and run it in a subprocess on the next backend.

    Returns the other backend's predictions on `inputs`.
    """
    model.save(os.path.join(path, "model.keras"))
    np.savez(os.path.join(path, "inputs.npz"), **inputs)
    worker = os.path.join(
        os.path.dirname(__file__), "models", "cross_backend_worker.py"
    )
    result = subprocess.run(
        [
            sys.executable,
            worker,
            os.path.join(path, "model.keras"),
            os.path.join(path, "inputs.npz"),
            os.path.join(path, "outputs.npy"),
        ],
        env={**os.environ, "KERAS_BACKEND": NEXT_BACKEND[BACKEND]},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(os.path.join(path, "outputs.npy"))


def randomize(model, seed=0, scale=0.1):
    """Give every weight (zero-initialised ones too) a random value."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.standard_normal(weight.shape).astype("float32") * scale)


def value_and_gradients(loss_fn, variables):
    """`(loss, [gradient of each variable])` of `loss_fn()` on the active backend.

    `loss_fn` takes no argument and returns a scalar computed from the layers
    that own `variables` (trainable Keras variables).
    """
    backend = keras.config.backend()
    if backend == "torch":
        for variable in variables:
            variable.value.grad = None
        loss = loss_fn()
        loss.backward()
        loss = loss.detach()
        grads = [variable.value.grad for variable in variables]
    elif backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, [variable.value for variable in variables])
    else:
        import jax

        def pure(values):
            mapping = list(zip(variables, values, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                return loss_fn()

        # Compiled: op-by-op JAX is slow on a whole model.
        loss, grads = jax.jit(jax.value_and_grad(pure))([v.value for v in variables])
    return to_numpy(loss), [to_numpy(g) for g in grads]
