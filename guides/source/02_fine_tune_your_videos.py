# %% [markdown]
# # Fine-tune on your own videos
#
# This guide takes a folder of mp4 files and a CSV of labels to a fine-tuned, evaluated
# model: reading the annotations, how clips are sampled from each video, augmentation and
# mixup, `fit` with the package's recipe (layer-decayed AdamW, warm-up + cosine), the run
# directory with its checkpoints and how a run resumes, multi-view evaluation, the
# EPIC-KITCHENS-100 verb / noun / action setting and the confusion matrix. Each step also
# shows the `ca2st train` / `ca2st evaluate` command line that does the same.
#
# **What you need:** the package with one Keras backend and the demo extra
# (`pip install -c .ci/constraints.txt -e ".[torch,demo]"`), a CPU and about a minute.
# Nothing is downloaded: a synthetic set of real mp4 files stands in for your videos, and
# the model is a tiny CAST (a CLIP and a VideoMAE expert of width 16 joined by B-CA). At
# full size you would start from a preset with pretrained experts on a GPU (guide 03) and
# keep every step below as it is; audio-visual models (CAVA, CA²ST) take the same steps.

# %%
# ── Settings ──────────────────────────────────────────────────────────────────
# tiny (a CPU, about a minute)     # full size (a GPU, pretrained ViT-B experts)
NUM_TRAIN = 16  #                    your training set (Kinetics-400: 240k clips)
NUM_VAL = 8  #                       your validation / test set
FRAMES = 4  #                        16 frames per clip
CROP = 32  #                         224 × 224 crops
WIDTH, DEPTH = 16, 1  #              768, 12: CAST.from_preset("cast_base", ...)
BATCH_SIZE = 8  #                    48 (global: all GPUs together)
EPOCHS = 3  #                        50
BASE_LR = 0.1  #                     1e-3 per 256 clips (peak: BASE_LR × batch / 256)
WARMUP_EPOCHS = 1  #                 5
LAYER_DECAY = 0.75  #                0.75 video, 0.8 audio-visual
TEST_CLIPS, TEST_CROPS = 2, 3  #     2 × 3 (Kinetics-400: 5 × 3)

# %%
import csv
import os

import keras
from IPython.display import Image, Markdown

import keras_ca2st

print(f"keras_ca2st {keras_ca2st.__version__}, backend {keras.config.backend()}")
if keras.config.backend() == "jax":
    # JAX compiles each new train / evaluation step. With a compilation cache, a model
    # of the same architecture (the resumed run below) reuses the compiled programs.
    import jax

    jax.config.update("jax_compilation_cache_dir", "jax_cache")

# %% [markdown]
# ## 1. A folder of videos and a CSV → annotations
#
# Your data is a folder of video files and an annotation file. `make_synthetic_dataset`
# writes such a folder: real H.264 + AAC mp4 files in `my_videos/videos/`, a
# `train.csv` and a `val.csv` with a `path,label` header (paths relative to the folder) and
# a `classes.txt`. Each clip shows a red square or a blue disc moving left or right while a
# low or high tone plays; the class is the combination (8 classes).

# %%
from keras_ca2st.data import make_synthetic_dataset

data = make_synthetic_dataset("my_videos", num_train=NUM_TRAIN, num_val=NUM_VAL)
print(sorted(os.listdir("my_videos")), len(os.listdir("my_videos/videos")), "mp4 files")
with open(data.train_annotations) as handle:
    print("".join(handle.readlines()[:4]))

# %% [markdown]
# `read_csv_annotations` turns the CSV into `VideoRecord`s (path joined to the folder,
# label, optional `start` / `end` seconds of a segment when the CSV has those columns).
# Labels may also be class names when you pass `class_names`. Every error names
# `file:line`. Other layouts have their readers — `read_annotations(path, "space")` for
# Kinetics / Something-Something lists (`path label` lines) and `"epic"` for
# EPIC-KITCHENS-100 (section 8).

# %%
from keras_ca2st.data import read_class_names, read_csv_annotations

class_names = read_class_names(data.class_names_path)
records = read_csv_annotations(data.train_annotations, data.root)
val_records = read_csv_annotations(data.val_annotations, data.root)
print(records[0])
print(len(records), "training videos,", len(val_records), "validation videos")
print("class 0:", class_names[0])

# %% [markdown]
# ## 2. The model says what a clip is
#
# A model knows what it takes: `model.backbone.clip_spec` lists its inputs, the number of
# frames, the crop size and the normalisation (and for audio-visual models the audio length
# in 10 ms fbank frames, the mel bins and the time intervals of the audio-visual exchange).
# The data pipeline reads it, so the batches always fit the model. At full size the model
# would be `keras_ca2st.CAST.from_preset("cast_base", num_classes=8)` (16 frames of 224²);
# here the same architecture is built with tiny experts.

# %%
from keras_ca2st import CAST, CA2STBackbone, CLIPVisionEncoder, VideoMAEEncoder


def build_model(num_classes, seed=0):
    """A tiny CAST: CLIP (space) and VideoMAE (time), frozen, joined by B-CA."""
    keras.utils.set_random_seed(seed)
    size = dict(hidden_dim=WIDTH, num_layers=DEPTH, num_heads=2)
    video = dict(image_size=CROP, patch_size=8, num_frames=FRAMES, **size)
    experts = {
        "spatial": CLIPVisionEncoder(intermediate_dim=2 * WIDTH, **video),
        "temporal": VideoMAEEncoder(intermediate_dim=2 * WIDTH, **video),
    }
    pairs = [{"experts": ["spatial", "temporal"]}]
    backbone = CA2STBackbone(experts=experts, pairs=pairs, cross_attention_heads=2)
    return CAST(backbone, num_classes=num_classes)


model = build_model(data.num_classes)
spec = model.backbone.clip_spec
print(spec)
print("inputs:", model.backbone.input_shapes())

# %% [markdown]
# ## 3. Sampling: which frames make a clip
#
# A *clip* is `num_frames` frames taken from a video. Two schemes, as in the papers:
#
# - **dense** (Kinetics, the audio-visual sets): frames `frame_stride` apart in a window;
#   a random window in training, evenly spaced windows for the test views;
# - **uniform** (Something-Something, EPIC-KITCHENS): the video is cut into `num_frames`
#   segments and one frame is taken from each — a random one in training, the segment
#   starts or centres for the test views.
#
# Here on a 32-frame video (the synthetic clips are 2 s at 16 fps):

# %%
import numpy as np

from keras_ca2st.data import dataset_recipe, sample_frame_indices

rng = np.random.default_rng(0)
for scheme in ("dense", "uniform"):
    train_view = sample_frame_indices(32, scheme, FRAMES, stride=4, rng=rng)
    tests = [
        sample_frame_indices(32, scheme, FRAMES, stride=4, clip_index=i, num_clips=2)
        for i in range(2)
    ]
    tests = [t.tolist() for t in tests]
    print(f"{scheme:>8}: train {train_view.tolist()}, test views {tests}")

table = [
    "| recipe | sampling | stride | flips | test views | mixup prob. |",
    "|---|---|---|---|---|---|",
]
for name in ("k400", "ssv2", "ek100", "vggsound"):
    recipe_data = dataset_recipe(name)
    settings = recipe_data["dataset"]
    test_views = f"{settings['num_test_clips']} × {settings['num_test_crops']}"
    table.append(
        f"| {name} | {settings['sampling']} | {settings.get('frame_stride', '—')} "
        f"| {settings.get('horizontal_flip', True)} | {test_views} "
        f"| {recipe_data['mixup_prob']} |"
    )
Markdown("\n".join(table))

# %% [markdown]
# `dataset_recipe(name)` holds these settings (and `ca2st train --dataset NAME` applies
# them). For an audio-visual model the clip also brings its audio: the window of
# `audio_frames × 10 ms` centred on the clip, as an AST fbank, and `video_times` /
# `audio_times`, when each frame pair and each piece of audio happen.
#
# ## 4. Augmentation and mixup
#
# In `mode="train"` a `VideoDataset` draws a random clip, a random resized crop (area in
# `crop_scale`, aspect in `crop_ratio`), optional horizontal flips and RandAugment, and —
# with a `Mixup` — mixes each batch with its reverse and returns soft targets (label
# smoothing included). Every draw comes from `(seed, epoch, view)`, so a run is
# reproducible whatever the number of loader workers. The synthetic labels say *which way*
# the object moves, so flips are off here, as for Something-Something.

# %%
from keras_ca2st.data import Mixup, VideoDataset

mixup = Mixup(data.num_classes, alpha=0.8, prob=0.5, label_smoothing=0.1)
common = dict(spec=spec, frame_stride=2, seed=0)  # dense: FRAMES frames 2 apart
train = VideoDataset(
    records, BATCH_SIZE, mode="train", horizontal_flip=False, mixup=mixup, **common
)
val = VideoDataset(val_records, BATCH_SIZE, mode="val", **common)

inputs, targets = train[0]
print({name: value.shape for name, value in inputs.items()})
print("soft targets of the first clip:", np.round(targets[0], 3))
train.set_epoch(1)  # another epoch: other clips, crops and mixing
print(
    "same batch, next epoch, first pixels differ:",
    not np.allclose(train[0][0]["video"][0, 0, 0], inputs["video"][0, 0, 0]),
)
train.set_epoch(0)

# %% [markdown]
# ## 5. `fit` with the recipe
#
# `Recipe` holds a run's settings and `fit_with_recipe` runs it — what `ca2st train` does:
#
# - **AdamW with layer decay**: a variable in block `i` of `D` learns at
#   `layer_decay ** (D − i)` times the head's rate, so the lower blocks move least;
#   biases, norms and position embeddings get no weight decay;
# - **warm-up + cosine**: linear warm-up for `warmup_epochs`, then a per-step cosine to
#   `min_learning_rate`; the peak is `base_learning_rate × global batch / 256`;
# - label-smoothed cross-entropy (soft targets from mixup are used as they are), top-1 /
#   top-5 weighted metrics (undecodable validation clips get weight 0);
# - with `output_dir`: per-epoch checkpoints, `log.csv`, TensorBoard and the resumable
#   training state.
#
# Only the adapters, the B-CA modules, the experts' last norms and the head train.
# Suppose the run is stopped after 2 of its epochs (the callback plays the part of a
# killed job):

# %%
from keras_ca2st.training import Recipe, fit_with_recipe

recipe = Recipe(
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    base_learning_rate=BASE_LR,
    warmup_epochs=WARMUP_EPOCHS,
    layer_decay=LAYER_DECAY,
    weight_decay=0.05,
    label_smoothing=0.1,
)
stop_after_2 = keras.callbacks.LambdaCallback(
    on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", epoch == 1)
)
history = fit_with_recipe(
    model,
    train,
    recipe,
    validation=val,
    output_dir="runs/my_cast",
    datasets=[train, val],
    callbacks=[stop_after_2],
    verbose=2,
)

# %% [markdown]
# The optimizer is the recipe's `LayerDecayAdamW`. Its per-variable learning-rate factors
# show the layer decay (the head and the experts' last norms at 1, the modules of block
# `i` at `LAYER_DECAY ** (DEPTH − i)`), and the schedule is a linear warm-up to the peak,
# then a cosine down to `min_learning_rate`:

# %%
from collections import Counter

from keras_ca2st.training import WarmupCosineDecay, scaled_learning_rate

scales = model.optimizer.learning_rate_scales
for factor, count in sorted(Counter(scales.values()).items()):
    example = next(path for path, value in scales.items() if value == factor)
    print(f"× {factor:.4f}: {count:3d} variables, e.g. {example}")
trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
print(f"trainable parameters: {trainable:,} of {model.count_params():,}")

steps = len(train)  # batches per epoch
peak = scaled_learning_rate(BASE_LR, BATCH_SIZE)
schedule = WarmupCosineDecay(
    peak, EPOCHS * steps, WARMUP_EPOCHS * steps, recipe.min_learning_rate
)
print(
    f"peak {peak:.2e}; per step:",
    [f"{float(schedule(s)):.2e}" for s in range(EPOCHS * steps + 1)],
)

# %% [markdown]
# ## 6. Checkpoints and resume
#
# The run directory holds the per-epoch weights (with optimizer state), the best epoch by
# validation top-1, the CSV log, TensorBoard logs and `state/` — the whole training state
# after the last finished epoch (weights, optimizer moments and step, random-generator
# states).

# %%
from keras_ca2st.training import read_training_state

for folder, _, files in sorted(os.walk("runs/my_cast")):
    if "tensorboard" not in folder:
        print(folder, sorted(files))
state = read_training_state("runs/my_cast/state")
print({key: state[key] for key in ("epoch", "iterations")})

# %% [markdown]
# Running the same command again resumes: a new process builds the model, and `fit` starts
# after the last finished epoch with the saved weights, optimizer state and step, and (with
# `datasets=`) the shuffle order and augmentation an uninterrupted run would have used.
# Here a fresh model asks for all `EPOCHS` epochs and trains only the missing one:

# %%
model = build_model(data.num_classes, seed=1)  # as a new process would
history = fit_with_recipe(
    model,
    train,
    recipe,
    validation=val,
    output_dir="runs/my_cast",
    datasets=[train, val],
    verbose=2,
)
print(
    "epochs run now:",
    len(history.history["loss"]),
    "| state after epoch",
    read_training_state("runs/my_cast/state")["epoch"],
)

# %% [markdown]
# The command line does all of the above (the flags map to `Recipe`; the run directory
# also gets `model.keras` and `run.json` for `ca2st evaluate` / `ca2st predict`; the same
# command again resumes):
#
# ```bash
# ca2st train --preset cast_base --num-classes 8 --dataset synthetic \
#     --train-annotations my_videos/train.csv --val-annotations my_videos/val.csv \
#     --data-root my_videos --class-names my_videos/classes.txt \
#     --epochs 50 --batch-size 48 --lr 1e-3 --layer-decay 0.75 --output-dir runs/my_cast
# ```
#
# `--dataset` names the data recipe (annotation format, sampling, flips, test views,
# mixup): `synthetic` is this set's; for your videos take the closest of `k400`, `ssv2`
# (`path label` lines), `ek100` and the audio-visual `vggsound`, `epic_sounds`, `ucf101`,
# `kinetics_sound` (a `path,label[,start,end]` CSV), or leave it out: a `.csv` is then read
# as above with `VideoDataset`'s defaults. Audio-visual videos train CA²ST the same way:
# `--preset ca2st_base --dataset vggsound --lr 5e-4 --layer-decay 0.8`.
#
# The log has every epoch of both calls; `plot_training_curves` draws it:

# %%
from keras_ca2st.reports.training_plots import plot_training_curves

with open("runs/my_cast/log.csv") as handle:
    rows = list(csv.DictReader(handle))
log = {key: [float(row[key]) for row in rows] for key in rows[0] if key != "epoch"}
print("epochs in log.csv:", [int(row["epoch"]) + 1 for row in rows])
plot_training_curves(
    log, ("loss", "val_loss", "val_top1"), "curves.png", chance=1 / data.num_classes
)
Image("curves.png")

# %% [markdown]
# With three epochs of sixteen clips and random frozen experts, the tiny model is still at
# chance; the curves are there to read, not to admire.
#
# ## 7. Multi-view evaluation
#
# Papers report accuracy over several *views* of each test video: `num_test_clips`
# temporal clips × `num_test_crops` spatial crops (left / centre / right of the short
# side). A `VideoDataset` in `mode="test"` yields all views of each video in order, and
# `evaluate_multiview` averages the softmax of a video's views before scoring it.

# %%
from keras_ca2st.training import evaluate_multiview

views = TEST_CLIPS * TEST_CROPS
test = VideoDataset(
    val_records,
    BATCH_SIZE * views,  # the views of BATCH_SIZE videos per batch
    mode="test",
    num_test_clips=TEST_CLIPS,
    num_test_crops=TEST_CROPS,
    **common,
)
result = evaluate_multiview(model, test)
print(f"{len(test.views)} views of {len(val_records)} videos:", result.metrics)
for row in result.per_video()[:3]:
    print(row)

# %% [markdown]
# `ca2st evaluate --model runs/my_cast --annotations my_videos/val.csv --views 2x3`
# prints the same (and `--per-video-csv FILE` writes `result.per_video()`). The confusion
# matrix counts, per true class, what the model predicted:

# %%
from keras_ca2st.reports.training_plots import confusion_matrix, plot_confusion_matrix

matrix = confusion_matrix(result.labels, result.predictions, data.num_classes)
plot_confusion_matrix(
    matrix, class_names, "confusion.png", title="validation, 2 × 3 views"
)
Image("confusion.png")

# %% [markdown]
# ## 8. EPIC-KITCHENS-100: verb, noun and action
#
# EPIC-KITCHENS-100 labels each clip with a verb and a noun; an *action* is right only when
# both are. The annotation file has `narration_id,verb_class,noun_class` lines (the clip is
# `<narration_id>.mp4`). To stand in for it, the synthetic classes are split into a verb
# (which way the object moves) and a noun (which object it is) with `label_factors`:

# %%
from keras_ca2st.data import read_annotations
from keras_ca2st.data.synthetic import label_factors

verbs, nouns = ["move right", "move left"], ["red square", "blue disc"]
for split, split_records in (("train", records), ("val", val_records)):
    with open(f"ek100_{split}.csv", "w") as handle:
        handle.write("narration_id,verb_class,noun_class\n")
        for record in split_records:
            appearance, direction, _ = label_factors(record.label)
            narration = os.path.relpath(record.path, data.root)[: -len(".mp4")]
            handle.write(f"{narration},{direction},{appearance}\n")
print(open("ek100_train.csv").read().splitlines()[:3])
ek_train = read_annotations("ek100_train.csv", "epic", video_root=data.root)
ek_val = read_annotations("ek100_val.csv", "epic", video_root=data.root)
print(ek_train[0].label)

# %% [markdown]
# `num_classes={"verb": V, "noun": N}` gives the two-head model (the noun from the spatial
# feature, the verb from the temporal one), returning a dict of logits. Labels, mixup and
# the loss follow the dict. Given `validation=`, `fit_with_recipe` also logs the
# validation action accuracy (`val_action_top1`, which then picks the best checkpoint);
# here it trains without, and `evaluate_multiview` reports verb, noun and action after
# training. The EK100 recipe samples uniformly.

# %%
ek_classes = {"verb": len(verbs), "noun": len(nouns)}
ek_model = build_model(ek_classes)
print("outputs:", {head: tuple(out.shape) for head, out in ek_model.output.items()})
ek_common = dict(common, sampling="uniform")
ek_train_set = VideoDataset(
    ek_train,
    BATCH_SIZE,
    mode="train",
    horizontal_flip=False,
    mixup=Mixup(ek_classes, prob=0.9),
    **ek_common,
)
ek_history = fit_with_recipe(
    ek_model, ek_train_set, recipe, datasets=[ek_train_set], verbose=0
)
print("training loss per epoch:", [round(v, 3) for v in ek_history.history["loss"]])

# %%
from keras_ca2st.training import ActionAccuracy

ek_test = VideoDataset(ek_val, BATCH_SIZE, mode="val", **ek_common)
ek_result = evaluate_multiview(ek_model, ek_test)
print(ek_result.metrics)
print(ek_result.per_video()[0])
# The same action accuracy as a Keras metric (verb and noun both right):
metric = ActionAccuracy()
metric.update_state(ek_result.labels, ek_result.probabilities)
print("ActionAccuracy:", float(metric.result()))

# %% [markdown]
# On the command line the heads come from `--num-classes verb=97,noun=300` (or the `ek100`
# recipe):
#
# ```bash
# ca2st train --preset cast_base --dataset ek100 --num-classes verb=97,noun=300 \
#     --train-annotations ek100/train.csv --val-annotations ek100/val.csv \
#     --data-root ek100/clips --output-dir runs/ek100
# ca2st evaluate --model runs/ek100 --annotations ek100/val.csv --views 2x3
# ```
#
# ## Read next
#
# - **03 Pretrained weights and presets** — start from pretrained CLIP / VideoMAE / AST
#   experts or the authors' CAST checkpoints instead of random ones.
# - **05 Data-parallel and multi-host training** — the same `fit_with_recipe` on several
#   GPUs or hosts.
# - **07 Audio-visual models** — CAVA, CA²ST and LAVISH side by side, and what each
#   attends to.
