from keras_ca2st.models.lavish.lavish_backbone import LAVISHBackbone
from keras_ca2st.models.lavish.lavish_classifier import LAVISH
from keras_ca2st.models.lavish.lavish_encoder import LAVISHEncoder
