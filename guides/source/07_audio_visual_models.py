# %% [markdown]
# # Audio-visual models: CAVA, CA²ST and LAVISH
#
# This guide puts the three audio-visual models of the package side by side on the same
# synthetic clips: **CAVA** (CLIP + AST), **CA²ST** (CLIP + VideoMAE + AST) and
# **LAVISH** (one shared ViT for the frames and the spectrogram). It builds tiny versions
# of each, trains and compares them, shows what the data pipeline does with a video that
# has no audio track, and draws what each model attends to (attention maps).
#
# **What you need:** Python 3.11+, one Keras backend and the demo extra
# (`pip install -c .ci/constraints.txt -e ".[torch,demo]"`; `jax` or `tensorflow` instead
# of `torch` work the same), a CPU, and about a minute. Nothing is downloaded: the clips
# are written here and the tiny experts train from scratch.

# %%
import os

# Tiny-model settings, before Keras is imported; leave them out for real training.
# One CPU thread: models this small gain nothing from more, and on a busy machine
# thread pools waiting for each other slow them down several times.
os.environ.setdefault("OMP_NUM_THREADS", "1")  # torch
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# On JAX, tiny CPU runs spend most of their time compiling: cheaper XLA settings.
if os.environ.get("KERAS_BACKEND") == "jax":
    os.environ.setdefault(
        "XLA_FLAGS",
        "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
        "--xla_cpu_use_fusion_emitters=false "
        "--xla_cpu_multi_thread_eigen=false",
    )

import keras
import numpy as np
from IPython.display import Image, Markdown, display

import keras_ca2st

BACKEND = keras.config.backend()
print("keras_ca2st", keras_ca2st.__version__, "on Keras", keras.__version__, BACKEND)

# %%
# ── Settings ──────────────────────────────────────────────────────────────────
# tiny (a CPU, about a minute)   # the full demo (`ca2st demo`) / the ViT-B presets
NUM_TRAIN = 16  #                  256 clips / your training set
NUM_VAL = 8  #                     48 clips / your validation set
EPOCHS = 3  #                      80 / 30-50 fine-tuning pretrained experts
BATCH_SIZE = 16  #                 16 / 48 on GPUs
LEARNING_RATE = 3e-3  #            3e-3 / 5e-4 per 256 clips (`Recipe`)
WIDTH = 16  #                      32 / 768 (ViT-B)
LAYERS = 1  #                      2 / 12
HEADS = 2  #                       2 / 12
NUM_FRAMES = 8  #                  8 / 16 (8 CLIP frames, 8 VideoMAE tubelets)
IMAGE_SIZE = 32  #                 32 / 224
AUDIO_FRAMES = 128  #              128 (1.28 s) / 1024 (10.24 s)

# %% [markdown]
# ## 1. Three ways to hear and see
#
# | model | experts | how audio and video meet |
# |---|---|---|
# | CAVA | CLIP (space) + AST (audio) | B-CA with *global* windows: every audio patch attends to every visual token and back, told by the tokens' `[start, end]` times which audio goes with which frame |
# | CA²ST | CLIP + VideoMAE (time) + AST | CAST's T2S / S2T exchange between the two video experts, plus CAVA's audio ↔ visual exchange with both of them |
# | LAVISH | one ViT for both | the frames and the spectrogram (as an image) run through the *same* frozen ViT; small latent-token adapters let each modality read the other |
#
# The B-CA windows of CA²ST, drawn from the window definitions the model runs
# (`keras_ca2st.kernels.windows`): the red token queries, the blue tokens are its keys.

# %%
from keras_ca2st.reports.window_plots import plot_exchange_windows

Image(plot_exchange_windows(num_frames=4, grid=(4, 4), path="windows.png"))

# %% [markdown]
# ## 2. The synthetic clips
#
# `make_synthetic_dataset` writes real H.264 + AAC mp4 files: a red square or a blue disc
# moving left or right while a low or high tone plays. The label combines the three cues
# (8 classes), so appearance, motion and sound are all needed to get every clip right.

# %%
from keras_ca2st.data import make_synthetic_dataset, read_csv_annotations

data = make_synthetic_dataset("data", num_train=NUM_TRAIN, num_val=NUM_VAL, seed=0)
train_records = read_csv_annotations(data.train_annotations, data.root)
val_records = read_csv_annotations(data.val_annotations, data.root)
print(len(train_records), "training clips,", len(val_records), "validation clips")
print("classes:", data.class_names)

# %% [markdown]
# ## 3. Tiny versions of the three models
#
# The same classes as the ViT-B presets (`CAVA.from_preset("cava_base")`,
# `CA2ST.from_preset("ca2st_base")`, `LAVISH.from_preset("lavish_clip_base")`), built
# small. A `CA2STBackbone` takes the experts and the `pairs` that exchange; each pair's
# windows default to what the papers use (T2S / S2T between the video experts, global
# for audio). `train_experts=True` because there are no pretrained weights here — with
# pretrained experts they stay frozen and only the adapters, B-CA and heads train.

# %%
import itertools

from keras_ca2st import (
    LAVISH,
    ASTEncoder,
    CA2STBackbone,
    CLIPVisionEncoder,
    LAVISHBackbone,
    VideoClassifier,
    VideoMAEEncoder,
)

SIZE = dict(
    hidden_dim=WIDTH, num_layers=LAYERS, num_heads=HEADS, intermediate_dim=2 * WIDTH
)
VIDEO = dict(image_size=IMAGE_SIZE, patch_size=8, num_frames=NUM_FRAMES)


def build(name):
    keras.utils.set_random_seed(0)
    if name == "LAVISH":
        # One CLIP for both modalities, every frame (no stride).
        shared = CLIPVisionEncoder(**VIDEO, frame_offset=0, frame_stride=1, **SIZE)
        backbone = LAVISHBackbone(
            encoder=shared,
            audio_frames=AUDIO_FRAMES,
            num_latent_tokens=2,
            reduction=4,
            train_experts=True,
        )
        return LAVISH(backbone, num_classes=8, hidden_units=2 * WIDTH)
    experts = {
        "spatial": CLIPVisionEncoder(**VIDEO, **SIZE),
        "temporal": VideoMAEEncoder(**VIDEO, **SIZE),
        "audio": ASTEncoder(
            num_time_frames=AUDIO_FRAMES, patch_size=16, stride=16, **SIZE
        ),
    }
    if name == "CAVA":
        experts.pop("temporal")
    pairs = [{"experts": list(pair)} for pair in itertools.combinations(experts, 2)]
    backbone = CA2STBackbone(
        experts=experts, pairs=pairs, cross_attention_heads=HEADS, train_experts=True
    )
    return VideoClassifier(backbone, num_classes=8)


def count(weights):
    return int(sum(np.prod(w.shape) for w in weights))


models = {name: build(name) for name in ("CAVA", "CA²ST", "LAVISH")}
for name, model in models.items():
    print(f"{name:7} {count(model.weights):>6,} parameters, inputs {list(model.input)}")

# %% [markdown]
# The clips are decoded once, with the inputs CA²ST asks for (its `clip_spec`: frames,
# crop, the audio window as a Kaldi fbank, and the `[start, end]` times of frames and
# audio); each model then takes the inputs it needs.

# %%
from keras_ca2st.data import VideoDataset


def decode(records, spec):
    """Every clip once: centre clip, centre crop, as one batch of arrays."""
    dataset = VideoDataset(
        records,
        batch_size=len(records),
        mode="val",
        spec=spec,
        frame_stride=4,  # 8 frames 4 apart: 2 s of the 16 fps clips
        num_test_clips=1,
        num_test_crops=1,
        bad_sample_policy="raise",
    )
    inputs, labels = dataset[0]
    return inputs, np.asarray(labels)


spec = models["CA²ST"].backbone.clip_spec
train_x, train_y = decode(train_records, spec)
val_x, val_y = decode(val_records, spec)
print(spec)
print({key: value.shape for key, value in train_x.items()})

# %% [markdown]
# ## 4. Train and compare
#
# Plain `compile` + `fit` (the package's full recipe is `fit_with_recipe`, guide 02).
# These runs are a few steps each, so compiling the step would cost more than it saves:
# TensorFlow runs them eagerly; JAX compiles (its op-by-op mode is slower still).
# For real training leave `compile`'s defaults.

# %%
import time

results = {}
for name, model in models.items():
    keys = list(model.input)
    model.compile(
        optimizer=keras.optimizers.AdamW(LEARNING_RATE, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=BACKEND == "tensorflow",
        jit_compile=BACKEND == "jax",
    )
    began = time.perf_counter()
    history = model.fit(
        {k: train_x[k] for k in keys},
        train_y,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        verbose=0,
    )
    logits = model.predict({k: val_x[k] for k in keys}, batch_size=NUM_VAL, verbose=0)
    predicted = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1)
    results[name] = {
        "params": count(model.weights),
        "trainable": count(model.trainable_weights),
        "loss": float(history.history["loss"][-1]),
        "val_accuracy": float(np.mean(predicted == val_y)),
        "seconds": time.perf_counter() - began,
    }
    print(f"{name:7} trained in {results[name]['seconds']:.1f}s")

# %%
from keras_ca2st.reports.training_plots import results_table

Markdown(
    results_table(
        results,
        {
            "params": "parameters",
            "trainable": "trainable",
            "loss": "last training loss",
            "val_accuracy": "val accuracy",
            "seconds": "train seconds",
        },
    )
)

# %% [markdown]
# Every parameter trains here because the tiny experts learn from scratch (LAVISH's few
# others are its adapters' batch-norm statistics); "train seconds" includes compiling.
# With a handful of clips and epochs the accuracies are near chance (12.5%): the table
# shows that the three models run and train, not how well they can do. The full demo
# (`KERAS_BACKEND=torch ca2st demo`: 256 clips, up to 80 epochs, width 32, 2 blocks, on a
# 2-core CPU) reaches **100%** for CA²ST, which combines all three cues, **52.1%** for
# CAVA, which sees appearance and sound but not the motion (two cues allow 50%), and
# **54.2%** for LAVISH, which sees all three cues but, this small and trained from
# scratch, got no further than what two cues allow.
# With pretrained experts the ViT-B presets train only their small modules:
# `cava_base` has 44.0 M trainable parameters at 309 classes, `ca2st_base` 62.2 M.
#
# ## 5. A video without audio
#
# Audio-visual datasets contain videos whose audio track is missing. `VideoDataset` makes
# that explicit: with `missing_audio="error"` (the default) such a file is a **bad
# sample** — never fed to the model as if it were real audio; with
# `missing_audio="silence"` it is fed silence. Here one clip is rewritten without its
# audio track, with PyAV.

# %%
import av

from keras_ca2st.data import VideoRecord, write_mp4

source = val_records[0].path
with av.open(source) as container:
    print(source, "has streams:", [stream.type for stream in container.streams])
    frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
write_mp4("no_audio.mp4", frames, fps=16)  # frames only: no audio stream
with av.open("no_audio.mp4") as container:
    print("no_audio.mp4 has streams:", [stream.type for stream in container.streams])
silent_clip = [VideoRecord("no_audio.mp4", label=val_records[0].label)]

# %% [markdown]
# With `missing_audio="error"`, `bad_sample_policy="raise"` surfaces the error itself;
# the default policies keep the run going and report the file instead: in training the
# next clip is used in its place, in evaluation the sample gets weight 0 (left out of
# weighted metrics) and is listed in `bad_samples` (`BadSampleReport` prints that list at
# the end of each epoch).

# %%
from keras_ca2st.data import AudioDecodeError


def clip_dataset(**options):
    return VideoDataset(
        silent_clip, batch_size=1, mode="val", spec=spec, frame_stride=4, **options
    )


try:
    clip_dataset(missing_audio="error", bad_sample_policy="raise")[0]
except AudioDecodeError as error:
    print("AudioDecodeError:", error)

evaluation = clip_dataset(missing_audio="error")  # evaluation's default policy: "zero"
inputs, labels, weights = evaluation[0]
print("\nsample weight:", weights, "| bad samples:", evaluation.bad_samples)

# %% [markdown]
# With `missing_audio="silence"` the clip decodes: its audio input is the fbank of
# silence, one constant value, and the model predicts from the frames and that silence.

# %%
silent_inputs = clip_dataset(missing_audio="silence")[0][0]  # inputs, labels, weights
audio = silent_inputs["audio"]
print("audio input", audio.shape, "min", audio.min(), "max", audio.max())
print("with sound:", val_x["audio"][0].min(), "to", val_x["audio"][0].max())
ca2st = models["CA²ST"]
logits = ca2st.predict(silent_inputs, verbose=0)
print("CA²ST on the silent clip predicts", data.class_names[int(np.argmax(logits))])

# %% [markdown]
# `ca2st predict` does the same: it reports a video without audio, and predicts with
# silence when given `--missing-audio silence`.
#
# ## 6. What each model attends to
#
# `attention_maps(model, inputs)` runs the model once on a clip and returns every B-CA
# direction of every exchange block (for LAVISH: every adapter's latent-token attention),
# each as weights `(batch, windows, heads, queries, keys)` whose rows sum to 1. Recording
# takes the plain `keras.ops` attention path, which materialises the weights; the outputs
# are the model's own. Names read *source_to_target*: `temporal_to_spatial` is T2S
# (CLIP queries, VideoMAE keys).

# %%
from keras_ca2st.models.attention_maps import attention_maps

clip = {key: value[:1] for key, value in val_x.items()}
maps = attention_maps(ca2st, clip)
for amap in maps:
    print(
        f"block {amap.block} {amap.name:20} window {amap.window!r:8} "
        f"weights {amap.weights.shape}"
    )
print("class:", data.class_names[val_y[0]])

# %% [markdown]
# **S2T** (window = space): each VideoMAE token attends to the CLIP patches of its own
# frame. `video_key_heat` averages what each CLIP patch *received* over heads and queries,
# one heat map per frame; `plot_frame_attention` lays it over the frames.

# %%
from keras_ca2st.reports.attention_plots import (
    explain_figures,
    plot_audio_attention,
    plot_frame_attention,
    plot_time_strip,
    received_attention,
    video_key_heat,
)

frames = clip["video"][0] * np.asarray(spec.std) + np.asarray(spec.mean)  # undo norm
s2t = maps.select("spatial_to_temporal")
plot_frame_attention(
    frames,
    video_key_heat(s2t),
    path="s2t.png",
    title="CA²ST S2T: what CLIP patches received",
)
Image("s2t.png")

# %% [markdown]
# **T2S** (window = time): each CLIP patch attends to the VideoMAE tokens at its position
# in every time step — one row per patch position, one column per key time step.
# **Audio → visual** (window = global): every CLIP token attends to every spectrogram
# patch; the lower panel shows what each audio patch received (a tone is a horizontal
# band).

# %%
plot_time_strip(maps.select("temporal_to_spatial"), path="t2s.png", title="CA²ST T2S")
a2s = maps.select("audio_to_spatial")
audio_heat = received_attention(a2s)[0].reshape(a2s[0].key_grid)
plot_audio_attention(
    clip["audio"][0], audio_heat, path="audio.png", title="CA²ST audio → spatial"
)
display(Image("t2s.png"), Image("audio.png"))

# %% [markdown]
# **LAVISH** has no windows: in every block, each modality's adapter has a few latent
# tokens that first read the *other* modality (`latents_from_other`), then its own tokens
# read the latents (`tokens_from_latents`); one head, one window per frame (audio
# segment). `explain_figures` writes every picture that applies to a clip's maps — here
# the audio adapters' latents reading the frames.

# %%
lavish = models["LAVISH"]
lavish_clip = {key: clip[key] for key in lavish.input}
lavish_maps = attention_maps(lavish, lavish_clip)
print(lavish_maps.names)
written = explain_figures(
    lavish_maps, lavish_clip, lavish.backbone.clip_spec, "explain_lavish", stem="lavish"
)
print(written)
display(*(Image(path) for path in written.values()))

# %% [markdown]
# These maps come from models trained for a few steps, so they show where to look, not
# what a trained model finds: on the full demo's CA²ST the S2T mass on the moving object
# is 22.2% while the object covers 9.2% of the frame (README, "Attention maps").
# `ca2st predict --explain DIR clip.mp4` writes the same pictures for any saved model.
#
# **Read next:** [02 Fine-tune on your own videos](02_fine_tune_your_videos.ipynb) to
# train these models on real clips with the full recipe,
# [03 Pretrained weights and presets](03_pretrained_weights_and_presets.ipynb) for the
# pretrained CLIP / VideoMAE / AST experts behind `cava_base`, `ca2st_base` and
# `lavish_clip_base`, and [06 The fused kernels](06_fused_kernels.ipynb) for the T2S / S2T
# kernels that run these windows on a GPU.
