# %% [markdown]
# # Getting started with keras_ca2st
#
# This guide installs the package, trains tiny models of the demo through the Python API,
# classifies a video file with `ca2st predict`, and shows what the three experts and the
# bottleneck cross-attention (B-CA) between them exchange.
#
# **What you need:** Python 3.11+, one Keras backend and the demo extra
# (`pip install -c .ci/constraints.txt -e ".[torch,demo]"` from a checkout; `jax` or
# `tensorflow` instead of `torch` work the same), a CPU, and about a minute. Nothing is
# downloaded: the demo writes its own videos and its tiny experts train from scratch.
#
# ## The idea in one paragraph
#
# A video is recognised holistically when *what* is seen, *how it moves* and *what it
# sounds like* are combined. CA²ST keeps three frozen pretrained experts — CLIP ViT-B/16
# for space (appearance, frame by frame), VideoMAE ViT-B for time (motion, over tubelets)
# and AST for audio (the spectrogram) — and, in every block, lets them exchange information
# through small **bottleneck cross-attention** modules. Only those modules, the adapters and
# the head train (about a tenth of the parameters).

# %%
# ── Settings ──────────────────────────────────────────────────────────────────
# tiny (a CPU, about a minute)         # the full demo (`ca2st demo`, ~12 min on 2 cores)
NUM_TRAIN = 16  #                        256 clips
NUM_VAL = 8  #                           48 clips
EPOCHS = 3  #                            80 (stops early once training is perfect)
MODELS = ["CA²ST"]  #                    all seven (leave out `models=` below)
# With pretrained experts on a GPU, you would fine-tune a preset instead
# (`CA2ST.from_preset("ca2st_base", num_classes=...)`); see guides 02 and 03.

# %%
import json
import os

import keras
from IPython.display import Image, Markdown

import keras_ca2st

print(
    "keras_ca2st",
    keras_ca2st.__version__,
    "on Keras",
    keras.__version__,
    "with the",
    keras.config.backend(),
    "backend",
)

# %% [markdown]
# ## 1. The demo through the Python API
#
# `ca2st demo` writes a synthetic audio-visual set — each clip shows a red square or a blue
# disc moving left or right while a low or high tone plays — and trains tiny models of each
# kind on it. The label is the combination of the three cues (8 classes), so a model that
# sees one cue can reach 25% and two cues 50%; only a model that combines appearance,
# motion *and* sound can get every clip right. `run_demo` is the same thing as a function.

# %%
from keras_ca2st.cli.demo import format_table, run_demo

results = run_demo(
    "demo",
    num_train=NUM_TRAIN,
    num_val=NUM_VAL,
    epochs=EPOCHS,
    validate_every=1,
    models=MODELS,
    print_fn=lambda line: None,  # keep the notebook short; the table follows
)
Markdown(format_table(results))

# %% [markdown]
# With these tiny settings CA²ST has barely started to learn. The full demo trains all
# seven kinds; on a 2-core CPU (`KERAS_BACKEND=torch ca2st demo`, 12 min) it measured:
#
# | model | cues it can see | val accuracy |
# |---|---|---|
# | CA²ST | all three | 100% (stopped after 59 epochs) |
# | CAST | appearance + motion | 50.0% |
# | CAVA | appearance + sound | 52.1% |
# | LAVISH | all three | 54.2% |
# | temporal only | appearance + motion | 54.2% |
# | spatial only, audio only | one cue each | 25.0% |
#
# A model that sees one cue stays at 25%, two cues at about 50%; CA²ST, whose three
# experts exchange through B-CA, combines all of them. LAVISH hears the sound too, but its
# one CLIP expert sees frames one by one and did not pick up the motion here.
#
# `run_demo` also wrote `demo/demo.png`: validation accuracy per epoch for every model, and
# CA²ST's confusion matrix (drawn with `keras_ca2st.reports.training_plots`).

# %%
Image("demo/demo.png")

# %% [markdown]
# ## 2. Classify a video file
#
# Every trained demo model was saved as a *run directory* (`model.keras` + `run.json`, with
# the class names and how clips are sampled). From a terminal:
#
# ```bash
# ca2st predict --model demo/runs/ca2st --top-k 3 demo/data/videos/val_00000.mp4
# ```
#
# decodes each video's clips — with the audio window when the model has an audio expert —
# averages the softmax over the clips and crops, and prints the top classes
# (`--explain DIR` adds attention-map pictures, `--timeline` scores a long video window by
# window). In Python the same steps are: load the model (`keras.saving.load_model` reads
# the `.keras` file in safe mode, so loading never runs code from the file), describe the
# video as a `VideoRecord`, let a test-mode `VideoDataset` make the views the model's clip
# spec asks for, and average them with `evaluate_multiview`.

# %%
from keras_ca2st.data import VideoDataset, VideoRecord
from keras_ca2st.training import evaluate_multiview

run_dir = results["CA²ST"]["run_dir"]
model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
with open(os.path.join(run_dir, "run.json")) as handle:
    run_info = json.load(handle)
class_names = run_info["class_names"]
print("the model takes", {k: tuple(v.shape) for k, v in model.input.items()})
print(model.backbone.clip_spec)

# %%
video = VideoRecord(os.path.join("demo", "data", "videos", "val_00000.mp4"), label=0)
views = VideoDataset(
    [video],
    batch_size=2,
    mode="test",
    spec=model.backbone.clip_spec,  # what the model needs: frames, crop, audio
    frame_stride=run_info["data"]["frame_stride"],
    num_test_clips=2,  # 2 clips × 1 crop = 2 views, averaged
    num_test_crops=1,
)
result = evaluate_multiview(model, views)
probabilities = result.probabilities[0]
for rank, index in enumerate(probabilities.argsort()[::-1][:3], 1):
    print(f"{rank}. {probabilities[index]:.4f}  {class_names[index]}")

# %% [markdown]
# ## 3. What the experts exchange
#
# CLIP sees each frame as a grid of patch tokens; VideoMAE sees the clip as tubelets on the
# same grid (8 time steps × 14 × 14 patches at full size); AST sees the spectrogram as a
# grid of patches. In every exchange block, B-CA lets each stream attend to another through
# a bottleneck (project down, attend, project up) — in **windows** that keep the cost low:
#
# - **T2S** (temporal → spatial, window = *time*): a CLIP patch attends to the VideoMAE
#   tokens at the same position in every frame — motion informs appearance;
# - **S2T** (spatial → temporal, window = *space*): a VideoMAE token attends to the CLIP
#   patches of its own frame — appearance informs motion;
# - **audio ↔ visual** (window = *global*): an audio patch attends to every visual token of
#   the clip, and each visual token to every audio patch; a small MLP of the tokens'
#   `[start, end]` times tells the attention which audio goes with which frame.
#
# The picture is drawn from the same window definitions the model runs
# (`keras_ca2st.kernels.windows`): the red token queries, the blue tokens are its keys.

# %%
from keras_ca2st.reports.window_plots import plot_exchange_windows

plot_exchange_windows(num_frames=8, grid=(4, 4), query=(3, 1, 2), path="windows.png")
Image("windows.png")

# %% [markdown]
# The model's own structure says the same: three experts, and B-CA between each pair. (The
# demo's tiny experts train from scratch, since no pretrained weights are at hand; a preset
# keeps its pretrained experts frozen and trains the exchange modules, adapters and head.)

# %%
backbone = model.backbone
trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
total = sum(int(keras.ops.size(w)) for w in model.weights)
print("experts:", {name: type(e).__name__ for name, e in backbone.experts.items()})
print("expert pairs joined by B-CA:", [p["experts"] for p in backbone.pairs])
print(f"parameters: {total:,} in all, {trainable:,} trainable")

# %% [markdown]
# ## Read next
#
# - **02 Fine-tune on your own videos** — your mp4s and a CSV, the training recipe,
#   checkpoints, multi-view evaluation.
# - **03 Pretrained weights and presets** — the ViT-B experts and the authors' checkpoints.
# - **07 Audio-visual models** — CAVA, CA²ST and LAVISH side by side, and attention maps:
#   what each model looks at (`ca2st predict --explain`).
