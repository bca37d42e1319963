"""Models: CAST, CAVA, CA²ST (and their backbone)."""

from keras_ca2st.models.ca2st import (
    CA2ST,
    CAST,
    CAVA,
    CA2STBackbone,
    CrossExpertEncoder,
    VideoClassifier,
)
from keras_ca2st.models.lavish import LAVISH, LAVISHBackbone, LAVISHEncoder
