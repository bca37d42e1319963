"""The dataset that feeds `model.fit`: batches of views, mixup, bad samples.

`VideoDataset` is a `keras.utils.PyDataset`, so the same object trains on the
torch, jax and tensorflow backends and can load batches in parallel threads
or processes (`workers`, `use_multiprocessing`). It is thin: a
`ViewSampler` (`views.py`) says which views an epoch visits in which order
and on which shard, a `ClipDecoder` (`decoder.py`) reads each view's frames
and audio window from its file, and a `ClipTransform` (`clip_transform.py`)
makes the model's inputs, as the model's `ClipSpec` says. The dataset
batches them, applies mixup or one-hot labels, and keeps one bad file from
stopping a run. All augmentation is numpy.

Determinism: every random draw for a sample comes from a generator seeded
with `(seed, epoch, view index)`, and the shuffle order from `(seed, epoch)`.
The batches are therefore identical whatever the number of workers or the
order in which they finish. (`model.fit(shuffle=True)` additionally shuffles
the order of whole batches with Python's `random`; pass `shuffle=False`, or
seed with `keras.utils.set_random_seed`, for a fully reproducible run.)
On its own the epoch counter advances in `on_epoch_end`, which Keras calls in
the main process between epochs (and once when `fit` starts); the worker
pools Keras starts each epoch see it. For runs that must be reproducible
across a restart, pass the dataset to `keras_ca2st.training.DatasetEpoch`
(or `training_callbacks(..., datasets=[train])`): it sets the epoch to the
`fit` epoch when each epoch begins, so a resumed run sees the batches an
uninterrupted run sees. With `workers > 1`, also call
`keras_ca2st.training.build_before_fit(model, train[0])` before `fit`: on
torch and jax, Keras otherwise opens each epoch with batches its worker pool
prefetched for the one before.

Bad samples: a file that cannot be decoded does not stop training. In
`"substitute"` mode (the training default) the next sample of the epoch order
takes its place; in `"zero"` mode (the evaluation default) its inputs are
zeros and its sample weight is 0, so metrics ignore it. Either way the path
and the reason are appended to a log shared by all worker processes, exposed
as `dataset.bad_samples` and printed at the end of each epoch by
`BadSampleReport`.
"""

import keras
import numpy as np

from keras_ca2st.data.bad_samples import BadSampleLog, BadSampleReport
from keras_ca2st.data.clip_spec import ClipSpec
from keras_ca2st.data.clip_transform import ClipTransform, evaluation_view_inputs
from keras_ca2st.data.decoder import DEFAULT_NUM_FRAMES, ClipDecoder
from keras_ca2st.data.mixup import smooth_one_hot
from keras_ca2st.data.transforms import CROP_RATIO, CROP_SCALE
from keras_ca2st.data.views import MODES, View, ViewSampler, shard_indices

BAD_SAMPLE_POLICIES = ("substitute", "zero", "raise")
# The inputs a dataset without a spec adds when it has an audio window.
AUDIO_VISUAL_INPUTS = ("audio", "video_times", "audio_times")
DEFAULT_CROP_SIZE = 224

__all__ = [
    "BAD_SAMPLE_POLICIES",
    "MODES",
    "BadSampleReport",
    "VideoDataset",
    "View",
    "shard_indices",
]


def dataset_clip_spec(spec=None, num_frames=None, crop_size=None, audio_frames=None):
    """The `ClipSpec` a `VideoDataset` produces.

    Without `spec`: video of `num_frames` (16) frames of `crop_size` (224),
    plus audio, video_times and audio_times when `audio_frames` is set, 128
    mel bins, one interval per 2 frames. With `spec`, a value given too must
    agree with the one the spec sets.

    Example:

    >>> dataset_clip_spec(num_frames=8, crop_size=32).input_shapes()
    {'video': (8, 32, 32, 3)}
    """
    if spec is None:
        inputs = ("video",) + (AUDIO_VISUAL_INPUTS if audio_frames is not None else ())
        return ClipSpec(
            inputs,
            num_frames=DEFAULT_NUM_FRAMES if num_frames is None else num_frames,
            crop_size=DEFAULT_CROP_SIZE if crop_size is None else crop_size,
            audio_frames=audio_frames,
        )
    given = dict(num_frames=num_frames, crop_size=crop_size, audio_frames=audio_frames)
    for name, value in given.items():
        expected = getattr(spec, name)
        if value is not None and expected is not None and value != expected:
            raise ValueError(
                f"{name}={value} disagrees with the model's clip spec "
                f"({name}={expected}); leave it out, the spec sets it."
            )
    return spec


class _Setting:
    """A read-only dataset attribute that reads the piece owning it."""

    def __init__(self, owner):
        self.owner = owner

    def __set_name__(self, cls, name):
        self.name = name

    def __get__(self, dataset, cls=None):
        if dataset is None:
            return self
        return getattr(getattr(dataset, self.owner), self.name)

    def __set__(self, dataset, value):
        raise AttributeError(
            f"{self.name} is fixed when the dataset is built (it is "
            f"`dataset.{self.owner}.{self.name}`); build a new dataset."
        )


class VideoDataset(keras.utils.PyDataset):
    """Batches of decoded, sampled and augmented clips for `model.fit`.

    Produces `(inputs, labels)` (plus sample weights in `"zero"` bad-sample
    mode) where `inputs` is a dict with exactly the inputs of `spec`:

    - `"video"`: float32 `(batch, num_frames, crop_size, crop_size, 3)`,
      normalised with the spec's mean / std (ImageNet's), channels last.
    - `"audio"`: float32 `(batch, audio_frames, mel_bins)` normalised Kaldi
      fbank of the audio window centred on the clip.
    - `"video_times"`: float32 `(batch, num_frames // frames_per_interval,
      2)` start and end in seconds of each group of frames (one temporal
      tubelet); `"audio_times"`: the audio window cut into as many equal
      intervals. Both are measured from the audio window start.

    Without `spec`: `"video"`, plus `"audio"`, `"video_times"` and
    `"audio_times"` when `audio_frames` is set (128 mel bins, 2 frames per
    interval).

    Labels are int32 `(batch,)` class indices, or a dict `{"verb", "noun"}`
    of them for records labelled that way. With `mixup`, they are float32
    soft targets `(batch, classes)` (a dict of two for EPIC-KITCHENS); with
    `one_hot_labels`, float32 one-hot vectors of the same shape.

    Modes:

    - `"train"`: random clip and crop, augmentation, shuffled every epoch.
    - `"val"`: one deterministic view per video (centre clip, centre crop).
    - `"test"`: `num_test_clips x num_test_crops` views per video, in video
      order (views of one video are adjacent; see `view_record_indices` and
      `keras_ca2st.training.average_view_softmax`).

    Args:
        records: list of `VideoRecord` (see `keras_ca2st.data.annotations`).
        batch_size: clips per batch.
        mode: `"train"`, `"val"` or `"test"`.
        num_frames: frames per clip (the spec's; 16 without one). With a
            spec that has no video, the frames of the clip whose centre
            places the audio window.
        sampling: `"dense"` (K400, audio-visual sets) or `"uniform"`
            (SSV2, EK100).
        frame_stride: dense sampling stride (4 in the paper).
        crop_size: output frame side (the spec's; 224 without one).
        num_test_clips: temporal views per video in test mode (K400: 5,
            others: 2).
        num_test_crops: spatial crops per clip in test mode (3).
        crop_scale: area range of the training random resized crop.
        crop_ratio: aspect ratio range of the training random resized crop.
        horizontal_flip: random flips in training (turn off for SSV2 and any
            dataset whose labels mention left and right).
        rand_augment: optional `RandAugment` for training.
        mixup: optional `Mixup` for training (also makes soft targets).
        one_hot_labels: return float32 one-hot labels (needs `num_classes`),
            e.g. for a validation set evaluated with the same categorical loss
            as a mixup training set.
        num_classes: number of classes (a dict for multi-target labels); only
            needed with `one_hot_labels`.
        audio_frames: number of fbank frames (10 ms each; 1024 = 10.24 s);
            the spec's. Without a spec, `None` produces video inputs only.
        audio_augment: optional `AudioAugment` for training.
        missing_audio: `"error"` (a file without audio is a bad sample) or
            `"silence"` (feed silence for it).
        shuffle: shuffle the sample order each epoch (default: training only).
        drop_remainder: drop the last incomplete batch (default: training
            only).
        seed: seed for the shuffle order and all augmentation.
        num_shards: data-parallel processes that split the dataset
            (`DistributionContext.num_processes`; 1 = no sharding).
        shard_index: this process's shard
            (`DistributionContext.process_index`). In training every shard
            takes every `num_shards`-th sample of the same shuffled epoch
            order, after dropping the remainder, so all ranks run the same
            number of steps and together see the global batches of the
            unsharded set (see `shard_indices`). In evaluation every video
            goes to exactly one shard (video `i` to shard `i % num_shards`,
            with all its views), so shards may differ by one video.
        bad_sample_policy: `"substitute"`, `"zero"` or `"raise"`; defaults to
            `"substitute"` in training and `"zero"` otherwise.
        bad_sample_log: path of the JSON-lines log of bad samples shared by
            workers; a temporary file by default.
        max_substitutions: how many following samples are tried before a
            batch gives up (then the run stops: everything is failing).
        decoder_threads: FFmpeg threads per decoder.
        workers: parallel batch loaders (see `keras.utils.PyDataset`).
        use_multiprocessing: load batches in processes instead of threads.
        max_queue_size: batches prepared ahead.
        spec: the `ClipSpec` of the model the batches feed
            (`model.backbone.clip_spec`): frames, crop, audio frames, mel
            bins, time intervals, normalisation and which inputs are made.

    Attributes:
        sampler: the `ViewSampler` (views, epoch order, shard).
        decoder: the `ClipDecoder` (file to frames and audio window).
        transform: the `ClipTransform` (decoded clip to inputs).

    Example:

    >>> from keras_ca2st.data import (BadSampleReport, Mixup, VideoDataset,
    ...                               read_csv_annotations)
    >>> records = read_csv_annotations("train.csv", "data/")  # doctest: +SKIP
    >>> spec = model.backbone.clip_spec  # doctest: +SKIP
    >>> train = VideoDataset(records, batch_size=8, spec=spec,
    ...                      mixup=Mixup(309))  # doctest: +SKIP
    >>> val = VideoDataset(val_records, batch_size=8, mode="val", spec=spec,
    ...                    one_hot_labels=True, num_classes=309)  # doctest: +SKIP
    >>> model.fit(train, validation_data=val, epochs=10, shuffle=False,
    ...           callbacks=[BadSampleReport(train, val)])  # doctest: +SKIP

    With `keras_ca2st.training.DatasetEpoch(train)` among the callbacks (as
    `training_callbacks(..., datasets=[train, val])` adds it), `fit` epoch k
    uses dataset epoch k, also in a run that resumes from a saved state.
    """

    def __init__(
        self,
        records,
        batch_size,
        mode="train",
        num_frames=None,
        sampling="dense",
        frame_stride=4,
        crop_size=None,
        num_test_clips=2,
        num_test_crops=3,
        crop_scale=CROP_SCALE,
        crop_ratio=CROP_RATIO,
        horizontal_flip=True,
        rand_augment=None,
        mixup=None,
        one_hot_labels=False,
        num_classes=None,
        audio_frames=None,
        audio_augment=None,
        missing_audio="error",
        shuffle=None,
        drop_remainder=None,
        seed=0,
        num_shards=1,
        shard_index=0,
        bad_sample_policy=None,
        bad_sample_log=None,
        max_substitutions=16,
        decoder_threads=1,
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
        spec=None,
    ):
        super().__init__(
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
        records = list(records)
        # === Pieces ===
        self.sampler = ViewSampler(
            len(records),
            mode,
            num_test_clips=num_test_clips,
            num_test_crops=num_test_crops,
            shuffle=shuffle,
            seed=seed,
            num_shards=num_shards,
            shard_index=shard_index,
        )
        self.spec = dataset_clip_spec(spec, num_frames, crop_size, audio_frames)
        self.decoder = ClipDecoder.for_spec(
            self.spec,
            num_frames=num_frames,
            sampling=sampling,
            frame_stride=frame_stride,
            num_clips=self.sampler.num_clips,
            missing_audio=missing_audio,
            decoder_threads=decoder_threads,
        )
        self.transform = ClipTransform(
            self.spec,
            crop_scale=crop_scale,
            crop_ratio=crop_ratio,
            horizontal_flip=horizontal_flip,
            rand_augment=rand_augment,
            audio_augment=audio_augment,
            num_crops=self.sampler.num_crops,
        )
        training = self.sampler.training
        bad_sample_policy = bad_sample_policy or ("substitute" if training else "zero")
        if bad_sample_policy not in BAD_SAMPLE_POLICIES:
            raise ValueError(
                f"bad_sample_policy must be one of {BAD_SAMPLE_POLICIES}; "
                f"got {bad_sample_policy!r}."
            )
        if not records:
            raise ValueError("records is empty: the annotation file has no samples.")
        if mixup is not None and not training:
            raise ValueError(
                "mixup is a training augmentation; use it with mode='train'."
            )
        if one_hot_labels and num_classes is None:
            raise ValueError("one_hot_labels=True needs num_classes.")

        # === Config === (the rest is owned by the pieces; see below)
        self.records = records
        self.batch_size = batch_size
        self.mixup = mixup
        self.one_hot_labels = one_hot_labels
        self.num_classes = num_classes
        self.drop_remainder = training if drop_remainder is None else drop_remainder
        self.bad_sample_policy = bad_sample_policy
        self.max_substitutions = max_substitutions

        # === State ===
        self.epoch = 0
        self._bad_sample_log = BadSampleLog(bad_sample_log, owner=self)
        self.bad_sample_log = self._bad_sample_log.path
        self._multi_target = isinstance(self.records[0].label, dict)
        self._num_positions = len(self.epoch_order(0))
        if len(self) == 0:
            shard = f" in shard {shard_index} of {num_shards}" if num_shards > 1 else ""
            raise ValueError(
                f"{self._num_positions} samples{shard} make no full batch of "
                f"{batch_size}; lower batch_size or pass drop_remainder=False."
            )

    # The settings each piece owns, readable on the dataset as arguments of
    # the same name (one owner each, so they cannot disagree).
    mode = _Setting("sampler")
    num_test_clips = _Setting("sampler")
    num_test_crops = _Setting("sampler")
    shuffle = _Setting("sampler")
    seed = _Setting("sampler")
    num_shards = _Setting("sampler")
    shard_index = _Setting("sampler")
    views = _Setting("sampler")
    num_frames = _Setting("decoder")
    sampling = _Setting("decoder")
    frame_stride = _Setting("decoder")
    missing_audio = _Setting("decoder")
    decoder_threads = _Setting("decoder")
    crop_size = _Setting("spec")
    audio_frames = _Setting("spec")
    crop_scale = _Setting("transform")
    crop_ratio = _Setting("transform")
    horizontal_flip = _Setting("transform")
    rand_augment = _Setting("transform")
    audio_augment = _Setting("transform")

    # === Keras PyDataset interface ===

    def __len__(self):
        if self.drop_remainder:
            return self._num_positions // self.batch_size
        return -(-self._num_positions // self.batch_size)

    def on_epoch_end(self):
        # Keras calls this in the main process after the epoch's workers have
        # stopped, so the next epoch's worker pool (threads, or processes
        # forked afresh each epoch) sees the new value. Keras also calls it
        # once when `fit` starts (after the batch it may read to build the
        # metrics), so under plain `fit` epoch k uses dataset epoch k + 1.
        # `DatasetEpoch` overrides the count with the `fit` epoch.
        self.epoch += 1

    def set_epoch(self, epoch):
        """Sets the epoch used for shuffling and augmentation.

        `keras_ca2st.training.DatasetEpoch` calls it with the `fit` epoch at
        the start of every epoch.
        """
        self.epoch = int(epoch)

    def epoch_order(self, epoch=None):
        """Indices of this shard's views in the order the given epoch visits them."""
        return self.sampler.epoch_order(self.epoch if epoch is None else epoch)

    def __getitem__(self, batch_index):
        if not 0 <= batch_index < len(self):
            raise IndexError(f"batch {batch_index} out of range [0, {len(self)}).")
        order = self.epoch_order()
        positions = range(
            batch_index * self.batch_size,
            min((batch_index + 1) * self.batch_size, len(order)),
        )
        samples, weights, clip_cache = [], [], {}
        for position in positions:
            sample, weight = self._load_with_policy(order, position, clip_cache)
            samples.append(sample)
            weights.append(weight)
        inputs = {key: np.stack([s[0][key] for s in samples]) for key in samples[0][0]}
        labels = self._stack_labels([s[1] for s in samples])
        if self.mixup is not None:
            rng = np.random.default_rng((self.seed, self.epoch, batch_index, 1))
            inputs, labels, _ = self.mixup(inputs, labels, rng)
        elif self.one_hot_labels:
            labels = self._one_hot(labels)
        if self.bad_sample_policy == "zero":
            return inputs, labels, np.asarray(weights, np.float32)
        return inputs, labels

    def _stack_labels(self, labels):
        if self._multi_target:
            return {
                name: np.asarray([label[name] for label in labels], np.int32)
                for name in labels[0]
            }
        return np.asarray(labels, np.int32)

    def _one_hot(self, labels):
        if isinstance(labels, dict):
            return {
                name: smooth_one_hot(value, self.num_classes[name])
                for name, value in labels.items()
            }
        return smooth_one_hot(labels, self.num_classes)

    # === One view ===

    def load_view(self, view_index, clip_cache=None):
        """Decodes and transforms one view; returns `(inputs, label)`.

        Args:
            view_index: index into `self.views`.
            clip_cache: optional dict shared by the views of one batch. In
                evaluation the crops of a clip share its frames, audio and
                time intervals, so they are decoded and computed once.

        Raises:
            VideoDecodeError, AudioDecodeError: for bad files.
        """
        view = self.views[view_index]
        record = self.records[view.record_index]
        rng = self.sampler.rng(view_index, self.epoch)
        if rng is None and clip_cache is not None:
            inputs = evaluation_view_inputs(
                self.decoder, self.transform, record, view, clip_cache
            )
        else:
            clip = self.decoder.decode(record, view.clip_index, rng)
            inputs = self.transform(clip, rng, view.crop_index)
        return inputs, record.label

    # === Loading with bad-sample handling ===

    def _load_with_policy(self, order, position, clip_cache):
        view_index = int(order[position])
        try:
            return self.load_view(view_index, clip_cache), 1.0
        except Exception as error:  # one bad file must not stop a run
            if self.bad_sample_policy == "raise":
                raise
            first_error = error
            self._log_bad_sample(view_index, error)
        if self.bad_sample_policy == "zero":
            return self._zero_sample(view_index), 0.0
        # Substitute: the next views of this epoch's order, deterministically.
        for step in range(1, self.max_substitutions + 1):
            substitute = int(order[(position + step) % len(order)])
            try:
                return self.load_view(substitute, clip_cache), 1.0
            except Exception as error:  # keep trying the following samples
                self._log_bad_sample(substitute, error)
        raise RuntimeError(
            f"{self.max_substitutions + 1} consecutive samples failed to load; "
            "this is not a single bad file. First error: "
            f"{type(first_error).__name__}: {first_error}"
        ) from first_error

    def _log_bad_sample(self, view_index, error):
        record = self.records[self.views[view_index].record_index]
        self._bad_sample_log.add(record, error, self.epoch)

    @property
    def bad_samples(self):
        """List of `(path, reason)` for every bad sample met so far."""
        return [(entry["path"], entry["reason"]) for entry in self.bad_sample_entries()]

    def bad_sample_entries(self):
        """The full bad-sample log entries (path, reason, epoch, source)."""
        return self._bad_sample_log.entries()

    def _zero_sample(self, view_index):
        record = self.records[self.views[view_index].record_index]
        return self.transform.zeros(), record.label

    # === Evaluation helpers ===

    @property
    def view_record_indices(self):
        """Video index of each view, in the order `predict` returns them.

        Indexes `labels`. In a sharded evaluation dataset both cover this
        shard's videos only (`records[shard_index::num_shards]`).
        """
        return self.sampler.view_record_indices(self.epoch)

    @property
    def labels(self):
        """Labels of the videos (one per video, not per view); see
        `view_record_indices`."""
        return [record.label for record in self.sampler.shard_records(self.records)]
