"""Running a `Recipe`: compile a classifier and fit it, the one training entry point.

SPEC section 10: layer-decayed AdamW on a warm-up + cosine schedule scaled by
the global batch, label-smoothed cross-entropy, top-1 / top-5 (and EK100
action) accuracy, resumable runs. `ca2st train` and `ca2st demo` both call
`fit_with_recipe`; they differ only in their `Recipe` and their data.

Example:
```python
recipe = Recipe(epochs=50, batch_size=48, base_learning_rate=5e-4,
                layer_decay=0.8)
history = fit_with_recipe(model, train, recipe, validation=val,
                          output_dir="runs/vggsound", datasets=[train, val])
```
"""

import keras
import numpy as np

from keras_ca2st.data import BadSampleReport
from keras_ca2st.training.checkpointing import build_before_fit, training_callbacks
from keras_ca2st.training.distribution import DistributionContext
from keras_ca2st.training.evaluation import ActionAccuracyCallback
from keras_ca2st.training.losses import classification_loss
from keras_ca2st.training.metrics import classification_metrics
from keras_ca2st.training.optimizer import build_optimizer


def compile_with_recipe(model, recipe, steps_per_epoch, distribution=None):
    """Compile `model` with the recipe's optimizer, loss and metrics.

    Metrics are weighted: samples of weight 0 (undecodable validation clips,
    padding) stay out of them. Call it inside `distribution.scope()`.

    Args:
        model: a `VideoClassifier` or `LAVISH` (its `num_classes` picks the
            heads' loss and metrics).
        recipe: a `Recipe`.
        steps_per_epoch: batches per epoch on one process.
        distribution: a `DistributionContext` (default: one process).
    """
    distribution = distribution or DistributionContext()
    num_classes = model.num_classes
    optimizer = build_optimizer(
        model,
        base_learning_rate=recipe.base_learning_rate,
        batch_size=recipe.batch_size // distribution.num_replicas,
        num_replicas=distribution.num_replicas,
        accumulation_steps=recipe.accumulation_steps,
        epochs=recipe.epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=recipe.warmup_epochs,
        min_learning_rate=recipe.min_learning_rate,
        layer_decay=recipe.layer_decay,
        weight_decay=recipe.weight_decay,
        loss_scale=recipe.dtype_policy == "mixed_float16",
    )
    model.compile(
        optimizer=optimizer,
        loss=classification_loss(num_classes, recipe.label_smoothing),
        metrics=None,  # not the task's "auto" accuracy
        weighted_metrics=classification_metrics(num_classes),
        jit_compile=distribution.jit_compile,
    )
    return model


def monitored_metric(model):
    """The validation metric that picks the best checkpoint."""
    return "val_action_top1" if isinstance(model.num_classes, dict) else "val_top1"


def fit_with_recipe(
    model,
    train,
    recipe,
    validation=None,
    output_dir=None,
    distribution=None,
    datasets=(),
    callbacks=(),
    validation_freq=1,
    verbose=1,
):
    """Compile `model` with the recipe and train it; returns the Keras `History`.

    Args:
        model: a `VideoClassifier` or `LAVISH`.
        train: a `keras.utils.PyDataset` of `(inputs, labels[, weights])`
            batches (e.g. a `VideoDataset`), or an in-memory `(inputs, labels)`
            pair batched by `recipe.batch_size`.
        recipe: a `Recipe`.
        validation: validation data in the same form, or `None`.
        output_dir: run directory for checkpoints, `log.csv`, TensorBoard and
            the resumable state (`training_callbacks`); running again with the
            same directory resumes after the last finished epoch. `None`
            writes nothing.
        distribution: a `DistributionContext` (default: one process).
        datasets: the `VideoDataset`s behind `train` / `validation`: their
            epoch follows the `fit` epoch (exact resume) and their bad samples
            are reported after every epoch.
        callbacks: more callbacks, run after the recipe's own.
        validation_freq: epochs between validation passes.
        verbose: Keras progress output (the chief process only).
    """
    distribution = distribution or DistributionContext()
    in_memory = isinstance(train, tuple)
    if in_memory:
        steps = int(np.ceil(len(train[1]) / recipe.batch_size))
        first = keras.tree.map_structure(lambda a: a[: recipe.batch_size], train)
    else:
        steps, first = len(train), train[0]
    with distribution.scope():  # TensorFlow: the optimizer's variables mirrored
        compile_with_recipe(model, recipe, steps, distribution)
        # Else `fit` reads its first batch through the worker pool and mixes
        # the pool's prefetched batches into the first epoch.
        build_before_fit(model, first)
    recipe_callbacks = [BadSampleReport(*datasets)] if datasets else []
    metric_callbacks = []
    if validation is not None and isinstance(model.num_classes, dict):
        metric_callbacks.append(ActionAccuracyCallback(validation))
    if output_dir is not None:
        recipe_callbacks += training_callbacks(
            output_dir,
            distribution,
            metric_callbacks=metric_callbacks,
            monitor=monitored_metric(model) if validation is not None else None,
            mode="max",
            datasets=datasets,  # shuffle and augmentation follow the fit epoch
        )
    else:
        recipe_callbacks += metric_callbacks + distribution.callbacks()
    data = {"x": train[0], "y": train[1]} if in_memory else {"x": train}
    return model.fit(
        **data,
        batch_size=recipe.batch_size if in_memory else None,
        validation_data=validation,
        validation_freq=validation_freq,
        epochs=recipe.epochs,
        callbacks=recipe_callbacks + list(callbacks),
        shuffle=in_memory,  # a dataset shuffles itself, seeded, every epoch
        verbose=verbose if distribution.is_chief else 0,
    )
