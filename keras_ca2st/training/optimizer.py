"""AdamW with layer-wise learning-rate decay, as in the reference recipe.

SPEC section 10: AdamW (β 0.9 / 0.999, ε 1e-8, weight decay 0.05) where every
parameter's learning rate is scaled by its depth in the network. With `D`
blocks (12 for ViT-B) a parameter of block `i` (0-based) gets
`layer_decay ** (D − i)`, the patch/position/class embeddings get
`layer_decay ** (D + 1)` (frozen in practice) and everything above the
blocks — heads, last adapters, last norms, time-interval embeddings — gets 1.
The depth is read from the variable path: `block_{i}` (expert blocks),
`{expert}_attention_adapter_{i}`, `{expert}_mlp_adapter_{i}`, LAVISH's
`{modality}_{kind}_adapter_{i}`, and `exchange_{i}` (B-CA of block `i`).

Weight decay follows the same scale (decoupled decay `w ← w − lr·scale·wd·w`,
as `torch.optim.AdamW` does with per-group learning rates) and skips biases,
every parameter with at most one dimension (norms, LAVISH gates), the B-CA
position embeddings (`query_position`, `key_position`), the experts' own
position / class tokens, and LAVISH's latent tokens (learned tokens, treated
like position embeddings: decaying them would only shrink the summaries).
"""

import re

import keras
from keras import ops

from keras_ca2st.training.keras_internals import (
    OptimizerStepHooks,
    adam_slots,
    variable_index,
)

DEPTH_PATTERNS = (
    re.compile(r"(?:^|/)block_(\d+)(?:/|$)"),
    re.compile(r"_adapter_(\d+)(?:/|$)"),
    re.compile(r"(?:^|/)exchange_(\d+)(?:/|$)"),
)
# Path components of the input embeddings, below the first block.
EMBEDDING_NAMES = frozenset(
    {
        "patch_embedding",
        "class_embedding",
        "position_embedding",
        "position_embeddings",
        "cls_token",
        "distillation_token",
        "pre_layernorm",
    }
)
# Variables (last path component) that never get weight decay.
NO_WEIGHT_DECAY_NAMES = frozenset(
    {
        "bias",
        "query_position",
        "key_position",
        "latent_tokens",
        "class_embedding",
        "position_embedding",
        "position_embeddings",
        "cls_token",
        "distillation_token",
    }
)


def layer_index(path, num_layers):
    """Depth of a variable: 0 embeddings, `i + 1` block `i`, `num_layers + 1` top.

    Example:

    >>> layer_index("cross_expert_encoder/exchange_3/spatial_projection/up/kernel", 12)
    4
    >>> layer_index("head/kernel", 12)
    13
    """
    for pattern in DEPTH_PATTERNS:
        match = pattern.search(path)
        if match:
            return int(match.group(1)) + 1
    if EMBEDDING_NAMES.intersection(path.split("/")):
        return 0
    return num_layers + 1


def layer_scale(path, num_layers, layer_decay):
    """Learning-rate factor `layer_decay ** (num_layers + 1 − layer_index)`.

    Example:

    >>> layer_scale("cross_expert_encoder/spatial_mlp_adapter_11/up/bias", 12, 0.5)
    0.5
    >>> layer_scale("head/kernel", 12, 0.5)
    1.0
    """
    return float(layer_decay) ** (num_layers + 1 - layer_index(path, num_layers))


def infer_num_layers(paths):
    """Number of blocks: the largest block / adapter / exchange index plus one."""
    depth = 0
    for path in paths:
        for pattern in DEPTH_PATTERNS:
            match = pattern.search(path)
            if match:
                depth = max(depth, int(match.group(1)) + 1)
    return depth


def uses_weight_decay(path, shape):
    """Whether a variable gets weight decay (matrices and kernels only).

    Example:

    >>> uses_weight_decay("exchange_0/spatial_to_temporal/query/kernel", (384, 384))
    True
    >>> uses_weight_decay("exchange_0/spatial_to_temporal/query_position", (8, 384))
    False
    """
    if len(shape) <= 1:
        return False
    return path.split("/")[-1] not in NO_WEIGHT_DECAY_NAMES


@keras.saving.register_keras_serializable(package="keras_ca2st")
class LayerDecayAdamW(OptimizerStepHooks, keras.optimizers.AdamW):
    """AdamW with per-variable learning-rate scales from the block depth.

    Each trainable variable gets `layer_scale(path, num_layers, layer_decay)`;
    its update is the AdamW update at `learning_rate × scale`, weight decay
    included, and variables for which `uses_weight_decay` is false get none.
    The update is `torch.optim.AdamW`'s: `w ← w·(1 − lr·wd) − lr·m̂ / (√v̂ + ε)`
    with bias-corrected moments (Keras' own Adam adds ε before the bias
    correction of `v`).
    Works the same on every backend (on torch the update is grouped by scale
    and done with `torch._foreach_*` kernels), with `gradient_accumulation_steps`
    and inside `LossScaleOptimizer`.

    Args:
        learning_rate: float or schedule (e.g. `WarmupCosineDecay`).
        weight_decay: decoupled weight decay (0.05).
        layer_decay: per-block decay of the learning rate (0.75 video, 0.8
            audio-visual); 1 turns it off.
        num_layers: number of blocks `D`; `None` infers it from the variable
            paths when the optimizer is built.
        beta_1, beta_2, epsilon: Adam constants (0.9, 0.999, 1e-8).
        **kwargs: other `keras.optimizers.AdamW` arguments, e.g.
            `gradient_accumulation_steps`, `global_clipnorm`.

    Example:
    ```python
    optimizer = LayerDecayAdamW(learning_rate=1e-3, layer_decay=0.75)
    model.compile(optimizer=optimizer, loss=...)
    model.fit(...)
    optimizer.learning_rate_scales   # {variable path: factor}
    ```
    """

    def __init__(
        self,
        learning_rate=1e-3,
        weight_decay=0.05,
        layer_decay=1.0,
        num_layers=None,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            **kwargs,
        )
        if self.amsgrad:
            raise ValueError("LayerDecayAdamW does not implement amsgrad.")
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1]; got {layer_decay}.")
        self.layer_decay = float(layer_decay)
        self.num_layers = None if num_layers is None else int(num_layers)
        self._lr_scales = ()
        self._decay_flags = ()
        self._variable_paths = ()

    def build(self, var_list):
        if self.built:
            return
        paths = tuple(_variable_path(v) for v in var_list)
        depth = self.num_layers
        if depth is None:
            depth = infer_num_layers(paths)
        self._lr_scales = tuple(layer_scale(p, depth, self.layer_decay) for p in paths)
        self._decay_flags = tuple(
            uses_weight_decay(p, tuple(v.shape))
            for p, v in zip(paths, var_list, strict=True)
        )
        self._variable_paths = paths
        self._resolved_num_layers = depth
        super().build(var_list)

    @property
    def learning_rate_scales(self):
        """Dict variable path → learning-rate factor (after `build`)."""
        return dict(zip(self._variable_paths, self._lr_scales, strict=True))

    @property
    def weight_decay_paths(self):
        """Paths of the variables that get weight decay (after `build`)."""
        return [
            p for p, d in zip(self._variable_paths, self._decay_flags, strict=True) if d
        ]

    def apply_weight_decay(self, variables):
        # Decay happens inside the update, with each variable's own scale.
        return

    def update_step(self, gradient, variable, learning_rate):
        index = variable_index(self, variable)
        dtype = variable.dtype
        lr = ops.multiply(ops.cast(learning_rate, dtype), self._lr_scales[index])
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        first_correction = 1.0 - ops.power(ops.cast(self.beta_1, dtype), step)
        second_correction = 1.0 - ops.power(ops.cast(self.beta_2, dtype), step)
        m, v = adam_slots(self, index)
        if self._decay_flags[index] and self.weight_decay:
            wd = ops.cast(self.weight_decay, dtype)
            self.assign_sub(variable, ops.multiply(variable, ops.multiply(lr, wd)))
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(
            v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2)
        )
        denominator = ops.add(ops.sqrt(ops.divide(v, second_correction)), self.epsilon)
        self.assign_sub(
            variable,
            ops.divide(ops.multiply(m, ops.divide(lr, first_correction)), denominator),
        )

    def backend_update_step(self, grads, trainable_variables, learning_rate):
        if keras.config.backend() == "torch":
            _torch_grouped_update(self, grads, trainable_variables, learning_rate)
        else:
            super().backend_update_step(grads, trainable_variables, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(layer_decay=self.layer_decay, num_layers=self.num_layers)
        return config


def _variable_path(variable):
    return getattr(variable, "path", None) or variable.name


def _torch_grouped_update(optimizer, grads, variables, learning_rate):
    """The AdamW update with `torch._foreach_*`, one group per (scale, decay)."""
    import torch

    with torch.no_grad():
        groups = {}
        for grad, variable in zip(grads, variables, strict=True):
            index = variable_index(optimizer, variable)
            key = (optimizer._lr_scales[index], optimizer._decay_flags[index])
            groups.setdefault(key, []).append((grad, variable, index))
        step = ops.cast(optimizer.iterations + 1, "float32")
        beta_1, beta_2 = optimizer.beta_1, optimizer.beta_2
        first_correction = 1.0 - ops.power(beta_1, step)
        inverse_root = 1.0 / ops.sqrt(1.0 - ops.power(beta_2, step))
        base_lr = ops.cast(learning_rate, "float32")
        for (scale, decay), items in groups.items():
            params = [v.value for _, v, _ in items]
            dtype = params[0].dtype
            gradients = [
                ops.convert_to_tensor(g).to(p.dtype)
                for (g, _, _), p in zip(items, params, strict=True)
            ]
            slots = [adam_slots(optimizer, i) for _, _, i in items]
            moments = [m.value for m, _ in slots]
            velocities = [v.value for _, v in slots]
            lr = (base_lr * scale).to(dtype)
            if decay and optimizer.weight_decay:
                torch._foreach_mul_(params, 1.0 - lr * optimizer.weight_decay)
            torch._foreach_mul_(moments, beta_1)
            torch._foreach_add_(moments, gradients, alpha=1.0 - beta_1)
            torch._foreach_mul_(velocities, beta_2)
            torch._foreach_add_(
                velocities,
                torch._foreach_mul(gradients, gradients),
                alpha=1.0 - beta_2,
            )
            denominators = torch._foreach_mul(
                torch._foreach_sqrt(velocities), inverse_root.to(dtype)
            )
            torch._foreach_add_(denominators, optimizer.epsilon)
            updates = torch._foreach_mul(moments, (lr / first_correction).to(dtype))
            torch._foreach_div_(updates, denominators)
            torch._foreach_sub_(params, updates)


def build_optimizer(
    model=None,
    *,
    base_learning_rate=1e-3,
    batch_size,
    epochs,
    steps_per_epoch,
    num_replicas=1,
    accumulation_steps=1,
    warmup_epochs=5,
    min_learning_rate=1e-6,
    layer_decay=0.75,
    weight_decay=0.05,
    num_layers=None,
    loss_scale=False,
):
    """The reference optimizer: layer-decayed AdamW on a warm-up + cosine schedule.

    The peak learning rate is `base_learning_rate × total_batch / 256` with
    `total_batch = batch_size × num_replicas × accumulation_steps`; the
    schedule counts optimizer updates (`steps_per_epoch / accumulation_steps`
    per epoch).

    Args:
        model: optional model whose depth sets `num_layers` (else inferred when
            the optimizer is built).
        base_learning_rate: learning rate per 256 samples (1e-3 video, 1e-4 or
            5e-4 audio-visual).
        batch_size: samples per replica per step.
        epochs: training epochs (50; K400 70).
        steps_per_epoch: batches per epoch on one replica (`len(dataset)`).
        num_replicas: data-parallel replicas (`DistributionContext.num_replicas`).
        accumulation_steps: batches per optimizer update (1 = none).
        warmup_epochs: linear warm-up length (5).
        min_learning_rate: final learning rate (1e-6).
        layer_decay: 0.75 (video) or 0.8 (audio-visual).
        weight_decay: 0.05.
        num_layers: blocks `D`; default from `model`.
        loss_scale: wrap in `keras.optimizers.LossScaleOptimizer` (needed for
            `mixed_float16`; `mixed_bfloat16` needs none).

    Returns:
        A `LayerDecayAdamW` (or a `LossScaleOptimizer` around one).

    Example:
    ```python
    optimizer = build_optimizer(model, base_learning_rate=1e-3, batch_size=6,
                                num_replicas=8, accumulation_steps=4, epochs=50,
                                steps_per_epoch=len(train_data))
    model.compile(optimizer=optimizer, loss=classification_loss(400))
    ```
    """
    from keras_ca2st.training.schedules import (
        WarmupCosineDecay,
        effective_batch_size,
        scaled_learning_rate,
    )

    total_batch = effective_batch_size(batch_size, num_replicas, accumulation_steps)
    updates_per_epoch = steps_per_epoch / accumulation_steps
    total_updates = max(int(epochs * updates_per_epoch), 1)
    warmup_updates = min(int(warmup_epochs * updates_per_epoch), total_updates)
    schedule = WarmupCosineDecay(
        scaled_learning_rate(base_learning_rate, total_batch),
        total_steps=total_updates,
        warmup_steps=warmup_updates,
        min_learning_rate=min_learning_rate,
        accumulation_steps=accumulation_steps,
    )
    if num_layers is None and model is not None:
        num_layers = infer_num_layers(_variable_path(v) for v in model.weights)
    optimizer = LayerDecayAdamW(
        learning_rate=schedule,
        weight_decay=weight_decay,
        layer_decay=layer_decay,
        num_layers=num_layers,
        gradient_accumulation_steps=(
            accumulation_steps if accumulation_steps > 1 else None
        ),
    )
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
