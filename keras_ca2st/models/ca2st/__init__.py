from keras_ca2st.models.ca2st.ca2st_backbone import CA2STBackbone
from keras_ca2st.models.ca2st.ca2st_video_classifier import (
    CA2ST,
    CAST,
    CAVA,
    VideoClassifier,
)
from keras_ca2st.models.ca2st.cross_expert_encoder import CrossExpertEncoder
