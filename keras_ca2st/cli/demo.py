"""`ca2st demo`: proof on a synthetic set that the label needs all three experts.

The synthetic set (`keras_ca2st.data.synthetic`) labels each clip by what its
object looks like, which way it moves and what it sounds like. Tiny models of
every kind — single experts, CAST, CAVA, CA²ST and LAVISH — train with
`model.fit` on the CPU; the table shows which cues each kind can combine. No
download: the tiny experts train from scratch (`train_experts=True`), since no
pretrained weights are at hand.
"""

import itertools
import json
import os
import time

import keras
import numpy as np

from keras_ca2st.cli.runs import RUN_FILE, write_run_info
from keras_ca2st.data import (
    ClipSpec,
    VideoDataset,
    make_synthetic_dataset,
    read_csv_annotations,
)
from keras_ca2st.data.clip_spec import INPUT_NAMES
from keras_ca2st.experts import ASTEncoder, CLIPVisionEncoder, VideoMAEEncoder
from keras_ca2st.models import LAVISH, CA2STBackbone, LAVISHBackbone, VideoClassifier
from keras_ca2st.reports.figures import finish, new_figure
from keras_ca2st.reports.training_plots import (
    confusion_matrix,
    draw_confusion_matrix,
    draw_training_curves,
    results_table,
)
from keras_ca2st.training import Recipe, fit_with_recipe

# name → (experts, the synthetic cues they can see)
DEMO_MODELS = {
    "spatial only": (["spatial"], "appearance"),
    "temporal only": (["temporal"], "appearance + motion"),
    "audio only": (["audio"], "sound"),
    "CAST": (["spatial", "temporal"], "appearance + motion"),
    "CAVA": (["spatial", "audio"], "appearance + sound"),
    "CA²ST": (["spatial", "temporal", "audio"], "all three"),
    "LAVISH": (["shared"], "all three"),
}
NUM_FRAMES = 8
FRAME_STRIDE = 4
IMAGE_SIZE = 32
AUDIO_FRAMES = 128
WIDTH = dict(hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64)


def tiny_experts():
    """The demo's experts: 2 blocks of width 32 on 8 frames of 32×32 and 1.28 s."""
    return {
        "spatial": CLIPVisionEncoder(
            image_size=IMAGE_SIZE, patch_size=8, num_frames=NUM_FRAMES, **WIDTH
        ),
        "temporal": VideoMAEEncoder(
            image_size=IMAGE_SIZE, patch_size=8, num_frames=NUM_FRAMES, **WIDTH
        ),
        "audio": ASTEncoder(
            num_time_frames=AUDIO_FRAMES, patch_size=16, stride=16, **WIDTH
        ),
    }


def build_model(name):
    """A tiny classifier of the given demo kind, experts trained from scratch."""
    experts, _ = DEMO_MODELS[name]
    if name == "LAVISH":
        encoder = CLIPVisionEncoder(
            image_size=IMAGE_SIZE,
            patch_size=8,
            num_frames=NUM_FRAMES,
            frame_offset=0,
            frame_stride=1,
            **WIDTH,
        )
        backbone = LAVISHBackbone(
            encoder=encoder,
            audio_frames=AUDIO_FRAMES,
            num_latent_tokens=2,
            reduction=4,
            train_experts=True,
        )
        return LAVISH(backbone, num_classes=8, hidden_units=64)
    chosen = {key: expert for key, expert in tiny_experts().items() if key in experts}
    pairs = [{"experts": list(pair)} for pair in itertools.combinations(experts, 2)]
    backbone = CA2STBackbone(
        experts=chosen, pairs=pairs, cross_attention_heads=2, train_experts=True
    )
    return VideoClassifier(backbone, num_classes=8)


def demo_recipe(epochs, batch_size, learning_rate, seed):
    """The training recipe of the demo's tiny models, trained from scratch.

    AdamW peaking at `learning_rate` after a warm-up of a tenth of the run, then
    cosine to zero; light weight decay; no layer decay or label smoothing,
    which serve fine-tuning pretrained experts rather than training them.
    """
    return Recipe(
        epochs=epochs,
        batch_size=batch_size,
        # The recipe's rate is per 256 samples.
        base_learning_rate=learning_rate * 256 / batch_size,
        warmup_epochs=epochs / 10,
        min_learning_rate=0.0,
        weight_decay=0.01,
        layer_decay=1.0,
        label_smoothing=0.0,
        seed=seed,
    )


class EpochProgress(keras.callbacks.Callback):
    """Prints a model's validation accuracy a few times during training."""

    def __init__(self, name, epochs, print_fn, reports=4):
        super().__init__()
        self.name, self.epochs, self.print_fn = name, epochs, print_fn
        self.every = max(1, epochs // reports)
        self.began = time.perf_counter()
        self.last_accuracy = float("nan")

    def on_epoch_end(self, epoch, logs=None):
        self.last_accuracy = (logs or {}).get("val_top1", self.last_accuracy)
        done = epoch + 1
        if done % self.every and done != self.epochs:
            return
        self.print_fn(
            f"  {self.name:<14} epoch {done:>3}/{self.epochs}  last val acc "
            f"{self.last_accuracy:6.1%}  ({time.perf_counter() - self.began:.0f}s)"
        )


class StopWhenFit(keras.callbacks.Callback):
    """Stops once the model classifies every training clip correctly.

    After `patience` epochs in a row at 100% training accuracy there is nothing
    left to learn from the training set. Only training data decides, so the
    validation accuracy stays an independent measurement.
    """

    def __init__(self, patience=3):
        super().__init__()
        self.patience = patience
        self.perfect_epochs = 0
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("top1", 0.0)
        self.perfect_epochs = self.perfect_epochs + 1 if accuracy >= 1.0 else 0
        if self.perfect_epochs >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True


def load_split(annotations, root):
    """Decode one split once: its centre clip and centre crop, as arrays."""
    records = read_csv_annotations(annotations, root)
    # Every input any demo model takes; each model picks its own.
    spec = ClipSpec(
        INPUT_NAMES,
        num_frames=NUM_FRAMES,
        crop_size=IMAGE_SIZE,
        audio_frames=AUDIO_FRAMES,
    )
    dataset = VideoDataset(
        records,
        batch_size=len(records),
        mode="val",
        spec=spec,
        frame_stride=FRAME_STRIDE,
        num_test_clips=1,
        num_test_crops=1,
        bad_sample_policy="raise",
    )
    batch = dataset[0]
    return batch[0], np.asarray(batch[1])


def run_demo(
    output_dir,
    num_train=256,
    num_val=48,
    epochs=80,
    batch_size=16,
    learning_rate=3e-3,
    validate_every=4,
    seed=0,
    models=None,
    print_fn=print,
):
    """Write the synthetic set, train every demo model, report and plot.

    Args:
        output_dir: where the dataset, `demo_results.json` and `demo.png` go.
        num_train, num_val: clips per split (balanced over the 8 classes).
        epochs, batch_size, learning_rate: training settings (AdamW, warm-up
            then cosine decay). A model stops before `epochs` once it gets
            every training clip right three epochs in a row (`StopWhenFit`).
        validate_every: epochs between validation passes (every epoch when
            `epochs` is not a multiple of it, so the last epoch is validated).
        seed: seed of the data and of every model.
        models: names from `DEMO_MODELS` (default: all).
        print_fn: where progress and the table go.

    Returns:
        dict model name → `{"val_accuracy", "epochs_trained", "val_epochs",
        "val_accuracy_curve", "trainable_params", "seconds", "cues",
        "confusion", "history", "run_dir"}`; each trained model is saved as a run
        directory (`runs/<name>/`) that `ca2st predict` takes.
    """
    os.makedirs(output_dir, exist_ok=True)
    start = time.perf_counter()
    data = make_synthetic_dataset(
        os.path.join(output_dir, "data"),
        num_train=num_train,
        num_val=num_val,
        seed=seed,
    )
    train_x, train_y = load_split(data.train_annotations, data.root)
    val_x, val_y = load_split(data.val_annotations, data.root)
    print_fn(
        f"synthetic set: {num_train} train / {num_val} val clips, 8 classes "
        f"(appearance × motion × sound), ready in {time.perf_counter() - start:.0f}s"
    )
    if epochs % validate_every:
        validate_every = 1
    val_epochs = list(range(validate_every, epochs + 1, validate_every))
    recipe = demo_recipe(epochs, batch_size, learning_rate, seed)
    results = {}
    for name in models or DEMO_MODELS:
        keras.utils.set_random_seed(seed)
        model = build_model(name)
        keys = list(model.input)
        began = time.perf_counter()
        stop = StopWhenFit()
        history = fit_with_recipe(
            model,
            ({k: train_x[k] for k in keys}, train_y),
            recipe,
            validation=({k: val_x[k] for k in keys}, val_y),
            validation_freq=validate_every,
            callbacks=[EpochProgress(name, epochs, print_fn), stop],
            verbose=0,
        )
        if stop.stopped_epoch is not None:
            print_fn(
                f"  {name:<14} stopped after epoch {stop.stopped_epoch}: every "
                "training clip right for 3 epochs"
            )
        logits = model.predict({k: val_x[k] for k in keys}, verbose=0)
        predicted = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1)
        curve = [float(a) for a in history.history.get("val_top1", [])]
        results[name] = {
            "val_accuracy": float(np.mean(predicted == val_y)),
            "epochs_trained": len(history.history["loss"]),
            "val_epochs": val_epochs[: len(curve)],
            "val_accuracy_curve": curve,
            "trainable_params": int(
                sum(np.prod(w.shape) for w in model.trainable_weights)
            ),
            "seconds": time.perf_counter() - began,
            "cues": DEMO_MODELS[name][1],
            "confusion": confusion_matrix(val_y, predicted, 8).tolist(),
            "history": {
                key: [float(v) for v in values]
                for key, values in history.history.items()
            },
            "run_dir": save_run(model, name, data.class_names, output_dir),
        }
    print_fn(format_table(results))
    print_fn(f"total {time.perf_counter() - start:.0f}s on {keras.config.backend()}")
    with open(os.path.join(output_dir, "demo_results.json"), "w") as file:
        json.dump(results, file, indent=2)
    plot_results(results, data.class_names, os.path.join(output_dir, "demo.png"))
    return results


def save_run(model, name, class_names, output_dir):
    """The trained model as a run directory `ca2st predict` and `evaluate`
    take (`model.keras` + `run.json` with the demo's sampling)."""
    slug = name.lower().replace("²", "2").replace(" ", "_")
    run_dir = os.path.join(output_dir, "runs", slug)
    os.makedirs(run_dir, exist_ok=True)
    model.save(os.path.join(run_dir, "model.keras"))
    write_run_info(
        os.path.join(run_dir, RUN_FILE),
        {
            "class_names": list(class_names),
            "data": {
                "sampling": "dense",
                "frame_stride": FRAME_STRIDE,
                "num_test_clips": 1,
                "num_test_crops": 1,
            },
        },
    )
    return run_dir


def format_table(results):
    """The demo's results as a Markdown table (`results_table`)."""
    return results_table(
        results,
        {
            "cues": "cues it can see",
            "trainable_params": "trainable",
            "epochs_trained": "epochs",
            "val_accuracy": "val accuracy",
        },
    )


def plot_results(results, class_names, path):
    """Validation-accuracy curves of every model and CA²ST's confusion matrix."""
    figure = new_figure((13, 5.5))
    curves, matrix = figure.subplots(1, 2)
    runs = {name: result["history"] for name, result in results.items()}
    draw_training_curves(curves, runs, "val_top1")
    # What a model that sees one or two of the three cues can reach.
    for level, label in ((0.25, "one cue"), (0.5, "two cues")):
        curves.axhline(level, color="grey", lw=0.6, ls=":")
        curves.annotate(
            label,
            (1.0, level),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=7,
            color="grey",
        )
    curves.set_ylim(0, 1.05)
    curves.set_ylabel("validation accuracy")
    curves.set_title("Validation accuracy during training")
    shown = "CA²ST" if "CA²ST" in results else next(iter(results))
    draw_confusion_matrix(
        matrix,
        results[shown]["confusion"],
        class_names,
        f"{shown}: validation confusion matrix",
    )
    return finish(figure, path)
