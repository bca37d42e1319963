"""Pretrained weights: checkpoint files read safely and converted into our models.

Converters read raw checkpoint files (safetensors, PyTorch `.bin`/`.pth`, and on
explicit request OpenAI's TorchScript CLIP) and accept the Hugging Face
(transformers 4 and 5 spellings) and the original layouts:

- `convert_clip`, `convert_videomae`, `convert_ast`: one expert from a file or
  a Hugging Face model directory; each is an `ExpertConverter`
  (`expert_converter.py`), and `load_expert_weights` picks one by expert class;
- `convert_official_cast`: the authors' fine-tuned CAST checkpoints.

Named presets, the cache of converted weights and hub fetching sit one room
up, in `keras_ca2st.presets`.
"""

from keras_ca2st.conversion.checkpoint import Checkpoint, as_checkpoint, read_checkpoint
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
from keras_ca2st.conversion.errors import ConversionError
from keras_ca2st.conversion.expert_converter import ExpertConverter
from keras_ca2st.conversion.experts import EXPERT_CONVERTERS, load_expert_weights

__all__ = [
    "EXPERT_CONVERTERS",
    "Checkpoint",
    "ConversionError",
    "ExpertConverter",
    "as_checkpoint",
    "convert_ast",
    "convert_clip",
    "convert_official_cast",
    "convert_videomae",
    "load_ast_weights",
    "load_clip_weights",
    "load_expert_weights",
    "load_official_cast_weights",
    "load_videomae_weights",
    "read_checkpoint",
]
