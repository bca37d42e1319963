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

from keras_ca2st.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AnnotationError": "errors",
        "AudioAugment": "transforms",
        "AudioDecodeError": "errors",
        "AudioReader": "audio",
        "BadSampleLog": "bad_samples",
        "BadSampleReport": "bad_samples",
        "ClipDecoder": "decoder",
        "ClipSpec": "clip_spec",
        "ClipTransform": "clip_transform",
        "DecodedClip": "decoder",
        "Mixup": "mixup",
        "PaddedBatches": "padding",
        "RECIPE_NAMES": "recipes",
        "RandAugment": "rand_augment",
        "SAMPLING_SCHEMES": "sampling",
        "SyntheticDataset": "synthetic",
        "VideoDataset": "dataset",
        "VideoDecodeError": "errors",
        "VideoReader": "video",
        "VideoRecord": "annotations",
        "View": "views",
        "ViewSampler": "views",
        "WindowStream": "timeline",
        "audio_features": "fbank",
        "audio_time_intervals": "sampling",
        "audio_window_start": "audio",
        "dataset_recipe": "recipes",
        "evaluation_view_inputs": "clip_transform",
        "kaldi_fbank": "fbank",
        "make_synthetic_dataset": "synthetic",
        "normalize_fbank": "fbank",
        "pad_batches": "padding",
        "pad_or_crop_frames": "fbank",
        "read_annotations": "annotations",
        "read_audio_window": "audio",
        "read_class_names": "annotations",
        "read_csv_annotations": "annotations",
        "read_epic_kitchens": "annotations",
        "read_space_separated": "annotations",
        "sample_frame_indices": "sampling",
        "shard_indices": "views",
        "smooth_one_hot": "mixup",
        "test_clip_transform": "transforms",
        "train_clip_transform": "transforms",
        "video_time_intervals": "sampling",
        "write_mp4": "encode",
    },
)
