# %% [markdown]
# # Pretrained weights and presets
#
# This guide covers where a model's weights come from: the registered presets and
# `from_preset`, the Hugging Face checkpoints behind them, converting CLIP, VideoMAE and
# AST from local files (and checking the converted experts against the Hugging Face
# models), the authors' fine-tuned CAST checkpoints, `save_to_preset` and loading a preset
# directory back (in keras-hub too), and the cache of converted weights with its sha256
# check.
#
# **What you need:** the package with one Keras backend plus `torch` and `transformers`
# (`pip install -c .ci/constraints.txt -e ".[torch,demo]" transformers`), a CPU and about
# a minute. **No network:** the Hugging Face models here are tiny random ones built with
# `transformers` and saved to local folders, and the Hub is switched off
# (`HF_HUB_OFFLINE=1`). With the real checkpoints (or a connection) every step is the same
# at full size.

# %%
# ── Settings ──────────────────────────────────────────────────────────────────
# tiny (random Hugging Face models)  # full size (the real checkpoints, ViT-B/16)
WIDTH, DEPTH, HEADS = 32, 2, 2  #      768, 12, 12
MLP = 64  #                            3072
IMAGE, PATCH = 32, 16  #               224, 16
FRAMES = 4  #                          16
MEL_BINS, AUDIO_FRAMES = 32, 86  #     128, 1024 (10.24 s of audio)
NUM_CLASSES = 5  #                     your classes, e.g. 309 (VGG-Sound)
VERBS, NOUNS = 3, 4  #                 97, 300 (EPIC-KITCHENS-100)

# %%
import json
import os

# transformers, and the torch it runs on, before Keras: TensorFlow, jaxlib and Triton
# (which transformers loads through torch) each bundle LLVM, and Triton's must load
# first, else the process aborts under the jax and tensorflow backends.
import torch
from transformers import (
    ASTConfig,
    ASTForAudioClassification,
    CLIPVisionConfig,
    CLIPVisionModel,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
)

# Where converted presets are cached (default ~/.cache/keras_ca2st), and an empty,
# offline Hugging Face cache: nothing below can download anything.
os.environ["KERAS_CA2ST_CACHE"] = os.path.abspath("ca2st_cache")
os.environ["HF_HOME"] = os.path.abspath("hf_home")
os.environ["HF_HUB_OFFLINE"] = "1"

import keras
import numpy as np
from IPython.display import Image, Markdown

import keras_ca2st
from keras_ca2st.cli.main import main as ca2st  # the `ca2st` command, in this process

print(f"keras_ca2st {keras_ca2st.__version__}, backend {keras.config.backend()}")
if keras.config.backend() == "jax":
    # JAX compiles each new model's forward pass. With a compilation cache, the models
    # of the same architecture loaded below reuse the compiled program.
    import jax

    jax.config.update("jax_compilation_cache_dir", "jax_cache")

# %% [markdown]
# ## 1. The presets and where their weights come from
#
# `ca2st presets` lists the registered presets and whether their converted weights are in
# the cache. The expert presets (`cast_base`, `cava_base`, `ca2st_base`, `lavish_*`) name
# a Hugging Face checkpoint per expert; the fine-tuned ones (`cast_base_k400`, ...) hold
# the authors' whole trained CAST models.

# %%
exit_code = ca2st(["presets"])

# %%
from keras_ca2st.presets import available_presets, load_preset_spec

rows = [
    "| preset | expert | Hugging Face checkpoint | original release |",
    "|---|---|---|---|",
]
for name in available_presets():
    for expert, source in load_preset_spec(name)["weights"]["sources"].items():
        official = source.get("official", {}).get("file") or source.get("url", "")
        hub_id = source.get("repo_id", "— (convert the release)")
        rows.append(f"| `{name}` | {expert} | `{hub_id}` | {official} |")
Markdown("\n".join(rows))

# %% [markdown]
# `CA2ST.from_preset("ca2st_base", num_classes=309)` fetches the three checkpoints through
# `huggingface_hub` (so `HF_HOME`, the Hugging Face cache and `HF_HUB_OFFLINE` apply),
# converts them once, records the sha256 of every converted file and caches the result;
# later calls load the cache after checking the hashes. `load_weights=False` builds the
# same architecture with random weights and reads nothing. (`ca2st info ca2st_base` does
# that for the full ViT-B model, 320 M parameters with 309 classes, 62 M of them trainable:
# it takes a while on a CPU.)
#
# To stay small, this guide registers a preset of its own: `ca2st_base`'s spec — the same
# experts, exchanges and preprocessing — with tiny experts, and Hugging Face sources
# that exist nowhere (`my-org/...`).

# %%
from keras_ca2st.presets import register_preset

spec = load_preset_spec("ca2st_base")
size = dict(hidden_dim=WIDTH, num_layers=DEPTH, num_heads=HEADS, intermediate_dim=MLP)
experts = spec["backbone"]["experts"]
experts["spatial"]["config"].update(size, image_size=IMAGE, num_frames=FRAMES)
experts["temporal"]["config"].update(size, image_size=IMAGE, num_frames=FRAMES)
experts["audio"]["config"].update(
    size,
    num_time_frames=AUDIO_FRAMES,
    frequency_bins=MEL_BINS,
    position_grid=[(MEL_BINS - 16) // 10 + 1, (AUDIO_FRAMES - 16) // 10 + 1],
)
for pair in spec["backbone"]["pairs"][1:]:  # audio ↔ visual in the last block only
    pair["layers"] = [DEPTH - 1]
spec["backbone"]["cross_attention_heads"] = HEADS
for expert, repo in (("spatial", "clip"), ("temporal", "videomae"), ("audio", "ast")):
    spec["weights"]["sources"][expert].update(repo_id=f"my-org/tiny-{repo}")
spec["description"] = "ca2st_base with tiny experts (this guide)"
register_preset("ca2st_tiny", spec, overwrite=True)

model = keras_ca2st.CA2ST.from_preset(
    "ca2st_tiny", num_classes=NUM_CLASSES, load_weights=False
)
trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
print(f"{model.count_params():,} parameters, {trainable:,} trainable")
print("inputs:", model.backbone.input_shapes())

# %% [markdown]
# With `load_weights=True` (the default) and nothing cached, `from_preset` looks for the
# sources in the Hugging Face cache. Offline and without them, it says which files it
# needs and which command builds the preset from local ones:

# %%
from keras_ca2st.presets import PresetWeightsUnavailableError

try:
    keras_ca2st.CA2ST.from_preset("ca2st_tiny", num_classes=NUM_CLASSES)
except PresetWeightsUnavailableError as error:
    print(error)

# %% [markdown]
# ## 2. Local checkpoints
#
# Say you downloaded the checkpoints yourself (a `save_pretrained` folder, a
# `.safetensors` / `.bin` / `.pth` file, or an original release). Here `transformers`
# builds tiny random models of the three kinds the presets use and saves them:
# `CLIPVisionModel` (space), `VideoMAEForVideoClassification` (time; the presets take
# VideoMAE fine-tuned on Kinetics-400) and `ASTForAudioClassification` (audio).

# %%
import transformers

transformers.logging.disable_progress_bar()  # no "Writing model shards" bars
torch.manual_seed(0)
hf_size = dict(
    hidden_size=WIDTH,
    num_hidden_layers=DEPTH,
    num_attention_heads=HEADS,
    intermediate_size=MLP,
)
hf_models = {
    "clip": CLIPVisionModel(
        CLIPVisionConfig(image_size=IMAGE, patch_size=PATCH, **hf_size)
    ),
    "videomae": VideoMAEForVideoClassification(
        VideoMAEConfig(
            image_size=IMAGE,
            patch_size=PATCH,
            num_frames=FRAMES,
            tubelet_size=2,
            use_mean_pooling=True,
            layer_norm_eps=1e-6,  # as the original VideoMAE (the preset's epsilon)
            num_labels=400,
            **hf_size,
        )
    ),
    "ast": ASTForAudioClassification(
        ASTConfig(
            num_mel_bins=MEL_BINS,
            max_length=AUDIO_FRAMES,
            layer_norm_eps=1e-6,
            num_labels=527,
            **hf_size,
        )
    ),
}
for name, hf_model in hf_models.items():
    hf_model.eval().save_pretrained(f"checkpoints/{name}")
    print(f"checkpoints/{name}:", sorted(os.listdir(f"checkpoints/{name}")))

# %% [markdown]
# ## 3. Converting one expert
#
# `convert_clip`, `convert_videomae` and `convert_ast` read a checkpoint file or folder
# (safetensors, or `torch.load(weights_only=True)`: no code from the file runs) in the
# Hugging Face or the original layout and return the expert, built to fit it. Each expert
# returns its tokens (`hidden_states`) and its feature (`pooled`); against the Hugging Face
# models on the same input:

# %%
from keras_ca2st.conversion import convert_ast, convert_clip, convert_videomae
from keras_ca2st.reports.training_plots import results_table

rng = np.random.default_rng(0)
video = rng.standard_normal((2, FRAMES, IMAGE, IMAGE, 3)).astype("float32")
audio = rng.standard_normal((2, AUDIO_FRAMES, MEL_BINS)).astype("float32")
# transformers takes channels-first frames: (batch, frames, 3, height, width).
pixels = torch.from_numpy(np.ascontiguousarray(video.transpose(0, 1, 4, 2, 3)))


def max_abs(ours, theirs):
    ours = keras.ops.convert_to_numpy(ours)
    return float(np.abs(ours - theirs.detach().numpy()).max())


errors = {}
with torch.no_grad():
    # CLIP on one frame: its tokens and the normalised CLS token (pooler_output).
    clip = convert_clip(
        "checkpoints/clip", num_frames=1, frame_offset=0, frame_stride=1
    )
    ours = clip(video[:, :1])
    theirs = hf_models["clip"](pixel_values=pixels[:, 0])
    errors["CLIP"] = {
        "tokens": max_abs(ours["hidden_states"], theirs.last_hidden_state),
        "feature": max_abs(ours["pooled"], theirs.pooler_output),
    }
    # VideoMAE: the tokens of the last block and the mean-pooled, normalised feature.
    videomae = convert_videomae("checkpoints/videomae")
    ours = videomae(video)
    hf = hf_models["videomae"]
    tokens = hf.videomae(pixel_values=pixels).last_hidden_state
    errors["VideoMAE"] = {
        "tokens": max_abs(ours["hidden_states"], tokens),
        "feature": max_abs(ours["pooled"], hf.fc_norm(tokens.mean(1))),
    }
    # AST: the normalised tokens and the mean of its two class tokens.
    ast = convert_ast("checkpoints/ast")
    ours = ast(audio)
    theirs = hf_models["ast"].audio_spectrogram_transformer(torch.from_numpy(audio))
    errors["AST"] = {
        "tokens": max_abs(
            ast.layernorm(ours["hidden_states"]), theirs.last_hidden_state
        ),
        "feature": max_abs(ours["pooled"], theirs.pooler_output),
    }
for name, expert in (("CLIP", clip), ("VideoMAE", videomae), ("AST", ast)):
    print(
        f"{name}: {type(expert).__name__}, {expert.num_layers} blocks of width "
        f"{expert.hidden_dim}, {expert.activation}, epsilon {expert.layer_norm_epsilon}"
    )
Markdown(
    results_table(
        errors,
        {
            "tokens": "max abs. difference, tokens",
            "feature": "max abs. difference, feature",
        },
    )
)

# %% [markdown]
# The tokens agree to float32 rounding (exactly, where both sides run the same torch
# kernels). VideoMAE's feature differs by about 1e-5 on these tiny random weights:
# transformers builds the classifier's `fc_norm` with PyTorch's default epsilon (1e-5),
# the converted expert with the checkpoint's `layer_norm_eps` (here 1e-6, as the original
# VideoMAE); the gap shrinks as the features' variance grows.
#
# ## 4. A preset from local files
#
# `ca2st convert preset NAME --spatial SRC --temporal SRC --audio SRC` converts a preset's
# experts from local files (any of the layouts above; an expert left out comes from its
# Hugging Face source) into the cache, where `from_preset(NAME)` finds it. For the real
# thing:
#
# ```bash
# ca2st convert preset ca2st_base --spatial clip-vit-base-patch16/ \
#     --temporal videomae_k400.pth --audio audioset_10_10_0.4593.pth
# ```
#
# Here, for the tiny preset (registered in this process, so the command runs in it too):

# %%
ca2st(
    [
        "convert",
        "preset",
        "ca2st_tiny",
        "--spatial",
        "checkpoints/clip",
        "--temporal",
        "checkpoints/videomae",
        "--audio",
        "checkpoints/ast",
    ]
)
model = keras_ca2st.CA2ST.from_preset("ca2st_tiny", num_classes=NUM_CLASSES)
print(type(model).__name__, "with experts", model.backbone.expert_names)

# %% [markdown]
# A freshly built CA²ST starts as its experts: the adapters and the B-CA modules add
# nothing until they train (their up-projections start at zero), so the backbone's
# features are the Hugging Face models' own — CLIP's averaged over the frames it sees
# (every second one, as in CAST), VideoMAE's and AST's:

# %%
inputs = {"video": video, "audio": audio}
features = model.backbone.predict(inputs, verbose=0)  # dict: one feature per expert
with torch.no_grad():
    frames = pixels[:, 1::2].reshape(-1, 3, IMAGE, IMAGE)  # CLIP sees frames 1, 3, ...
    cls = hf_models["clip"](pixel_values=frames).last_hidden_state[:, 0]
    spatial = hf_models["clip"].post_layernorm(cls.reshape(2, -1, WIDTH).mean(1))
    tokens = hf_models["videomae"].videomae(pixel_values=pixels).last_hidden_state
    temporal = hf_models["videomae"].fc_norm(tokens.mean(1))
    sound = hf_models["ast"].audio_spectrogram_transformer(torch.from_numpy(audio))
    expected = {"spatial": spatial, "temporal": temporal, "audio": sound.pooler_output}
for name, value in expected.items():
    print(f"{name:>8} feature: max |difference| {max_abs(features[name], value):.1e}")

# %% [markdown]
# So the checkpoints supply the experts, and fine-tuning trains what is new — the
# adapters, the B-CA modules, the time-interval MLPs and the heads — plus the experts'
# last norms. At full size (`ca2st_base`, 309 classes) that is 62 M trainable parameters
# beside three ViT-B experts of about 86 M each; for the tiny preset:

# %%
from keras_ca2st.reports.training_plots import plot_bars


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


labels = {
    "spatial": "CLIP\n(space)",
    "temporal": "VideoMAE\n(time)",
    "audio": "AST\n(audio)",
}
parts = {
    labels[name]: count(expert.weights)
    for name, expert in model.backbone.experts.items()
}
parts["new\n(adapters, B-CA,\nheads)"] = model.count_params() - sum(parts.values())
plot_bars(
    parts,
    "parameters",
    "parameters.png",
    title="ca2st_tiny: converted experts and the parts fine-tuning adds",
)
Image("parameters.png")

# %% [markdown]
# ## 5. The cache and its sha256 check
#
# A converted preset is a keras-hub preset directory plus `ca2st_manifest.json`: the
# sha256 of every file, the architecture it was built for and where the weights came from.
# It is written to a temporary folder and moved into place, so a reader never sees half a
# preset; `from_preset` hashes the files again before it uses them.

# %%
from keras_ca2st.presets import cached_preset_dir, preset_status

directory = cached_preset_dir("ca2st_tiny")
print(os.path.relpath(directory), sorted(os.listdir(directory)))
with open(os.path.join(directory, "ca2st_manifest.json")) as handle:
    manifest = json.load(handle)
print(json.dumps(manifest["files"], indent=1))
print({k: os.path.relpath(v["path"]) for k, v in manifest["sources"].items()})
print("status:", preset_status("ca2st_tiny"))

# %% [markdown]
# A damaged file (a disk error, a copy cut short) no longer matches its hash. `from_preset`
# then rebuilds the preset from its sources; offline and without them it stops with one
# error that says what is wrong and how to fix it:

# %%
weights = os.path.join(directory, "model.weights.h5")
with open(weights, "r+b") as handle:
    handle.seek(os.path.getsize(weights) // 2)
    handle.write(b"\x00damaged\x00")
try:
    keras_ca2st.CA2ST.from_preset("ca2st_tiny", num_classes=NUM_CLASSES)
except PresetWeightsUnavailableError as error:
    print(str(error).replace(os.getcwd() + os.sep, ""))

# %% [markdown]
# Running `ca2st convert preset ...` again (or reconnecting, so that the sources can be
# fetched) replaces the damaged entry.
#
# ## 6. `save_to_preset` and keras-hub
#
# Any model — say, one you fine-tuned — saves as a keras-hub preset directory
# (`config.json` and `model.weights.h5` for the backbone, `task.json` and
# `task.weights.h5` for the heads). `from_preset` takes the directory as it takes a name,
# and keras-hub's own loader reads it too:

# %%
import keras_hub

model.save_to_preset("my_ca2st")
print(sorted(os.listdir("my_ca2st")))


def same_weights(a, b):
    return all(
        np.array_equal(x, y)
        for x, y in zip(a.get_weights(), b.get_weights(), strict=True)
    )


loaded = keras_ca2st.CA2ST.from_preset("my_ca2st")
print(f"{type(loaded).__name__}, {loaded.num_classes} classes,", end=" ")
print("same weights:", same_weights(model, loaded))
backbone = keras_hub.models.Backbone.from_preset("my_ca2st")
print(f"keras_hub.models.Backbone.from_preset: {type(backbone).__name__},", end=" ")
print("same weights:", same_weights(model.backbone, backbone))

# %% [markdown]
# ## 7. The authors' CAST checkpoints
#
# The CAST authors released fine-tuned models (Kinetics-400, Something-Something-V2,
# EPIC-KITCHENS-100) as PyTorch checkpoints of their `STCrossTransformer`: the CLIP
# weights as `clip_*`, VideoMAE's as `blocks.i.attn.*` / `patch_embed`, the adapters as
# `blocks.i.S_Adapter.*`, ..., the B-CA modules as `blocks.i.t2s_cross.*` /
# `s2t_cross.*` and the heads (`head`, or `head_verb` and `head_noun` for EK100). In place
# of the downloaded file, the cell below writes a tiny random one with the same names and
# layout (every tensor must be there, with the right shape, for the conversion to pass).

# %%
generator = torch.Generator().manual_seed(0)
state = {}


def tensor(name, *shape, offset=0.0):
    state[name] = offset + 0.05 * torch.randn(*shape, generator=generator)


def linear(name, out, inp, bias=True):
    tensor(f"{name}.weight", out, inp)
    if bias:
        tensor(f"{name}.bias", out)


def norm(name, dim):
    tensor(f"{name}.weight", dim, offset=1.0)
    tensor(f"{name}.bias", dim)


bottleneck, adapter = WIDTH // 2, WIDTH // 4
patches, steps = (IMAGE // PATCH) ** 2, FRAMES // 2
tensor("clip_conv1.weight", WIDTH, 3, PATCH, PATCH)
tensor("clip_class_embedding", WIDTH)
tensor("clip_positional_embedding", patches + 1, WIDTH)
tensor("patch_embed.proj.weight", WIDTH, 3, 2, PATCH, PATCH)
tensor("patch_embed.proj.bias", WIDTH)
for name in ("clip_ln_pre", "clip_ln_post", "vmae_fc_norm"):
    norm(name, WIDTH)
for i in range(DEPTH):
    b = f"blocks.{i}."
    for name in ("clip_ln_1", "clip_ln_2", "norm1", "norm2"):
        norm(b + name, WIDTH)
    tensor(b + "clip_attn.in_proj_weight", 3 * WIDTH, WIDTH)
    tensor(b + "clip_attn.in_proj_bias", 3 * WIDTH)
    linear(b + "clip_attn.out_proj", WIDTH, WIDTH)
    linear(b + "clip_mlp.c_fc", MLP, WIDTH)
    linear(b + "clip_mlp.c_proj", WIDTH, MLP)
    tensor(b + "attn.qkv.weight", 3 * WIDTH, WIDTH)
    tensor(b + "attn.q_bias", WIDTH)
    tensor(b + "attn.v_bias", WIDTH)
    linear(b + "attn.proj", WIDTH, WIDTH)
    linear(b + "mlp.fc1", MLP, WIDTH)
    linear(b + "mlp.fc2", WIDTH, MLP)
    for s in "st":  # the B-CA down / up projections of each expert
        linear(f"{b}cross_{s}_down", bottleneck, WIDTH)
        norm(f"{b}ln_{s}_cross", bottleneck)
        linear(f"{b}cross_{s}_up", WIDTH, bottleneck)
    for name in ("S_Adapter", "T_Adapter", "S_MLP_Adapter", "T_MLP_Adapter"):
        linear(f"{b}{name}.D_fc1", adapter, WIDTH)
        linear(f"{b}{name}.D_fc2", WIDTH, adapter)
    for module, rows, positions in (
        ("t2s", steps, ("clip_time_pos", "vmae_time_pos")),
        ("s2t", patches, ("vmae_space_pos", "clip_space_pos")),
    ):
        m = f"{b}{module}_cross."
        for position in positions:
            tensor(m + position, rows, bottleneck)
        linear(f"{m}{module}_q", bottleneck, bottleneck, bias=False)
        tensor(f"{m}{module}_q_bias", bottleneck)
        linear(f"{m}{module}_kv", 2 * bottleneck, bottleneck, bias=False)
        tensor(f"{m}{module}_kv_bias", 2 * bottleneck)
        linear(m + "t2s_proj", bottleneck, bottleneck)
linear("head_verb", VERBS, WIDTH)
linear("head_noun", NOUNS, WIDTH)
torch.save({"model": state, "epoch": 49}, "CAST_EK100_tiny.pth")
print(len(state), "tensors in CAST_EK100_tiny.pth")

# %% [markdown]
# `ca2st convert official-cast CHECKPOINT [OUTPUT_DIR]` reads the architecture off the
# tensors' shapes (all but the number of heads, which is not stored: 64 channels per head
# unless `--num-heads` says otherwise), converts every tensor and writes a verified preset
# directory. With `--preset cast_base_k400` (or `_ssv2`, `_ek100`) instead of a folder, it
# checks the checkpoint against that registered preset and caches it, so that
# `CAST.from_preset("cast_base_ek100")` finds it.

# %%
ca2st(
    [
        "convert",
        "official-cast",
        "CAST_EK100_tiny.pth",
        "cast_ek100_tiny",
        "--num-heads",
        "2",
    ]
)
cast = keras_ca2st.CAST.from_preset("cast_ek100_tiny")
logits = cast.predict({"video": video}, verbose=0)
print({head: value.shape for head, value in logits.items()})
verb_kernel = keras.ops.convert_to_numpy(cast.heads["verb"].kernel)
print(
    "verb head = the checkpoint's head_verb:",
    np.allclose(verb_kernel, state["head_verb.weight"].numpy().T),
)

# %% [markdown]
# `cast` is a two-head EPIC-KITCHENS-100 model ready for `evaluate_multiview` or further
# fine-tuning (guide 02).
#
# ## Read next
#
# - **02 Fine-tune on your own videos** — put a preset to work on your data: sampling,
#   the recipe, checkpoints, multi-view evaluation.
# - **04 Switching `KERAS_BACKEND`** — the same weights under torch, jax and tensorflow.
# - **07 Audio-visual models** — CAVA, CA²ST and LAVISH side by side, and what each
#   attends to.
