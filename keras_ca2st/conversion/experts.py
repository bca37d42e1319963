"""Any expert from any of its checkpoints: the converter picked by expert class."""

from keras_ca2st.conversion.ast_converter import AST
from keras_ca2st.conversion.clip_converter import CLIP
from keras_ca2st.conversion.errors import ConversionError
from keras_ca2st.conversion.videomae_converter import VIDEOMAE

EXPERT_CONVERTERS = {
    converter.expert_class.__name__: converter for converter in (CLIP, VIDEOMAE, AST)
}


def load_expert_weights(expert, checkpoint):
    """Copy a checkpoint into an expert of any kind (layout detected from keys)."""
    name = type(expert).__name__
    if name not in EXPERT_CONVERTERS:
        raise ConversionError(f"No converter for experts of type {name}.")
    return EXPERT_CONVERTERS[name].load(expert, checkpoint)
