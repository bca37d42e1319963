"""Recording attention weights while a model runs (the explain feature).

Fused kernels never materialise attention weights. While an
`AttentionRecorder` is active, every B-CA direction and every LAVISH adapter
takes the plain `keras.ops` path, which computes them, and hands them to the
recorder with the tokens they were computed from. Outside a recorder nothing
changes: no extra work, no extra outputs, nothing in the saved graph.

Recording needs eager execution (a model called directly, not `predict` or a
compiled function), since the weights are read as concrete arrays.
"""

import numpy as np

_ACTIVE = []


class AttentionRecorder:
    """Collects the attention weights of the layers that run while it is active.

    Each entry is a dict: `layer` (the layer object), `kind` (what attended to
    what, e.g. `"cross_attention"`, `"latents_from_other"`), `weights` (numpy,
    `(windows, heads, queries, keys)` or `(batch, queries, keys)`), and the
    arrays the weights were computed from (`inputs`, a dict of numpy arrays).

    Example:
    ```python
    with AttentionRecorder() as recorder:
        model(inputs, training=False)
    len(recorder.entries)  # one per direction and block
    ```
    """

    def __init__(self):
        self.entries = []

    def record(self, layer, kind, weights, **inputs):
        self.entries.append(
            {
                "layer": layer,
                "kind": kind,
                "weights": _to_numpy(weights),
                "inputs": {name: _to_numpy(x) for name, x in inputs.items()},
            }
        )

    def __enter__(self):
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc_info):
        _ACTIVE.remove(self)
        return False


def active_recorder():
    """The innermost active `AttentionRecorder`, or `None`."""
    return _ACTIVE[-1] if _ACTIVE else None


def _to_numpy(x):
    from keras import ops

    # float32 whatever the compute dtype: numpy has no bfloat16.
    return np.asarray(ops.convert_to_numpy(ops.cast(x, "float32")))
