"""`ViewSampler`: views per mode, epoch orders, per-view generators, shards."""

import numpy as np
import pytest

from keras_ca2st.data import View, ViewSampler, shard_indices


def test_views_per_mode():
    assert ViewSampler(3, mode="train").views == [View(0), View(1), View(2)]
    assert ViewSampler(3, mode="val").views == [View(0), View(1), View(2)]
    test = ViewSampler(2, mode="test", num_test_clips=2, num_test_crops=3)
    # Views of one record are adjacent, clip-major: the crops of a clip follow
    # each other, so a clip is decoded once for all of them.
    assert test.views == [
        View(record, clip, crop)
        for record in range(2)
        for clip in range(2)
        for crop in range(3)
    ]
    assert (test.num_clips, test.num_crops) == (2, 3)
    assert (ViewSampler(2, mode="val").num_clips, ViewSampler(2).num_crops) == (1, 1)


def test_training_order_is_a_seeded_shuffle_of_each_epoch():
    sampler = ViewSampler(50, seed=7)
    first, again = sampler.epoch_order(3), ViewSampler(50, seed=7).epoch_order(3)
    np.testing.assert_array_equal(first, again)
    assert sorted(first.tolist()) == list(range(50))
    assert first.tolist() != sampler.epoch_order(4).tolist()
    assert first.tolist() != ViewSampler(50, seed=8).epoch_order(3).tolist()
    # Evaluation keeps record order unless asked to shuffle.
    assert ViewSampler(5, mode="val").epoch_order(3).tolist() == [0, 1, 2, 3, 4]
    shuffled = ViewSampler(5, mode="val", shuffle=True, seed=7).epoch_order(3)
    assert sorted(shuffled.tolist()) == [0, 1, 2, 3, 4]
    assert shuffled.tolist() != [0, 1, 2, 3, 4]


def test_each_training_view_has_its_own_reproducible_generator():
    sampler = ViewSampler(4, seed=1)
    draw = sampler.rng(view_index=2, epoch=5).random(3)
    np.testing.assert_array_equal(draw, sampler.rng(2, 5).random(3))
    for other in (sampler.rng(3, 5), sampler.rng(2, 6), ViewSampler(4).rng(2, 5)):
        assert not np.array_equal(draw, other.random(3))
    assert ViewSampler(4, mode="test").rng(2, 5) is None  # evaluation: no draws


def test_training_shards_together_give_the_unsharded_order():
    full = ViewSampler(11, seed=2)
    shards = [ViewSampler(11, seed=2, num_shards=2, shard_index=i) for i in range(2)]
    orders = [shard.epoch_order(1) for shard in shards]
    assert [len(order) for order in orders] == [5, 5]  # the 11th is the remainder
    interleaved = np.stack(orders, axis=1).ravel()
    np.testing.assert_array_equal(interleaved, full.epoch_order(1)[:10])
    np.testing.assert_array_equal(orders[1], shard_indices(11, 2, 1, seed=2, epoch=1))


def test_evaluation_shards_keep_each_record_whole():
    shards = [
        ViewSampler(
            5,
            mode="test",
            num_test_clips=2,
            num_test_crops=1,
            num_shards=2,
            shard_index=i,
        )
        for i in range(2)
    ]
    records = ["a", "b", "c", "d", "e"]
    assert [shard.shard_records(records) for shard in shards] == [
        ["a", "c", "e"],
        ["b", "d"],
    ]
    assert shards[0].epoch_order(0).tolist() == [0, 1, 4, 5, 8, 9]
    # Indices into this shard's records, one per view.
    assert shards[1].view_record_indices(0).tolist() == [0, 0, 1, 1]


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="mode must be one of"):
        ViewSampler(3, mode="eval")
    with pytest.raises(ValueError, match="shard_index"):
        ViewSampler(3, num_shards=2, shard_index=2)
