"""From a decoded clip to the model's inputs, exactly as its `ClipSpec` says.

`ClipTransform` turns a `DecodedClip` into the input dict of one view: the
frames cropped (a random resized crop with augmentation in training, crop
`k` of `num_crops` in evaluation) and normalised with the spec's mean / std;
the audio window as a Kaldi fbank with the spec's mel bins and length,
masked and perturbed in training; and the `[start, end]` time intervals, one
per `frames_per_interval` frames. It makes the spec's inputs and no others,
so a batch fits the model without filtering.
"""

import numpy as np

from keras_ca2st.data import fbank as fbank_lib
from keras_ca2st.data.errors import AudioDecodeError, VideoDecodeError
from keras_ca2st.data.sampling import audio_time_intervals, video_time_intervals
from keras_ca2st.data.transforms import (
    CROP_RATIO,
    CROP_SCALE,
    test_clip_transform,
    train_clip_transform,
)


class ClipTransform:
    """Model inputs of one view of a decoded clip.

    Training views (an `rng` is given) draw, in this order, the audio
    masks and perturbation, then RandAugment, the crop box and the flip, all
    from the one generator of the view; evaluation views are deterministic.

    Args:
        spec: the `ClipSpec` of the model (`model.backbone.clip_spec`).
        crop_scale: area range of the training random resized crop.
        crop_ratio: aspect-ratio range of the training random resized crop.
        horizontal_flip: random flips in training.
        rand_augment: optional `RandAugment` for training.
        audio_augment: optional `AudioAugment` for training.
        num_crops: evaluation crops per clip along the long side (3 for the
            paper's test views, 1 for a centre crop).

    Example:
    ```python
    decoder = ClipDecoder(spec.num_frames, audio_frames=spec.audio_frames)
    transform = ClipTransform(spec, num_crops=3)
    clip = decoder.decode("video.mp4")
    views = [transform(clip, crop_index=k) for k in range(3)]
    views[0]["video"].shape  # (spec.num_frames, spec.crop_size, spec.crop_size, 3)
    ```
    """

    def __init__(
        self,
        spec,
        crop_scale=CROP_SCALE,
        crop_ratio=CROP_RATIO,
        horizontal_flip=True,
        rand_augment=None,
        audio_augment=None,
        num_crops=1,
    ):
        self.spec = spec
        self.crop_scale = tuple(crop_scale)
        self.crop_ratio = tuple(crop_ratio)
        self.horizontal_flip = horizontal_flip
        self.rand_augment = rand_augment
        self.audio_augment = audio_augment
        self.num_crops = num_crops

    def __call__(self, clip, rng=None, crop_index=0, clip_inputs=None):
        """The input dict of one view, keys in the order of `spec.inputs`.

        Args:
            clip: a `DecodedClip`.
            rng: `numpy.random.Generator` of a training view; `None` for the
                evaluation crop `crop_index` of `num_crops`.
            crop_index: evaluation crop.
            clip_inputs: `clip_inputs(clip)` computed for another crop of the
                same clip, to reuse (evaluation only: they do not depend on
                the crop).
        """
        if clip_inputs is None:
            clip_inputs = self.clip_inputs(clip, rng)
        inputs = dict(clip_inputs)
        if self.spec.has_video:
            inputs["video"] = self.frames(clip.frames, rng, crop_index)
        inputs = {name: inputs[name] for name in self.spec.inputs}
        check_finite(inputs, clip.path)
        return inputs

    def clip_inputs(self, clip, rng=None):
        """The inputs that every crop of a clip shares: audio and time intervals."""
        spec, inputs = self.spec, {}
        if spec.has_audio:
            inputs["audio"] = self.audio(clip.waveform, rng, clip.sample_rate)
        if "video_times" in spec.inputs:
            inputs["video_times"] = video_time_intervals(
                clip.frame_times,
                clip.frame_durations,
                clip.audio_start,
                spec.frames_per_interval,
            )
        if "audio_times" in spec.inputs:
            window = fbank_lib.seconds_for_frames(spec.audio_frames, clip.sample_rate)
            inputs["audio_times"] = audio_time_intervals(
                window, spec.num_time_intervals
            )
        return inputs

    def frames(self, frames, rng=None, crop_index=0):
        """float32 `(num_frames, crop_size, crop_size, 3)`, normalised."""
        spec = self.spec
        if rng is not None:
            return train_clip_transform(
                frames,
                rng,
                spec.crop_size,
                scale=self.crop_scale,
                ratio=self.crop_ratio,
                flip=self.horizontal_flip,
                rand_augment=self.rand_augment,
                mean=spec.mean,
                std=spec.std,
            )
        return test_clip_transform(
            frames, spec.crop_size, crop_index, self.num_crops, spec.mean, spec.std
        )

    def audio(self, waveform, rng=None, sample_rate=fbank_lib.SAMPLE_RATE):
        """float32 `(audio_frames, mel_bins)` normalised fbank of a waveform.

        As AST: features of the real audio, zero-padded or cropped to the
        window, masked before normalisation, perturbed after it.
        """
        spec = self.spec
        features = fbank_lib.pad_or_crop_frames(
            fbank_lib.kaldi_fbank(waveform, sample_rate, num_mel_bins=spec.mel_bins),
            spec.audio_frames,
        )
        augment = self.audio_augment if rng is not None else None
        if augment is not None:
            features = augment.mask(features, rng)
        features = fbank_lib.normalize_fbank(features)
        if augment is not None:
            features = augment.perturb(features, rng)
        return features

    def zeros(self):
        """All-zero inputs of the spec's shapes (a bad sample's stand-in)."""
        return {
            name: np.zeros(shape, np.float32)
            for name, shape in self.spec.input_shapes().items()
        }


def check_finite(inputs, path):
    """Raises the decode error of `path` if an input holds NaN or Inf.

    The last guard before a model: whatever a decoder let through (a float
    audio codec's NaN samples, a broken time stamp), a batch never carries
    non-finite values; the dataset counts the file as a bad sample instead.
    """
    for name, value in inputs.items():
        if not np.isfinite(value).all():
            error = AudioDecodeError if name == "audio" else VideoDecodeError
            raise error(
                f"{path}: its {name!r} input holds non-finite values (NaN or Inf), "
                "so the file cannot be used as it is; re-encode it or drop it from "
                "the annotation file."
            )


def evaluation_view_inputs(decoder, transform, record, view, clip_cache):
    """Inputs of an evaluation view, decoding each clip once for all its crops.

    Args:
        decoder: the `ClipDecoder`.
        transform: the `ClipTransform`.
        record: the view's `VideoRecord` (or file path).
        view: the `View` (`keras_ca2st.data.views`).
        clip_cache: a dict kept across consecutive views. The crops of a clip
            are adjacent views, so it keeps the last clip only: its frames,
            audio features and time intervals.

    Example:
    ```python
    cache = {}
    views = [evaluation_view_inputs(decoder, transform, path, view, cache)
             for view in ViewSampler(1, mode="test").views]
    ```
    """
    key = (view.record_index, view.clip_index)
    if key not in clip_cache:
        clip_cache.clear()
        clip = decoder.decode(record, view.clip_index)
        clip_cache[key] = clip, transform.clip_inputs(clip)
    clip, shared = clip_cache[key]
    return transform(clip, crop_index=view.crop_index, clip_inputs=shared)
