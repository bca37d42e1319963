"""Copying checkpoint tensors into Keras variables, with shape checks.

PyTorch stores a linear layer as `(out, in)` and a convolution as
`(out, in, *kernel)`; Keras as `(in, out)` and `(*kernel, in, out)`. Shapes are
checked in the checkpoint's own layout, so an error shows the key and both
shapes as the checkpoint would write them.
"""

import numpy as np

from keras_ca2st.conversion.errors import ConversionError

# layout → (checkpoint array → Keras array, Keras shape → checkpoint shape)
LAYOUTS = {
    "same": (lambda a: a, lambda s: s),
    "dense": (lambda a: a.T, lambda s: s[::-1]),
    "conv2d": (
        lambda a: a.transpose(2, 3, 1, 0),
        lambda s: (s[3], s[2], s[0], s[1]),
    ),
    "conv3d": (
        lambda a: a.transpose(2, 3, 4, 1, 0),
        lambda s: (s[4], s[3], s[0], s[1], s[2]),
    ),
}


class WeightLoader:
    """Assigns tensors of a `Checkpoint` to Keras variables and tracks the keys used.

    Args:
        checkpoint: a `Checkpoint`.

    Example:
    ```python
    loader = WeightLoader(checkpoint)
    loader.dense(expert.blocks[0].mlp.fc1, "encoder.layers.0.mlp.fc1")
    loader.check_all_used(prefix="vision_model.", ignore=("vision_model.proj",))
    ```
    """

    def __init__(self, checkpoint):
        self.checkpoint = checkpoint
        self.used = set()

    def has(self, key):
        return key in self.checkpoint

    def array(self, key):
        self.used.add(key)
        return self.checkpoint.array(key)

    def first_key(self, *keys):
        """The first of several spellings of one tensor that the checkpoint has."""
        for key in keys:
            if key in self.checkpoint:
                return key
        raise ConversionError(
            f"Key {keys[0]!r} is missing from {self.checkpoint.origin}"
            + (f" (also tried {list(keys[1:])})." if len(keys) > 1 else ".")
        )

    def assign(self, variable, key, layout="same"):
        """Copy the tensor `key` into `variable`."""
        self.assign_array(variable, self.array(key), key, layout)

    def assign_array(self, variable, array, key, layout="same"):
        """Copy `array` (read from `key`, in checkpoint layout) into `variable`."""
        to_keras, source_shape = LAYOUTS[layout]
        target = tuple(int(d) for d in variable.shape)
        expected = tuple(source_shape(target))
        if tuple(array.shape) != expected:
            raise ConversionError(
                f"Shape mismatch for {key!r} in {self.checkpoint.origin}: the "
                f"checkpoint has {tuple(array.shape)}, the model weight "
                f"{variable.path} needs {expected}."
            )
        variable.assign(np.ascontiguousarray(to_keras(array)))

    def assign_zeros(self, variable):
        variable.assign(np.zeros(variable.shape, dtype="float32"))

    def dense(self, layer, prefix, bias=True):
        """A linear layer from `prefix.weight` and `prefix.bias`.

        `bias=False` reads no bias even if the layer has one (it is zeroed).
        """
        self.assign(layer.kernel, f"{prefix}.weight", "dense")
        if layer.bias is None:
            return
        if bias:
            self.assign(layer.bias, f"{prefix}.bias")
        else:
            self.assign_zeros(layer.bias)

    def conv(self, layer, prefix):
        """A 2-D or 3-D convolution from `prefix.weight` (and `prefix.bias`)."""
        layout = "conv3d" if len(layer.kernel.shape) == 5 else "conv2d"
        self.assign(layer.kernel, f"{prefix}.weight", layout)
        if layer.bias is not None:
            self.assign(layer.bias, f"{prefix}.bias")

    def layer_norm(self, layer, prefix):
        """A LayerNorm from `weight`/`bias` (or the legacy `gamma`/`beta`)."""
        self.assign(layer.gamma, self.first_key(f"{prefix}.weight", f"{prefix}.gamma"))
        self.assign(layer.beta, self.first_key(f"{prefix}.bias", f"{prefix}.beta"))

    def packed_rows(self, key, parts, width):
        """Split a `(parts·width, ...)` tensor (e.g. a fused qkv) by rows."""
        array = self.array(key)
        expected = parts * width
        if array.shape[0] != expected:
            raise ConversionError(
                f"Shape mismatch for {key!r} in {self.checkpoint.origin}: the "
                f"checkpoint has {tuple(array.shape)}, the model needs "
                f"{(expected, *array.shape[1:])} ({parts} parts of {width})."
            )
        return [array[i * width : (i + 1) * width] for i in range(parts)]

    def check_all_used(self, prefix="", ignore=()):
        """Raise if keys under `prefix` were neither used nor known to be unused.

        `ignore` holds key prefixes (after `prefix`) that are expected and unused,
        such as classification heads or a text tower.
        """
        unused = sorted(
            key
            for key in self.checkpoint.keys()
            if key.startswith(prefix)
            and key not in self.used
            and not key[len(prefix) :].startswith(tuple(ignore))
        )
        if unused:
            raise ConversionError(
                f"{self.checkpoint.origin} has {len(unused)} weights this converter "
                f"does not understand, e.g. {unused[:8]}; the checkpoint does not "
                "fit the model (a different architecture or layout)."
            )
