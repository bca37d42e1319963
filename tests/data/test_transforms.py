"""Spatial transforms, RandAugment, audio augmentation and mixup."""

import numpy as np
import pytest

from keras_ca2st.data import (
    AudioAugment,
    Mixup,
    RandAugment,
    smooth_one_hot,
    transforms,
)
from keras_ca2st.data import rand_augment as ra


def _random_clip(num_frames=4, height=24, width=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (num_frames, height, width, 3), np.uint8)


# === Resizing ===


def test_bilinear_resize_is_exact_on_linear_ramps():
    ramp = np.broadcast_to(np.arange(16, dtype=np.float32)[None, :, None], (8, 16, 1))
    up = transforms.resize(ramp[None], 8, 32)[0, 0, :, 0]
    # Half-pixel centres: output x maps to (x + 0.5) / 2 - 0.5, clamped at 0.
    expected = np.clip((np.arange(32) + 0.5) / 2 - 0.5, 0, 15)
    np.testing.assert_allclose(up, expected, atol=1e-5)


def test_downscale_by_two_averages_pairs_without_antialias():
    image = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    half = transforms.resize(image, 4, 4)
    pairs = image.reshape(1, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(half, pairs, atol=1e-4)


def test_antialiased_downscale_uses_a_wider_triangle():
    row = np.zeros((1, 1, 8, 1), np.float32)
    row[0, 0, 3] = 1.0  # an impulse at x = 3
    half = transforms.resize(row, 1, 4, antialias=True)[0, 0, :, 0]
    # Output pixel 1 (source centre 3.0) sees x=3 with weight 0.75 / 2.
    np.testing.assert_allclose(half, [0.0, 0.375, 0.125, 0.0], atol=1e-6)
    assert transforms.resize(row, 1, 4)[0, 0, :, 0].tolist() == [0.0, 0.5, 0.0, 0.0]


def test_short_side_resize_keeps_the_aspect_ratio():
    frames = np.zeros((2, 48, 64, 3), np.uint8)
    assert transforms.short_side_resize(frames, 24).shape == (2, 24, 32, 3)
    tall = np.zeros((2, 64, 48, 3), np.uint8)
    assert transforms.short_side_resize(tall, 24).shape == (2, 32, 24, 3)


# === Crops, flips, normalisation ===


def test_three_test_crops_span_the_long_side():
    boxes = [transforms.uniform_crop_box(24, 40, 24, k, 3) for k in range(3)]
    assert boxes == [(0, 0, 24, 24), (0, 8, 24, 24), (0, 16, 24, 24)]
    boxes = [transforms.uniform_crop_box(40, 24, 24, k, 3) for k in range(3)]
    assert [box[0] for box in boxes] == [0, 8, 16]
    assert transforms.uniform_crop_box(24, 40, 24, 0, 1) == (0, 8, 24, 24)


def test_random_resized_crop_box_respects_scale_and_ratio():
    rng = np.random.default_rng(0)
    areas, ratios = [], []
    for _ in range(300):
        top, left, h, w = transforms.random_resized_crop_box(120, 160, rng)
        assert 0 <= top and top + h <= 120 and 0 <= left and left + w <= 160
        areas.append(h * w / (120 * 160))
        ratios.append(w / h)
    assert 0.07 <= min(areas) and max(areas) <= 1.0
    assert min(areas) < 0.2 and max(areas) > 0.8, "covers the scale range"
    assert 0.7 <= min(ratios) and max(ratios) <= 1.4


def test_train_transform_is_consistent_across_frames():
    # Identical frames must stay identical: one crop, one flip, one RandAugment
    # draw for the whole clip.
    frame = _random_clip(1, 48, 64)[0]
    clip = np.stack([frame] * 8)
    for seed in range(10):
        out = transforms.train_clip_transform(
            clip, np.random.default_rng(seed), 32, rand_augment=RandAugment(num_ops=3)
        )
        assert out.shape == (8, 32, 32, 3) and out.dtype == np.float32
        assert np.all(out == out[:1])


def test_flip_happens_about_half_the_time_and_can_be_disabled():
    ramp = np.broadcast_to(
        np.arange(32, dtype=np.uint8)[None, None, :, None] * 8, (2, 32, 32, 3)
    ).copy()
    flipped = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        out = transforms.train_clip_transform(
            ramp, rng, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0)
        )
        flipped.append(out[0, 0, 0, 0] > out[0, 0, -1, 0])
        kept = transforms.train_clip_transform(
            ramp,
            np.random.default_rng(seed),
            32,
            scale=(1.0, 1.0),
            ratio=(1.0, 1.0),
            flip=False,
        )
        assert kept[0, 0, 0, 0] < kept[0, 0, -1, 0]
    assert 30 < sum(flipped) < 70


def test_normalisation_uses_imagenet_statistics():
    frames = np.zeros((1, 1, 2, 3), np.uint8)
    frames[0, 0, 1] = (124, 116, 104)  # ~ mean * 255
    out = transforms.normalize(frames)
    np.testing.assert_allclose(
        out[0, 0, 0], [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], atol=1e-5
    )
    np.testing.assert_allclose(out[0, 0, 1], 0.0, atol=0.01)


def test_test_transform_picks_the_requested_crop():
    frames = np.zeros((1, 24, 72, 3), np.uint8)
    frames[:, :, :24] = 255  # left third white
    left = transforms.test_clip_transform(frames, 24, crop_index=0, num_crops=3)
    right = transforms.test_clip_transform(frames, 24, crop_index=2, num_crops=3)
    assert left.mean() > 2.0 and right.mean() < -1.5


# === RandAugment operations ===


def test_pixel_operations_on_known_values():
    values = np.array([[[[0, 100, 200]]]], np.uint8)
    assert ra.invert(values).ravel().tolist() == [255, 155, 55]
    assert ra.posterize(values, 2).ravel().tolist() == [0, 64, 192]
    assert ra.solarize(values, 128).ravel().tolist() == [0, 100, 55]
    assert ra.solarize_add(values, 50).ravel().tolist() == [50, 150, 200]
    assert ra.brightness(values, 0.5).ravel().tolist() == [0, 50, 100]


def test_auto_contrast_and_equalize_stretch_each_channel():
    rng = np.random.default_rng(0)
    frames = rng.integers(100, 150, (2, 64, 64, 3), np.uint8)
    stretched = ra.auto_contrast(frames)
    assert stretched.min(axis=(1, 2)).max() == 0
    assert stretched.max(axis=(1, 2)).min() == 255
    equalised = ra.equalize(frames)
    # Equalisation spreads 50 grey levels across (nearly) the full range and
    # keeps their order.
    assert equalised.max() >= 240 and equalised.min() <= 10
    flat = frames[0, ..., 0].ravel()
    order = np.argsort(flat, kind="stable")
    assert np.all(np.diff(equalised[0, ..., 0].ravel()[order].astype(int)) >= 0)


def test_geometric_operations():
    frame = np.zeros((1, 9, 9, 3), np.uint8)
    frame[0, 4, 6] = 255  # right of centre
    rotated = ra.rotate(frame, 90)  # counter-clockwise: right goes up
    assert np.unravel_index(rotated[0, ..., 0].argmax(), (9, 9)) == (2, 4)
    shifted = ra.translate_x(frame, 2.0)  # samples 2 px to the right: moves left
    assert shifted[0, 4, 4, 0] == 255
    assert shifted[0, 4, 8, 0] == 128  # uncovered pixels are filled with grey
    assert np.array_equal(ra.shear_x(frame, 0.0), frame)


def test_color_and_contrast_at_zero_factor():
    frames = _random_clip()
    gray = ra.color(frames, 0.0)
    assert np.all(np.abs(gray[..., 0].astype(int) - gray[..., 2]) <= 1)
    flat = ra.contrast(frames, 0.0)
    assert np.all(flat.reshape(flat.shape[0], -1).std(axis=1) < 1.0)


def test_rand_augment_draw_follows_the_policy():
    augment = RandAugment(num_ops=4, magnitude=7, magnitude_std=0.5, prob=0.5)
    counts = []
    for seed in range(400):
        plan = augment.draw(np.random.default_rng(seed))
        counts.append(len(plan))
        for name, level in plan:
            assert name in ra.OPERATION_NAMES and 0.0 <= level <= 10.0
    assert 1.7 < np.mean(counts) < 2.3  # 4 ops x probability 0.5
    same = RandAugment(num_ops=2, magnitude=9, magnitude_std=0, prob=1.0)
    assert all(level == 9 for _, level in same.draw(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="Unknown"):
        RandAugment(operations=["Blur"])


def test_rand_augment_is_reproducible_and_changes_pixels():
    clip = _random_clip()
    augment = RandAugment(num_ops=4, magnitude=9, prob=1.0)
    first = augment(clip, np.random.default_rng(5))
    again = augment(clip, np.random.default_rng(5))
    assert np.array_equal(first, again)
    assert first.dtype == np.uint8 and first.shape == clip.shape
    assert not np.array_equal(first, clip)


# === Audio augmentation ===


def test_audio_masks_zero_a_band_and_a_time_span():
    augment = AudioAugment(freq_mask=30, time_mask=40, noise_scale=0, max_time_shift=0)
    features = np.full((200, 128), 5.0, np.float32)
    masked_any = False
    for seed in range(20):
        masked = augment.mask(features, np.random.default_rng(seed))
        zero = masked == 0.0
        rows = np.flatnonzero(zero.all(axis=1))
        cols = np.flatnonzero(zero.all(axis=0))
        assert rows.size < 40 and cols.size < 30
        if rows.size:
            assert np.all(np.diff(rows) == 1), "one contiguous time mask"
        masked_any |= rows.size > 0 and cols.size > 0
    assert masked_any
    assert np.all(features == 5.0), "input not modified"


def test_audio_noise_and_shift():
    augment = AudioAugment(freq_mask=0, time_mask=0, noise_scale=0.1, max_time_shift=10)
    features = np.tile(np.arange(100, dtype=np.float32)[:, None], (1, 4))
    out = augment.perturb(features, np.random.default_rng(3))
    noise_free = np.round(out[:, 0])
    shift = int(noise_free[50] - 50)
    assert -10 <= shift <= 10
    residual = out - np.roll(features, -shift, axis=0)
    assert np.all((residual >= 0) & (residual <= 0.1))


# === Mixup ===


def test_smooth_one_hot_matches_timm():
    targets = smooth_one_hot([2, 0], 4, smoothing=0.1)
    np.testing.assert_allclose(targets[0], [0.025, 0.025, 0.925, 0.025])
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)


def test_mixup_mixes_inputs_and_targets_with_one_lambda():
    mixup = Mixup(num_classes=3, alpha=0.8, prob=1.0, label_smoothing=0.0)
    video = np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1, 1) * np.ones(
        (4, 2, 2, 2, 3)
    )
    audio = np.arange(4, dtype=np.float32).reshape(4, 1, 1) * np.ones((4, 5, 128))
    times = np.ones((4, 8, 2), np.float32)
    labels = np.array([0, 1, 2, 1])
    inputs = {"video": video, "audio": audio, "video_times": times}
    mixed, targets, lam = mixup(inputs, labels, np.random.default_rng(0))
    assert 0 < lam < 1
    np.testing.assert_allclose(mixed["video"][0], lam * 0 + (1 - lam) * 3, atol=1e-5)
    np.testing.assert_allclose(mixed["audio"][1], lam * 1 + (1 - lam) * 2, atol=1e-5)
    assert mixed["video_times"] is times
    np.testing.assert_allclose(targets[0], [lam, 1 - lam, 0], atol=1e-6)


def test_mixup_probability_zero_still_smooths_labels():
    mixup = Mixup(num_classes=5, prob=0.0, label_smoothing=0.1)
    video = np.random.default_rng(0).normal(size=(2, 2, 4, 4, 3)).astype(np.float32)
    mixed, targets, lam = mixup(
        {"video": video}, np.array([1, 4]), np.random.default_rng(0)
    )
    assert lam == 1.0
    assert np.array_equal(mixed["video"], video)
    np.testing.assert_allclose(targets[1], [0.02, 0.02, 0.02, 0.02, 0.92], atol=1e-6)


def test_mixup_two_targets_for_epic_kitchens():
    mixup = Mixup(num_classes={"verb": 4, "noun": 6}, prob=1.0, label_smoothing=0.0)
    labels = {"verb": np.array([0, 3]), "noun": np.array([5, 1])}
    _, targets, lam = mixup(
        {"video": np.zeros((2, 1, 1, 1, 3))}, labels, np.random.default_rng(1)
    )
    assert set(targets) == {"verb", "noun"}
    np.testing.assert_allclose(targets["verb"][0], [lam, 0, 0, 1 - lam], atol=1e-6)
    np.testing.assert_allclose(
        targets["noun"][0], [0, 1 - lam, 0, 0, 0, lam], atol=1e-6
    )
