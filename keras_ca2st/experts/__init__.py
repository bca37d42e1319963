"""Frozen pretrained experts: CLIP (space), VideoMAE (time), AST (audio)."""

from keras_ca2st.experts.ast_encoder import ASTEncoder
from keras_ca2st.experts.clip_encoder import CLIPVisionEncoder
from keras_ca2st.experts.videomae_encoder import VideoMAEEncoder
from keras_ca2st.experts.vit_encoder import ViTExpertEncoder
from keras_ca2st.experts.vit_layers import ViTBlock, ViTMLP, ViTSelfAttention

__all__ = [
    "ASTEncoder",
    "CLIPVisionEncoder",
    "VideoMAEEncoder",
    "ViTBlock",
    "ViTExpertEncoder",
    "ViTMLP",
    "ViTSelfAttention",
]
