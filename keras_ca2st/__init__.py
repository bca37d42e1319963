"""keras_ca2st: CA²ST, CAST and CAVA holistic video recognition for Keras 3."""

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

__version__ = "0.1.0"

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
