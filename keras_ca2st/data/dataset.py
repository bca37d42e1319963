"""The dataset that feeds `model.fit`: decoding, sampling, augmentation, batching.

`VideoDataset` is a `keras.utils.PyDataset`, so the same object trains on the
torch, jax and tensorflow backends and can load batches in parallel threads
or processes (`workers`, `use_multiprocessing`). All augmentation is numpy.

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

import dataclasses
import json
import os
import tempfile
import weakref

import keras
import numpy as np

from keras_ca2st.data import fbank as fbank_lib
from keras_ca2st.data.audio import AudioReader, audio_window_start
from keras_ca2st.data.errors import AudioDecodeError, VideoDecodeError
from keras_ca2st.data.mixup import smooth_one_hot
from keras_ca2st.data.sampling import (
    SAMPLING_SCHEMES,
    audio_time_intervals,
    sample_frame_indices,
    video_time_intervals,
)
from keras_ca2st.data.transforms import test_clip_transform, train_clip_transform
from keras_ca2st.data.video import VideoReader

MODES = ("train", "val", "test")
BAD_SAMPLE_POLICIES = ("substitute", "zero", "raise")


def shard_indices(num_samples, num_shards, shard_index, seed=None, epoch=0):
    """Sample indices of one data-parallel shard, `DistributedSampler`-style.

    All shards use the same (optionally shuffled, seeded by `(seed, epoch)`)
    order and take every `num_shards`-th sample from it, after dropping the
    remainder so that every shard has the same length (ranks must run the same
    number of steps). With per-shard batches of `b`, batch `k` of all shards
    together is exactly batch `k` of size `b × num_shards` of the unsharded
    order, so data-parallel and single-process runs see the same global
    batches.

    Example:

    >>> shard_indices(10, 2, 1).tolist()
    [1, 3, 5, 7, 9]
    """
    _check_shard(num_shards, shard_index)
    order = np.arange(num_samples)
    if seed is not None:
        np.random.default_rng((seed, epoch)).shuffle(order)
    order = order[: num_samples - num_samples % num_shards]
    return order[shard_index::num_shards]


def _check_shard(num_shards, shard_index):
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(
            f"shard_index must be in [0, num_shards) with num_shards >= 1; got "
            f"shard_index={shard_index}, num_shards={num_shards}."
        )


@dataclasses.dataclass(frozen=True)
class View:
    """One element of the dataset: a record, a temporal clip and a crop."""

    record_index: int
    clip_index: int = 0
    crop_index: int = 0


class VideoDataset(keras.utils.PyDataset):
    """Batches of decoded, sampled and augmented clips for `model.fit`.

    Produces `(inputs, labels)` (plus sample weights in `"zero"` bad-sample
    mode) where `inputs` is a dict:

    - `"video"`: float32 `(batch, num_frames, crop_size, crop_size, 3)`,
      ImageNet-normalised, channels last.
    - with `audio_frames` set, also `"audio"`: float32
      `(batch, audio_frames, 128)` normalised Kaldi fbank;
      `"video_times"`: float32 `(batch, num_frames // 2, 2)` start and end in
      seconds of each pair of frames (one temporal tubelet); and
      `"audio_times"`: float32 `(batch, num_frames // 2, 2)`, the audio window
      cut into equal intervals. Both are measured from the audio window start.

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
        num_frames: frames per clip (16 for the paper's models).
        sampling: `"dense"` (K400, audio-visual sets) or `"uniform"`
            (SSV2, EK100).
        frame_stride: dense sampling stride (4 in the paper).
        crop_size: output frame side (224 in the paper).
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
        audio_frames: number of fbank frames (10 ms each; 1024 = 10.24 s).
            `None` produces video inputs only.
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

    Example:

    >>> from keras_ca2st.data import (BadSampleReport, Mixup, VideoDataset,
    ...                               read_csv_annotations)
    >>> records = read_csv_annotations("train.csv", "data/")  # doctest: +SKIP
    >>> train = VideoDataset(records, batch_size=8, num_frames=16, crop_size=224,
    ...                      audio_frames=1024, mixup=Mixup(309))  # doctest: +SKIP
    >>> val = VideoDataset(val_records, batch_size=8, mode="val",
    ...                    audio_frames=1024, one_hot_labels=True,
    ...                    num_classes=309)  # doctest: +SKIP
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
        num_frames=16,
        sampling="dense",
        frame_stride=4,
        crop_size=224,
        num_test_clips=2,
        num_test_crops=3,
        crop_scale=(0.08, 1.0),
        crop_ratio=(3.0 / 4.0, 4.0 / 3.0),
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
    ):
        super().__init__(
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
        if sampling not in SAMPLING_SCHEMES:
            raise ValueError(
                f"sampling must be one of {SAMPLING_SCHEMES}; got {sampling!r}."
            )
        if missing_audio not in ("error", "silence"):
            raise ValueError(
                f"missing_audio must be 'error' or 'silence'; got {missing_audio!r}."
            )
        training = mode == "train"
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
        _check_shard(num_shards, shard_index)

        # === Config ===
        self.records = list(records)
        self.batch_size = batch_size
        self.mode = mode
        self.num_frames = num_frames
        self.sampling = sampling
        self.frame_stride = frame_stride
        self.crop_size = crop_size
        self.num_test_clips = num_test_clips
        self.num_test_crops = num_test_crops
        self.crop_scale = tuple(crop_scale)
        self.crop_ratio = tuple(crop_ratio)
        self.horizontal_flip = horizontal_flip
        self.rand_augment = rand_augment
        self.mixup = mixup
        self.one_hot_labels = one_hot_labels
        self.num_classes = num_classes
        self.audio_frames = audio_frames
        self.audio_augment = audio_augment
        self.missing_audio = missing_audio
        self.shuffle = training if shuffle is None else shuffle
        self.drop_remainder = training if drop_remainder is None else drop_remainder
        self.seed = seed
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.bad_sample_policy = bad_sample_policy
        self.max_substitutions = max_substitutions
        self.decoder_threads = decoder_threads

        # === State ===
        self.views = self._make_views()
        self._view_records = np.asarray([v.record_index for v in self.views], np.int64)
        self.epoch = 0
        if bad_sample_log is None:
            handle, bad_sample_log = tempfile.mkstemp(
                prefix="keras_ca2st_bad_samples_", suffix=".jsonl"
            )
            os.close(handle)
            # Removed with the dataset, by the process that created it only
            # (forked workers hold copies of this object too).
            weakref.finalize(self, _remove_owned_file, bad_sample_log, os.getpid())
        self.bad_sample_log = os.fspath(bad_sample_log)
        self._multi_target = isinstance(self.records[0].label, dict)
        self._num_positions = len(self.epoch_order(0))
        if len(self) == 0:
            shard = f" in shard {shard_index} of {num_shards}" if num_shards > 1 else ""
            raise ValueError(
                f"{self._num_positions} samples{shard} make no full batch of "
                f"{batch_size}; lower batch_size or pass drop_remainder=False."
            )

    def _make_views(self):
        if self.mode != "test":
            return [View(i) for i in range(len(self.records))]
        return [
            View(record, clip, crop)
            for record in range(len(self.records))
            for clip in range(self.num_test_clips)
            for crop in range(self.num_test_crops)
        ]

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
        epoch = self.epoch if epoch is None else epoch
        seed = self.seed if self.shuffle else None
        if self.mode == "train":
            return shard_indices(
                len(self.views), self.num_shards, self.shard_index, seed, epoch
            )
        order = np.arange(len(self.views))
        if seed is not None:
            np.random.default_rng((seed, epoch)).shuffle(order)
        records = self._view_records[order]
        return order[records % self.num_shards == self.shard_index]

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
        entry = {
            "path": record.path,
            "reason": f"{type(error).__name__}: {error}",
            "epoch": self.epoch,
            "source": record.source,
        }
        # One short append per line is atomic on POSIX, so threads and
        # worker processes can share the file without a lock.
        with open(self.bad_sample_log, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    @property
    def bad_samples(self):
        """List of `(path, reason)` for every bad sample met so far."""
        return [(entry["path"], entry["reason"]) for entry in self.bad_sample_entries()]

    def bad_sample_entries(self):
        """The full bad-sample log entries (path, reason, epoch, source)."""
        if not os.path.exists(self.bad_sample_log):
            return []
        with open(self.bad_sample_log, encoding="utf-8") as log:
            return [json.loads(line) for line in log if line.strip()]

    def _zero_sample(self, view_index):
        record = self.records[self.views[view_index].record_index]
        size = self.crop_size
        inputs = {"video": np.zeros((self.num_frames, size, size, 3), np.float32)}
        if self.audio_frames is not None:
            intervals = self.num_frames // 2
            inputs["audio"] = np.zeros((self.audio_frames, 128), np.float32)
            inputs["video_times"] = np.zeros((intervals, 2), np.float32)
            inputs["audio_times"] = np.zeros((intervals, 2), np.float32)
        return inputs, record.label

    # === Decoding one view ===

    def _rng(self, view_index):
        if self.mode != "train":
            return None
        return np.random.default_rng((self.seed, self.epoch, view_index))

    def load_view(self, view_index, clip_cache=None):
        """Decodes and transforms one view; returns `(inputs, label)`.

        Args:
            view_index: index into `self.views`.
            clip_cache: optional dict shared by the views of one batch. In
                evaluation the crops of a clip share its frames and audio,
                so they are decoded once.

        Raises:
            VideoDecodeError, AudioDecodeError: for bad files.
        """
        view = self.views[view_index]
        record = self.records[view.record_index]
        rng = self._rng(view_index)
        if rng is None and clip_cache is not None:
            key = (view.record_index, view.clip_index)
            if key not in clip_cache:
                clip_cache.clear()  # views of a clip are adjacent; keep one
                clip_cache[key] = self._decode_clip(view, record, rng)
            frames, audio_inputs = clip_cache[key]
        else:
            frames, audio_inputs = self._decode_clip(view, record, rng)
        if rng is not None:
            video = train_clip_transform(
                frames,
                rng,
                self.crop_size,
                scale=self.crop_scale,
                ratio=self.crop_ratio,
                flip=self.horizontal_flip,
                rand_augment=self.rand_augment,
            )
        else:
            num_crops = self.num_test_crops if self.mode == "test" else 1
            video = test_clip_transform(
                frames, self.crop_size, view.crop_index, num_crops
            )
        return {"video": video, **audio_inputs}, record.label

    def _decode_clip(self, view, record, rng):
        """Sampled uint8 frames of a view and its audio inputs (if any)."""
        with VideoReader(record.path, decoder_threads=self.decoder_threads) as reader:
            first, count = self._segment(reader, record)
            indices = first + sample_frame_indices(
                count,
                self.sampling,
                num_frames=self.num_frames,
                stride=self.frame_stride,
                rng=rng,
                clip_index=view.clip_index,
                num_clips=self.num_test_clips if self.mode == "test" else 1,
            )
            frames = reader.read(indices)
            frame_times = reader.frame_times[indices]
            frame_durations = reader.frame_durations[indices]
            video_span = (
                reader.frame_times[0],
                reader.frame_times[0] + reader.duration,
            )
        audio_inputs = {}
        if self.audio_frames is not None:
            audio_inputs = self._audio_inputs(
                record.path, frame_times, frame_durations, video_span, rng
            )
        return frames, audio_inputs

    def _segment(self, reader, record):
        """First frame index and frame count of the record's segment."""
        if record.start is None and record.end is None:
            return 0, reader.num_frames
        start = -np.inf if record.start is None else record.start
        end = np.inf if record.end is None else record.end
        inside = np.flatnonzero(
            (reader.frame_times >= start) & (reader.frame_times < end)
        )
        if inside.size == 0:
            raise VideoDecodeError(
                f"{record.path}: no frames between {record.start}s and {record.end}s "
                f"(video spans {reader.frame_times[0]:.2f}s to "
                f"{reader.frame_times[-1]:.2f}s). Check {record.source}."
            )
        return int(inside[0]), int(inside.size)

    def _audio_inputs(self, path, frame_times, frame_durations, video_span, rng):
        sample_rate = fbank_lib.SAMPLE_RATE
        hop = fbank_lib.samples_per_hop(sample_rate)
        window_seconds = self.audio_frames * hop / sample_rate
        num_samples = fbank_lib.num_samples_for_frames(self.audio_frames, sample_rate)
        clip_start = float(frame_times[0])
        clip_end = float(frame_times[-1] + frame_durations[-1])
        try:
            reader = AudioReader(path, sample_rate=sample_rate)
        except AudioDecodeError as error:
            if self.missing_audio != "silence" or "has no audio stream" not in str(
                error
            ):
                raise
            reader = None
        if reader is None:
            start = audio_window_start(
                clip_start, clip_end, window_seconds, *video_span
            )
            waveform = np.zeros(num_samples, np.float32)
        else:
            with reader:
                start = audio_window_start(
                    clip_start,
                    clip_end,
                    window_seconds,
                    reader.start_time,
                    reader.end_time,
                )
                waveform = reader.read(start, num_samples)
                # Features over real audio only, padded afterwards like AST.
                waveform = waveform[: reader.samples_inside(start, num_samples)]
        features = fbank_lib.pad_or_crop_frames(
            fbank_lib.kaldi_fbank(waveform, sample_rate), self.audio_frames
        )
        if rng is not None and self.audio_augment is not None:
            features = self.audio_augment.mask(features, rng)
        features = fbank_lib.normalize_fbank(features)
        if rng is not None and self.audio_augment is not None:
            features = self.audio_augment.perturb(features, rng)
        intervals = self.num_frames // 2
        return {
            "audio": features,
            "video_times": video_time_intervals(frame_times, frame_durations, start),
            "audio_times": audio_time_intervals(window_seconds, intervals),
        }

    # === Evaluation helpers ===

    @property
    def view_record_indices(self):
        """Video index of each view, in the order `predict` returns them.

        Indexes `labels`. In a sharded evaluation dataset both cover this
        shard's videos only (`records[shard_index::num_shards]`).
        """
        records = self._view_records[self.epoch_order()]
        if self.mode == "train":
            return records
        return (records - self.shard_index) // self.num_shards

    @property
    def labels(self):
        """Labels of the videos (one per video, not per view); see
        `view_record_indices`."""
        records = self.records
        if self.mode != "train":
            records = records[self.shard_index :: self.num_shards]
        return [record.label for record in records]


def _remove_owned_file(path, owner_pid):
    if os.getpid() == owner_pid and os.path.exists(path):
        os.remove(path)


class BadSampleReport(keras.callbacks.Callback):
    """Prints the bad samples each dataset met during the epoch.

    Args:
        *datasets: `VideoDataset` objects to watch (training and validation).
        print_fn: where the report goes (default `print`).

    Example:

    >>> model.fit(train, validation_data=val,
    ...           callbacks=[BadSampleReport(train, val)])  # doctest: +SKIP
    Epoch 1: skipped 1 bad sample(s) from 1 file(s) in training data:
      videos/broken.mp4: VideoDecodeError: videos/broken.mp4: file is empty ...
    """

    def __init__(self, *datasets, print_fn=print):
        super().__init__()
        self.datasets = datasets
        self.print_fn = print_fn
        self._reported = [0] * len(datasets)
        self.history = []  # (epoch, dataset index, path, reason)

    def on_epoch_end(self, epoch, logs=None):
        for position, dataset in enumerate(self.datasets):
            entries = dataset.bad_sample_entries()
            new = entries[self._reported[position] :]
            self._reported[position] = len(entries)
            if not new:
                continue
            # One line per file: a file is met again by every view or
            # substitution attempt that touches it.
            by_path = {}
            for entry in new:
                by_path.setdefault(entry["path"], []).append(entry["reason"])
                self.history.append((epoch, position, entry["path"], entry["reason"]))
            kind = "training" if dataset.mode == "train" else dataset.mode
            lines = [
                f"Epoch {epoch + 1}: skipped {len(new)} bad sample(s) from "
                f"{len(by_path)} file(s) in {kind} data:"
            ]
            for path, reasons in by_path.items():
                times = f" (x{len(reasons)})" if len(reasons) > 1 else ""
                lines.append(f"  {path}{times}: {reasons[-1]}")
            self.print_fn("\n".join(lines))
