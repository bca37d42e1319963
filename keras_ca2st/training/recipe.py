"""What one training run is: the recipe's settings, with no Keras import.

`Recipe` (optimizer, schedule, loss and precision settings), the precision
names and the distribution kinds. The `ca2st train` flags are declared from
them, and the command's `--help` must answer without loading a Keras backend,
so nothing here imports Keras; `fit.py` runs a recipe.

Example:
```python
recipe = Recipe(epochs=50, batch_size=48, base_learning_rate=5e-4,
                layer_decay=0.8)
recipe.dtype_policy  # "float32"
```
"""

import dataclasses

# The `setup_distribution` kinds (`distribution.py`).
DISTRIBUTION_KINDS = (
    "none",
    "data-parallel",
    "jax-data-parallel",
    "torch-ddp",
    "tf-mirrored",
)

PRECISION_POLICIES = {
    "fp32": "float32",
    "float32": "float32",
    "bf16": "mixed_bfloat16",
    "mixed_bfloat16": "mixed_bfloat16",
    "fp16": "mixed_float16",
    "mixed_float16": "mixed_float16",
}


def precision_policy(name):
    """The Keras dtype policy for a precision flag (`fp32`, `bf16`, `fp16`).

    Pass it as `dtype=` to `from_preset` / the backbone; with `"mixed_float16"`
    also build the optimizer with `loss_scale=True`.

    Example:

    >>> precision_policy("bf16")
    'mixed_bfloat16'
    """
    key = str(name).lower()
    if key not in PRECISION_POLICIES:
        raise ValueError(
            f"Unknown precision {name!r}; expected one of {sorted(PRECISION_POLICIES)}."
        )
    return PRECISION_POLICIES[key]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The settings of one training run (defaults: the reference video recipe).

    Args:
        epochs: training epochs (50; K400 70).
        batch_size: the global batch, all replicas together.
        base_learning_rate: learning rate per 256 samples; the peak is
            `base_learning_rate × batch_size × accumulation_steps / 256`
            (1e-3 video, 1e-4 or 5e-4 audio-visual).
        warmup_epochs: linear warm-up from 0 (5).
        min_learning_rate: where the cosine ends (1e-6).
        weight_decay: decoupled weight decay (0.05).
        layer_decay: per-block learning-rate decay (0.75 video, 0.8
            audio-visual; 1 for none).
        accumulation_steps: batches per optimizer update.
        label_smoothing: smoothing of class-index targets (0.1).
        mixed_precision: `"fp32"`, `"bf16"` or `"fp16"` (with loss scaling).
        seed: seed of the data order and augmentation.
    """

    epochs: int = 50
    batch_size: int = 8
    base_learning_rate: float = 1e-3
    warmup_epochs: float = 5.0
    min_learning_rate: float = 1e-6
    weight_decay: float = 0.05
    layer_decay: float = 0.75
    accumulation_steps: int = 1
    label_smoothing: float = 0.1
    mixed_precision: str = "fp32"
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "accumulation_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if not self.base_learning_rate > 0:
            raise ValueError(
                f"base_learning_rate must be positive; got {self.base_learning_rate}."
            )
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1]; got {self.layer_decay}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                f"label_smoothing must be in [0, 1); got {self.label_smoothing}."
            )
        if self.warmup_epochs < 0 or self.weight_decay < 0:
            raise ValueError("warmup_epochs and weight_decay must not be negative.")
        precision_policy(self.mixed_precision)  # raises for an unknown name

    @property
    def dtype_policy(self):
        """The Keras dtype policy of `mixed_precision` (e.g. `"mixed_bfloat16"`)."""
        return precision_policy(self.mixed_precision)
