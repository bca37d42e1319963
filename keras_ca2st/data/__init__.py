"""Data pipeline: files on disk to `model.fit` batches.

Decoding (`video`, `audio`), audio features (`fbank`), temporal sampling
(`sampling`), augmentation (`transforms`, `rand_augment`, `mixup`),
annotation readers (`annotations`), the Keras dataset (`dataset`) and a
synthetic audio-visual set (`synthetic`). Nothing here imports model code.
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
from keras_ca2st.data.clip_spec import ClipSpec
from keras_ca2st.data.dataset import BadSampleReport, VideoDataset, shard_indices
from keras_ca2st.data.encode import write_mp4
from keras_ca2st.data.errors import AnnotationError, AudioDecodeError, VideoDecodeError
from keras_ca2st.data.fbank import (
    audio_features,
    kaldi_fbank,
    normalize_fbank,
    pad_or_crop_frames,
)
from keras_ca2st.data.mixup import Mixup, smooth_one_hot
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

__all__ = [
    "RECIPE_NAMES",
    "AnnotationError",
    "AudioAugment",
    "AudioDecodeError",
    "AudioReader",
    "BadSampleReport",
    "ClipSpec",
    "Mixup",
    "RandAugment",
    "SyntheticDataset",
    "VideoDataset",
    "VideoDecodeError",
    "VideoReader",
    "VideoRecord",
    "audio_features",
    "audio_time_intervals",
    "audio_window_start",
    "dataset_recipe",
    "kaldi_fbank",
    "make_synthetic_dataset",
    "normalize_fbank",
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
