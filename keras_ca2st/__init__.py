"""keras_ca2st: CA²ST, CAST and CAVA holistic video recognition for Keras 3."""

# `presets` installs the resolver behind `CAST.from_preset("cast_base")`.
from keras_ca2st import presets
from keras_ca2st.experts import ASTEncoder, CLIPVisionEncoder, VideoMAEEncoder
from keras_ca2st.models import (
    CA2ST,
    CAST,
    CAVA,
    LAVISH,
    CA2STBackbone,
    CrossExpertEncoder,
    LAVISHBackbone,
    VideoClassifier,
)
from keras_ca2st.version import __version__

__all__ = [
    "ASTEncoder",
    "CA2ST",
    "CA2STBackbone",
    "CAST",
    "CAVA",
    "CLIPVisionEncoder",
    "CrossExpertEncoder",
    "LAVISH",
    "LAVISHBackbone",
    "VideoClassifier",
    "VideoMAEEncoder",
]
