"""Which views a dataset has, the order an epoch visits them, and shards.

A view is one element of a dataset: a record, a temporal clip of it and a
spatial crop of that clip. Training and validation have one view per record;
testing has `clips × crops` views per record, adjacent in record order so
their softmax can be averaged per video. `ViewSampler` knows nothing about
files: it deals in indices, and every random number it hands out comes from
a generator seeded by `(seed, epoch[, view])`, so an epoch is the same
whatever the number of workers or the order in which they finish.
"""

import dataclasses

import numpy as np

MODES = ("train", "val", "test")


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
    check_shard(num_shards, shard_index)
    order = np.arange(num_samples)
    if seed is not None:
        np.random.default_rng((seed, epoch)).shuffle(order)
    order = order[: num_samples - num_samples % num_shards]
    return order[shard_index::num_shards]


def check_shard(num_shards, shard_index):
    """Raises `ValueError` unless `0 <= shard_index < num_shards`."""
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


class ViewSampler:
    """The views of a set of records and the order each epoch visits them.

    Args:
        num_records: number of records (videos or annotated segments).
        mode: `"train"` (one view per record, random clip and crop, shuffled
            every epoch), `"val"` (one centre view per record) or `"test"`
            (`num_test_clips × num_test_crops` views per record, in record
            order).
        num_test_clips: temporal views per record in test mode.
        num_test_crops: spatial crops per clip in test mode.
        shuffle: shuffle the views every epoch (default: training only).
        seed: seed of the shuffle order and of every view's random numbers.
        num_shards: data-parallel processes that split the views (1 = no
            sharding).
        shard_index: this process's shard. In training every shard takes
            every `num_shards`-th view of the same shuffled epoch order after
            dropping the remainder (`shard_indices`); in evaluation record
            `i` goes, with all its views, to shard `i % num_shards`.

    Example:
    ```python
    sampler = ViewSampler(4, mode="test", num_test_clips=2, num_test_crops=3)
    len(sampler.views)                # 24
    sampler.views[4]                  # View(record_index=0, clip_index=1, crop_index=1)
    sampler.epoch_order(epoch=0)[:3]  # [0, 1, 2]: evaluation keeps record order
    ViewSampler(4, seed=1).rng(view_index=2, epoch=0)  # training: a Generator
    ```
    """

    def __init__(
        self,
        num_records,
        mode="train",
        num_test_clips=2,
        num_test_crops=3,
        shuffle=None,
        seed=0,
        num_shards=1,
        shard_index=0,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
        check_shard(num_shards, shard_index)
        self.num_records = num_records
        self.mode = mode
        self.num_test_clips = num_test_clips
        self.num_test_crops = num_test_crops
        self.shuffle = mode == "train" if shuffle is None else shuffle
        self.seed = seed
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.views = self._make_views()
        self._view_records = np.asarray([v.record_index for v in self.views], np.int64)

    @property
    def training(self):
        return self.mode == "train"

    @property
    def num_clips(self):
        """Temporal views per record (the decoder's `num_clips`)."""
        return self.num_test_clips if self.mode == "test" else 1

    @property
    def num_crops(self):
        """Spatial views per clip (the transform's `num_crops`)."""
        return self.num_test_crops if self.mode == "test" else 1

    def _make_views(self):
        if self.mode != "test":
            return [View(i) for i in range(self.num_records)]
        return [
            View(record, clip, crop)
            for record in range(self.num_records)
            for clip in range(self.num_test_clips)
            for crop in range(self.num_test_crops)
        ]

    def epoch_order(self, epoch):
        """Indices of this shard's views in the order `epoch` visits them."""
        seed = self.seed if self.shuffle else None
        if self.training:
            return shard_indices(
                len(self.views), self.num_shards, self.shard_index, seed, epoch
            )
        order = np.arange(len(self.views))
        if seed is not None:
            np.random.default_rng((seed, epoch)).shuffle(order)
        records = self._view_records[order]
        return order[records % self.num_shards == self.shard_index]

    def rng(self, view_index, epoch):
        """The generator of a training view's random draws (`None` otherwise).

        Seeded by `(seed, epoch, view_index)`, so a view gets the same clip,
        crop and augmentation in every worker and in a resumed run.
        """
        if not self.training:
            return None
        return np.random.default_rng((self.seed, epoch, view_index))

    def view_record_indices(self, epoch):
        """Record index of each view in `epoch_order(epoch)`.

        In evaluation the indices count this shard's records only
        (`records[shard_index::num_shards]`, see `shard_records`).
        """
        records = self._view_records[self.epoch_order(epoch)]
        if self.training:
            return records
        return (records - self.shard_index) // self.num_shards

    def shard_records(self, records):
        """The records this shard sees (all of them in training)."""
        if self.training:
            return list(records)
        return list(records)[self.shard_index :: self.num_shards]
