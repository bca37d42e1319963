"""Every private Keras API the package relies on, in one place.

Keras has no public way to do the few things below, so each is reached
through Keras's private attributes here and nowhere else, under a name that
says what it does. They were checked against the Keras versions in
`CHECKED_KERAS_VERSIONS` (the test suite pins one of them and
`tests/training/test_keras_internals.py` checks each hook on the installed
Keras). When a Keras release renames or drops one, the call raises
`KerasInternalsError` naming the hook, what it is for and the versions that
work, instead of an `AttributeError` deep inside `fit`.

| hook | Keras private | for |
|---|---|---|
| `build_metrics_from_batch` | `Model._symbolic_build` | `build_before_fit` |
| `set_initial_epoch` | `Trainer._initial_epoch` | `TrainingState` resume |
| `OptimizerStepHooks` | `Optimizer._backend_update_step`, `_apply_weight_decay` | `LayerDecayAdamW` |
| `variable_index` | `Optimizer._get_variable_index` | per-variable scales |
| `adam_slots` | `Adam(W)._momentums`, `._velocities` | the grouped torch update |
| `transform_gradients_before_apply` | the instance's `Optimizer.apply` | torch DDP gradient averaging |
| `set_metric_direction` | `Metric._direction` | `monitor="val_top1"` with `mode="auto"` |
| `fix_multi_worker_fit` | `TensorFlowTrainer._maybe_symbolic_build`, `trainer.reduce_per_replica` | `fit` under `MultiWorkerMirroredStrategy` |
"""

import keras

CHECKED_KERAS_VERSIONS = ("3.15.0", "3.15.1")


class KerasInternalsError(RuntimeError):
    """A private Keras API the package uses is missing from the installed Keras."""


def _require(owner, name, purpose, owner_name=None):
    """`owner.name`, or a `KerasInternalsError` saying what changed."""
    try:
        return getattr(owner, name)
    except AttributeError:
        owner_name = owner_name or type(owner).__name__
        raise KerasInternalsError(
            f"keras_ca2st uses Keras's private `{owner_name}.{name}` ({purpose}); "
            f"Keras {keras.__version__} does not have it. It was checked on Keras "
            f"{', '.join(CHECKED_KERAS_VERSIONS)}: install one of those "
            f"(pip install keras=={CHECKED_KERAS_VERSIONS[-1]})."
        ) from None


# === model.fit ===


def build_metrics_from_batch(model, batch):
    """What `fit` does with its first batch (build loss and metrics), symbolically.

    No computation runs and no data iterator or worker pool is started.
    """
    build = _require(model, "_symbolic_build", "building metrics before fit")
    build(data_batch=tuple(batch) if isinstance(batch, list) else batch)


def fix_multi_worker_fit():
    """Lets `fit` run under TensorFlow's `MultiWorkerMirroredStrategy`.

    Two steps of Keras's TensorFlow trainer fail across workers (Keras 3.15):

    - Before its first step it builds the model from a batch that it first
      averages over the replicas (`strategy.reduce("MEAN", batch)`, only for
      its shapes). Across workers that is a collective all-reduce, which
      refuses nested inputs such as our dict of `video` / `audio` arrays.
      Only the shapes matter: the trainer builds from this worker's first
      local batch instead.
    - After each step it averages the logs over the replicas with
      `strategy.reduce("MEAN", value, axis=0)`, which fails for the scalar
      loss and metrics. A scalar is averaged over the replicas alone
      (`axis=None`), the same mean.

    Installed once, on the trainer class and module; other strategies take
    Keras's own path.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    reduce_per_replica = _require(
        tensorflow_trainer,
        "reduce_per_replica",
        "averaging the logs of a multi-worker step",
        "keras.src.backend.tensorflow.trainer",
    )
    if not getattr(reduce_per_replica, "_keras_ca2st", False):

        def reduce_scalars_per_replica(values, strategy, reduction):
            if reduction not in ("auto", "mean") or not isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy
            ):
                return reduce_per_replica(values, strategy, reduction)

            def reduce(value):
                if not isinstance(value, tf.distribute.DistributedValues):
                    return value
                rank = strategy.experimental_local_results(value)[0].shape.rank
                return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)

            return keras.tree.map_structure(reduce, values)

        reduce_scalars_per_replica._keras_ca2st = True
        tensorflow_trainer.reduce_per_replica = reduce_scalars_per_replica

    trainer = tensorflow_trainer.TensorFlowTrainer
    original = _require(
        trainer,
        "_maybe_symbolic_build",
        "building the model before fit under a multi-worker strategy",
        "TensorFlowTrainer",
    )
    if getattr(original, "_keras_ca2st", False):
        return

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            return original(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = keras.tree.map_structure(
                lambda x: (
                    strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues)
                    else x
                ),
                next(batches),
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    maybe_symbolic_build._keras_ca2st = True
    trainer._maybe_symbolic_build = maybe_symbolic_build


def set_initial_epoch(model, epoch):
    """Makes the next `fit` start at `epoch`, whatever `initial_epoch` it is given."""
    _require(model, "_initial_epoch", "resuming fit at a saved epoch")
    model._initial_epoch = int(epoch)


# === Optimizers ===


class OptimizerStepHooks:
    """Routes Keras's private optimizer steps to public-named methods.

    Put it before the Keras optimizer class in the bases. A subclass then
    overrides `apply_weight_decay(variables)` (Keras decays every variable at
    one rate before the update; return without decaying to decay inside
    `update_step` instead) and `backend_update_step(grads, variables,
    learning_rate)` (the whole update of one step; the default is Keras's).
    """

    def _apply_weight_decay(self, variables):
        return self.apply_weight_decay(variables)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        return self.backend_update_step(grads, trainable_variables, learning_rate)

    def apply_weight_decay(self, variables):
        keras_step = _require(
            super(), "_apply_weight_decay", "per-variable weight decay", "Optimizer"
        )
        return keras_step(variables)

    def backend_update_step(self, grads, trainable_variables, learning_rate):
        keras_step = _require(
            super(), "_backend_update_step", "the fused optimizer step", "Optimizer"
        )
        return keras_step(grads, trainable_variables, learning_rate)


def variable_index(optimizer, variable):
    """The position of `variable` in the optimizer's slot lists."""
    index_of = _require(optimizer, "_get_variable_index", "per-variable scales")
    return index_of(variable)


def adam_slots(optimizer, index):
    """`(first moment, second moment)` variables of Adam(W) for variable `index`."""
    momentums = _require(optimizer, "_momentums", "the grouped AdamW update")
    velocities = _require(optimizer, "_velocities", "the grouped AdamW update")
    return momentums[index], velocities[index]


def transform_gradients_before_apply(optimizer, transform):
    """Makes every `optimizer.apply(grads, variables)` see `transform(grads)`.

    Keras's `train_step` hands the gradients straight to `optimizer.apply`;
    wrapping that method on the instance is the one place to act on them
    first (torch DDP averages them over the ranks here). Idempotent per
    `transform`.
    """
    apply = _require(optimizer, "apply", "acting on gradients in train_step")
    if getattr(apply, "gradient_transform", None) is transform:
        return optimizer

    def apply_transformed(grads, trainable_variables=None):
        return apply(transform(list(grads)), trainable_variables)

    apply_transformed.gradient_transform = transform
    optimizer.apply = apply_transformed
    return optimizer


# === Metrics ===


def set_metric_direction(metric, direction):
    """Tells Keras callbacks whether higher (`"up"`) or lower is better.

    `ModelCheckpoint` / `EarlyStopping` with `mode="auto"` read it for metrics
    whose name does not say (`top1` is not `*acc*`).
    """
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down'; got {direction!r}.")
    metric._direction = direction
