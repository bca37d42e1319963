"""Tiny models and data shared by the training tests and their worker scripts."""

import keras
import numpy as np

from keras_ca2st import CA2STBackbone, VideoClassifier
from tests.test_case import random_inputs, tiny_experts

NUM_CLASSES = 3


def tiny_classifier(
    num_classes=NUM_CLASSES,
    seed=0,
    drop_path_rate=0.0,
    experts=("spatial", "temporal"),
    dtype=None,
):
    """A two-block model (width 16) whose trainable parts all get gradients.

    By default a CAST (spatial and temporal experts joined by B-CA); pass
    `experts=("spatial",)` for a cheaper single-expert classifier.
    """
    keras.utils.set_random_seed(seed)
    backbone = CA2STBackbone(
        experts=tiny_experts(
            frames=4,
            image_size=32,
            width=16,
            depth=2,
            heads=2,
            names=list(experts),
        ),
        pairs=[{"experts": list(experts)}] if len(experts) > 1 else [],
        cross_attention_heads=2,
        drop_path_rate=drop_path_rate,
        dtype=dtype,
    )
    model = VideoClassifier(backbone, num_classes=num_classes)
    # Zero-initialised up-projections would leave half the adapters without
    # gradient at the first step; random values exercise every update.
    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights:
        weight.assign(
            rng.normal(0.0, 0.05, weight.shape).astype("float32")
            + (1.0 if weight.path.endswith("gamma") else 0.0)
        )
    return model


def tiny_data(model, num_samples=8, seed=1):
    """Random inputs and labels (a dict of labels for multi-head models)."""
    inputs = random_inputs(model.backbone, batch=num_samples, seed=seed)
    rng = np.random.default_rng(seed)
    if isinstance(model.num_classes, dict):
        labels = {
            head: rng.integers(0, classes, num_samples)
            for head, classes in model.num_classes.items()
        }
    else:
        labels = rng.integers(0, model.num_classes, num_samples)
    return inputs, labels


def weights_of(model):
    """Every weight by position (layer names of a second model get suffixes)."""
    return {
        f"{i:04d}": keras.ops.convert_to_numpy(w.value)
        for i, w in enumerate(model.weights)
    }


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
