"""Training runs that the training tests start in fresh processes.

`python -m tests.training.workers MODE OUT_DIR [options]`, with MODE:

- `resume`: the recipe on a tiny CAST with `training_callbacks`; `--kill-at
  EPOCH BATCH` kills the process (SIGKILL) after that batch.
- `torch-ddp`: one rank of a `torchrun` job (or the single-process reference
  with `--single`).
- `tf-mirrored`: one device, then `MirroredStrategy` on two logical CPUs
  (a single-expert model, to keep TensorFlow's graph tracing short).

Each writes `weights*.npz` and `result*.json` (per-batch losses) to OUT_DIR.
"""

import argparse
import json
import os
import signal
import sys

import keras
import numpy as np

NUM_SAMPLES = 8
GLOBAL_BATCH = 4


class BatchLosses(keras.callbacks.Callback):
    """Records the running loss after every batch."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


class KillAt(keras.callbacks.Callback):
    """Kills this process with SIGKILL after `batch` of `epoch`."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch = epoch, batch
        self.current = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def compile_recipe(model, batch_size, epochs, steps_per_epoch, num_replicas=1, **kw):
    from keras_ca2st.training import (
        build_optimizer,
        classification_loss,
        classification_metrics,
    )

    optimizer = build_optimizer(
        model,
        base_learning_rate=0.5,
        batch_size=batch_size,
        num_replicas=num_replicas,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=1,
        **kw,
    )
    model.compile(
        optimizer=optimizer,
        loss=classification_loss(model.num_classes),
        metrics=classification_metrics(model.num_classes),
        jit_compile=keras.config.backend() == "jax",
    )


def run_resume(out, epochs, kill_at=None, experts=("spatial",), drop_path_rate=0.1):
    """The recipe with `training_callbacks`; returns final weights and facts."""
    from keras_ca2st.training import read_training_state, training_callbacks
    from tests.training.helpers import tiny_classifier, tiny_data, weights_of

    model = tiny_classifier(drop_path_rate=drop_path_rate, experts=experts)
    inputs, labels = tiny_data(model, NUM_SAMPLES)
    steps = NUM_SAMPLES // GLOBAL_BATCH
    compile_recipe(model, GLOBAL_BATCH, epochs, steps, accumulation_steps=2)
    before = read_training_state(os.path.join(out, "state"))
    callbacks = training_callbacks(out, monitor="top1", mode="max")
    if kill_at is not None:
        callbacks.append(KillAt(*kill_at))
    history = model.fit(
        inputs,
        labels,
        batch_size=GLOBAL_BATCH,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    return weights_of(model), {
        "resumed_from": None if before is None else before["epoch"],
        "epochs_run": history.epoch,
        "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
    }


def run_torch(out, single):
    """One rank of a torchrun job, or the single-process reference."""
    from keras_ca2st.training import setup_distribution
    from tests.training.helpers import tiny_classifier, tiny_data, weights_of

    distribution = setup_distribution("none" if single else "torch-ddp")
    # Ranks start from different weights: the broadcast must fix that.
    model = tiny_classifier(seed=distribution.process_index)
    if distribution.process_index:
        for weight in model.trainable_weights:
            weight.assign(weight.value * 3.0)
    inputs, labels = tiny_data(model, NUM_SAMPLES)
    if single:
        np.savez(os.path.join(out, "weights_initial.npz"), **weights_of(model))
    indices = distribution.shard_indices(NUM_SAMPLES)
    inputs = {k: v[indices] for k, v in inputs.items()}
    labels = labels[indices]
    batch = distribution.per_process_batch_size(GLOBAL_BATCH)
    compile_recipe(
        model,
        batch,
        2,
        len(indices) // batch,
        num_replicas=distribution.num_replicas,
    )
    losses = BatchLosses()
    history = model.fit(
        inputs,
        labels,
        batch_size=batch,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=distribution.callbacks() + [losses],
    )
    tag = "single" if single else f"rank{distribution.process_index}"
    np.savez(os.path.join(out, f"weights_{tag}.npz"), **weights_of(model))
    result = {
        "losses": losses.losses,
        "epoch_loss": history.history["loss"],
        "world_size": distribution.num_replicas,
        "kind": distribution.kind,
    }
    with open(os.path.join(out, f"result_{tag}.json"), "w") as handle:
        json.dump(result, handle)


def run_tf_mirrored(out):
    """One device, then MirroredStrategy over two logical CPUs."""
    import tensorflow as tf

    from keras_ca2st.training import setup_distribution
    from tests.training.helpers import tiny_classifier, tiny_data, weights_of

    results = {}
    for name in ("single", "mirrored"):
        distribution = None
        scope = tf.distribute.get_strategy().scope()
        if name == "mirrored":
            distribution = setup_distribution(
                "data-parallel", devices=["/cpu:0", "/cpu:1"]
            )
            results["num_replicas"] = distribution.num_replicas
            results["strategy"] = type(distribution.strategy).__name__
            scope = distribution.scope()
        with scope:
            model = tiny_classifier(experts=("spatial",))
            inputs, labels = tiny_data(model, NUM_SAMPLES)
            compile_recipe(
                model,
                GLOBAL_BATCH // (distribution.num_replicas if distribution else 1),
                2,
                NUM_SAMPLES // GLOBAL_BATCH,
                num_replicas=distribution.num_replicas if distribution else 1,
            )
        losses = BatchLosses()
        model.fit(
            inputs,
            labels,
            batch_size=GLOBAL_BATCH,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[losses],
        )
        results[name] = losses.losses
        np.savez(os.path.join(out, f"weights_{name}.npz"), **weights_of(model))
    with open(os.path.join(out, "result.json"), "w") as handle:
        json.dump(results, handle)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["resume", "torch-ddp", "tf-mirrored"])
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--kill-at", type=int, nargs=2, default=None)
    parser.add_argument("--single", action="store_true")
    parser.add_argument("--experts", default="spatial")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.mode == "resume":
        weights, result = run_resume(
            args.out, args.epochs, args.kill_at, tuple(args.experts.split(","))
        )
        np.savez(os.path.join(args.out, "weights.npz"), **weights)
        with open(os.path.join(args.out, "result.json"), "w") as handle:
            json.dump(result, handle)
    elif args.mode == "torch-ddp":
        run_torch(args.out, args.single)
    else:
        if keras.config.backend() == "tensorflow":
            import tensorflow as tf

            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2
            )
        run_tf_mirrored(args.out)


if __name__ == "__main__":
    main()
