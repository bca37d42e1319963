"""Pretrained weights: checkpoint converters, preset building and caching.

Converters read raw checkpoint files (safetensors, PyTorch `.bin`/`.pth`, and on
explicit request OpenAI's TorchScript CLIP) and accept the Hugging Face
(transformers 4 and 5 spellings) and the original layouts:

- `convert_clip`, `convert_videomae`, `convert_ast`: one expert from a file or
  a Hugging Face model directory;
- `convert_official_cast`: the authors' fine-tuned CAST checkpoints;
- `build_preset`, `pretrained_preset_dir`: registered presets, converted once
  and cached (see `preset_store` for the cache layout).
"""

from keras_ca2st.conversion.checkpoint import Checkpoint, read_checkpoint
from keras_ca2st.conversion.convert_ast import convert_ast, load_ast_weights
from keras_ca2st.conversion.convert_cast import (
    convert_official_cast,
    load_official_cast_weights,
)
from keras_ca2st.conversion.convert_clip import convert_clip, load_clip_weights
from keras_ca2st.conversion.convert_videomae import (
    convert_videomae,
    load_videomae_weights,
)
from keras_ca2st.conversion.errors import (
    ConversionError,
    PresetWeightsUnavailableError,
)
from keras_ca2st.conversion.preset_store import (
    CorruptPresetError,
    cache_root,
    cached_preset_dir,
    verify_preset_dir,
)
from keras_ca2st.conversion.presets import (
    build_preset,
    convert_official_cast_preset,
    load_expert_weights,
    pretrained_preset_dir,
)

__all__ = [
    "Checkpoint",
    "ConversionError",
    "CorruptPresetError",
    "PresetWeightsUnavailableError",
    "build_preset",
    "cache_root",
    "cached_preset_dir",
    "convert_ast",
    "convert_clip",
    "convert_official_cast",
    "convert_official_cast_preset",
    "convert_videomae",
    "load_ast_weights",
    "load_clip_weights",
    "load_expert_weights",
    "load_official_cast_weights",
    "load_videomae_weights",
    "pretrained_preset_dir",
    "read_checkpoint",
    "verify_preset_dir",
]
