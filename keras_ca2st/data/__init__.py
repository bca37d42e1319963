"""Data pipeline: files on disk to `model.fit` batches.

The clip contract a model exposes (`clip_spec.ClipSpec`, read from
`model.backbone.clip_spec`) says what the pipeline makes. Its pieces:
which views an epoch visits (`views.ViewSampler`), file to frames and audio
window (`decoder.ClipDecoder`, on the readers in `video`, `audio`, `media`),
decoded clip to model inputs (`clip_transform.ClipTransform`, with
`transforms`, `rand_augment`, `fbank` and the time intervals of `sampling`),
and the Keras dataset that batches them (`dataset.VideoDataset`, with
`mixup` and the bad-sample policy). Also annotation readers (`annotations`),
per-dataset recipes (`recipes`) and a synthetic audio-visual set
(`synthetic`). Nothing here imports model code.
"""

from keras_ca2st.data.annotations import (
    VideoRecord,
    read_annotations,
    read_class_names,
    read_csv_annotations,
    read_epic_kitchens,
    read_space_separated,
)
from keras_ca2st.data.audio import AudioReader, audio_window_start, read_audio_window
from keras_ca2st.data.bad_samples import BadSampleLog, BadSampleReport
from keras_ca2st.data.clip_spec import ClipSpec
from keras_ca2st.data.clip_transform import ClipTransform, evaluation_view_inputs
from keras_ca2st.data.dataset import VideoDataset
from keras_ca2st.data.decoder import ClipDecoder, DecodedClip
from keras_ca2st.data.encode import write_mp4
from keras_ca2st.data.errors import AnnotationError, AudioDecodeError, VideoDecodeError
from keras_ca2st.data.fbank import (
    audio_features,
    kaldi_fbank,
    normalize_fbank,
    pad_or_crop_frames,
)
from keras_ca2st.data.mixup import Mixup, smooth_one_hot
from keras_ca2st.data.padding import PaddedBatches, pad_batches
from keras_ca2st.data.rand_augment import RandAugment
from keras_ca2st.data.recipes import RECIPE_NAMES, dataset_recipe
from keras_ca2st.data.sampling import (
    audio_time_intervals,
    sample_frame_indices,
    video_time_intervals,
)
from keras_ca2st.data.synthetic import SyntheticDataset, make_synthetic_dataset
from keras_ca2st.data.transforms import (
    AudioAugment,
    test_clip_transform,
    train_clip_transform,
)
from keras_ca2st.data.video import VideoReader
from keras_ca2st.data.views import View, ViewSampler, shard_indices

__all__ = [
    "RECIPE_NAMES",
    "AnnotationError",
    "AudioAugment",
    "AudioDecodeError",
    "AudioReader",
    "BadSampleLog",
    "BadSampleReport",
    "ClipDecoder",
    "ClipSpec",
    "ClipTransform",
    "DecodedClip",
    "Mixup",
    "PaddedBatches",
    "RandAugment",
    "SyntheticDataset",
    "VideoDataset",
    "VideoDecodeError",
    "VideoReader",
    "VideoRecord",
    "View",
    "ViewSampler",
    "audio_features",
    "audio_time_intervals",
    "audio_window_start",
    "dataset_recipe",
    "evaluation_view_inputs",
    "kaldi_fbank",
    "make_synthetic_dataset",
    "normalize_fbank",
    "pad_batches",
    "pad_or_crop_frames",
    "read_annotations",
    "read_audio_window",
    "read_class_names",
    "read_csv_annotations",
    "read_epic_kitchens",
    "read_space_separated",
    "sample_frame_indices",
    "shard_indices",
    "smooth_one_hot",
    "test_clip_transform",
    "train_clip_transform",
    "video_time_intervals",
    "write_mp4",
]
