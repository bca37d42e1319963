"""Fusion modules: adapters, bottleneck cross-attention (B-CA), time codes."""

from keras_ca2st.fusion.adapter import BottleneckAdapter, ExpertProjection
from keras_ca2st.fusion.bottleneck_cross_attention import (
    CrossAttentionDirection,
    LateralConnection,
)
from keras_ca2st.fusion.drop_path import DropPath
from keras_ca2st.fusion.exchange import CrossExpertExchange
from keras_ca2st.fusion.lavish_adapter import GroupedDense, LAVISHAdapter
from keras_ca2st.fusion.time_interval import TimeIntervalEmbedding
from keras_ca2st.fusion.windowed_attention import windowed_cross_attention

__all__ = [
    "BottleneckAdapter",
    "CrossAttentionDirection",
    "CrossExpertExchange",
    "DropPath",
    "ExpertProjection",
    "GroupedDense",
    "LAVISHAdapter",
    "LateralConnection",
    "TimeIntervalEmbedding",
    "windowed_cross_attention",
]
