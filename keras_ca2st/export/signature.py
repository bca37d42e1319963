"""The named inputs and outputs an exported model has.

Inputs are the model's clip inputs (`backbone.clip_spec.input_shapes()`:
`video`, `audio`, `video_times`, `audio_times` as the model takes them), each
with a dynamic batch dimension. Outputs are `logits` for a one-head model and
one output per head (`verb`, `noun`) for a two-head one.
"""

import numpy as np

SINGLE_OUTPUT = "logits"


def input_shapes(model):
    """Dict input name → shape with `None` for the batch, in the model's order."""
    shapes = model.backbone.clip_spec.input_shapes()
    return {name: (None, *shape) for name, shape in shapes.items()}


def output_names(model):
    """The exported outputs' names: `["logits"]` or the head names."""
    if isinstance(model.output, dict):
        return list(model.output)
    return [SINGLE_OUTPUT]


def named_outputs(outputs):
    """The model's outputs as a dict output name → tensor."""
    if isinstance(outputs, dict):
        return dict(outputs)
    return {SINGLE_OUTPUT: outputs}


def random_clip_inputs(model, batch=2, seed=0):
    """Random inputs of the model's clip shapes.

    Frames and fbank are standard normal; time intervals are sorted
    `[start, end]` pairs in seconds, like the ones the data pipeline makes.
    """
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, shape in input_shapes(model).items():
        shape = (batch, *shape[1:])
        if name.endswith("_times"):
            inputs[name] = np.sort(rng.uniform(0.0, 2.0, shape), axis=-1)
        else:
            inputs[name] = rng.standard_normal(shape)
        inputs[name] = inputs[name].astype("float32")
    return inputs
