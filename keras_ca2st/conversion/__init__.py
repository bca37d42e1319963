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

from keras_ca2st.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Checkpoint": "checkpoint",
        "ConversionError": "errors",
        "EXPERT_CONVERTERS": "experts",
        "ExpertConverter": "expert_converter",
        "as_checkpoint": "checkpoint",
        "convert_ast": "ast_converter",
        "convert_clip": "clip_converter",
        "convert_official_cast": "convert_cast",
        "convert_videomae": "videomae_converter",
        "load_ast_weights": "ast_converter",
        "load_clip_weights": "clip_converter",
        "load_expert_weights": "experts",
        "load_official_cast_weights": "convert_cast",
        "load_videomae_weights": "videomae_converter",
        "read_checkpoint": "checkpoint",
    },
)
