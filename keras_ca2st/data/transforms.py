"""Clip-consistent spatial transforms, normalisation and audio augmentation.

Everything here is numpy, so it runs the same under every Keras backend and
inside data-loader worker processes. Frames are `(time, height, width, 3)`
arrays; every random decision is drawn once per clip from an explicit
`numpy.random.Generator` and applied to all frames, so a clip stays a
coherent video (the same crop, the same flip).
"""

import math

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The training random resized crop of the reference (SPEC section 10).
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)


# === Resizing ===


def _resample_taps(in_size, out_size, antialias):
    """Source indices and weights `(out_size, taps)` for 1-D linear resampling.

    Without antialiasing this is `torch.nn.functional.interpolate(...,
    mode="bilinear", align_corners=False)`: two taps around the half-pixel
    source position. With antialiasing the triangle filter is stretched by
    the downscale factor, as PIL does, so shrinking does not alias.
    """
    scale = in_size / out_size
    centres = (np.arange(out_size) + 0.5) * scale
    if not antialias or scale <= 1.0:
        source = np.maximum(centres - 0.5, 0.0)
        left = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
        right = np.minimum(left + 1, in_size - 1)
        fraction = source - left
        indices = np.stack([left, right], axis=1)
        weights = np.stack([1.0 - fraction, fraction], axis=1)
        return indices, weights
    support = scale  # triangle of half-width 1, stretched by the scale
    taps = int(math.ceil(support)) * 2 + 1
    first = np.floor(centres - support + 0.5).astype(np.int64)
    indices = first[:, None] + np.arange(taps)[None, :]
    distance = (indices + 0.5 - centres[:, None]) / scale
    weights = np.maximum(0.0, 1.0 - np.abs(distance))
    valid = (indices >= 0) & (indices < in_size)
    weights = np.where(valid, weights, 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(indices, 0, in_size - 1), weights


def _resample_axis(array, out_size, axis, antialias):
    indices, weights = _resample_taps(array.shape[axis], out_size, antialias)
    shape = [1] * array.ndim
    shape[axis] = out_size
    result = np.zeros(
        array.shape[:axis] + (out_size,) + array.shape[axis + 1 :], np.float32
    )
    for tap in range(indices.shape[1]):
        taken = np.take(array, indices[:, tap], axis=axis)
        result += taken * weights[:, tap].reshape(shape).astype(np.float32)
    return result


def resize(frames, height, width, antialias=False):
    """Bilinear resize of `(..., H, W, C)` frames to `(..., height, width, C)`.

    Args:
        frames: uint8 or float array with height and width on axes -3, -2.
        height: output height.
        width: output width.
        antialias: widen the filter when shrinking (PIL-like); off matches
            the reference's `F.interpolate(mode="bilinear")`.

    Returns:
        float32 array in the input's value range.

    Example:

    >>> import numpy as np
    >>> resize(np.zeros((2, 48, 64, 3), np.uint8), 24, 32).shape
    (2, 24, 32, 3)
    """
    frames = np.asarray(frames)
    if frames.shape[-3:-1] == (height, width):
        return frames.astype(np.float32)
    resized = _resample_axis(
        frames.astype(np.float32), height, -3 % frames.ndim, antialias
    )
    return _resample_axis(resized, width, -2 % frames.ndim, antialias)


def short_side_size(height, width, size):
    """Output `(height, width)` with the short side `size`, aspect kept.

    Rounds the long side down like the reference's `Resize`.

    Example:

    >>> short_side_size(48, 64, 24)
    (24, 32)
    """
    if height <= width:
        return size, int(width * size / height)
    return int(height * size / width), size


def short_side_resize(frames, size, antialias=True):
    """Resizes frames so the shorter side is `size` pixels.

    Example:

    >>> import numpy as np
    >>> short_side_resize(np.zeros((1, 48, 64, 3)), 24).shape
    (1, 24, 32, 3)
    """
    height, width = frames.shape[-3:-1]
    return resize(frames, *short_side_size(height, width, size), antialias=antialias)


# === Crops and flips ===


def random_resized_crop_box(height, width, rng, scale=CROP_SCALE, ratio=CROP_RATIO):
    """Inception-style random crop box `(top, left, crop_height, crop_width)`.

    Draws an area fraction uniformly in `scale` and a log-uniform aspect
    ratio in `ratio`, up to 10 times, as the reference (SlowFast's
    `random_resized_crop`); falls back to a centre crop with the aspect ratio
    clamped to `ratio`.

    Example:

    >>> import numpy as np
    >>> top, left, h, w = random_resized_crop_box(48, 64, np.random.default_rng(0))
    >>> 0 < h <= 48 and 0 < w <= 64
    True
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_width = int(round(math.sqrt(target_area * aspect)))
        crop_height = int(round(math.sqrt(target_area / aspect)))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(rng.integers(0, height - crop_height + 1))
            left = int(rng.integers(0, width - crop_width + 1))
            return top, left, crop_height, crop_width
    aspect = width / height
    if aspect < min(ratio):
        crop_width, crop_height = width, int(round(width / min(ratio)))
    elif aspect > max(ratio):
        crop_height, crop_width = height, int(round(height * max(ratio)))
    else:
        crop_width, crop_height = width, height
    return (
        (height - crop_height) // 2,
        (width - crop_width) // 2,
        crop_height,
        crop_width,
    )


def uniform_crop_box(height, width, size, crop_index, num_crops):
    """Test-time crop `crop_index` of `num_crops` square crops along the long side.

    Crops start at `int(k * (long - size) / (num_crops - 1))` along the long
    side and are centred on the short side; one crop is the centre crop.

    Example:

    >>> uniform_crop_box(24, 40, 24, crop_index=2, num_crops=3)
    (0, 16, 24, 24)
    """
    if not 0 <= crop_index < num_crops:
        raise ValueError(f"crop_index must be in [0, {num_crops}); got {crop_index}.")
    size_h, size_w = min(size, height), min(size, width)
    if num_crops == 1:
        return (height - size_h) // 2, (width - size_w) // 2, size_h, size_w
    if height >= width:
        step = (height - size_h) / (num_crops - 1)
        return int(crop_index * step), (width - size_w) // 2, size_h, size_w
    step = (width - size_w) / (num_crops - 1)
    return (height - size_h) // 2, int(crop_index * step), size_h, size_w


def crop(frames, box):
    """Crops `(..., H, W, C)` frames to `box = (top, left, height, width)`."""
    top, left, height, width = box
    return frames[..., top : top + height, left : left + width, :]


def horizontal_flip(frames):
    """Mirrors every frame left-right."""
    return frames[..., ::-1, :]


def normalize(frames, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8-range frames to float32 `(x / 255 - mean) / std` per channel.

    Example:

    >>> import numpy as np
    >>> white = np.full((1, 1, 1, 3), 255, np.uint8)
    >>> normalize(white).astype(np.float64).round(3).ravel().tolist()
    [2.249, 2.429, 2.64]
    """
    mean = np.asarray(mean, np.float32) * 255.0
    std = np.asarray(std, np.float32) * 255.0
    return ((np.asarray(frames, np.float32) - mean) / std).astype(np.float32)


# === Clip pipelines ===


def train_clip_transform(
    frames,
    rng,
    crop_size,
    scale=CROP_SCALE,
    ratio=CROP_RATIO,
    flip=True,
    rand_augment=None,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
):
    """Training view of a clip: RandAugment, random resized crop, flip, normalise.

    The order follows the reference: RandAugment on the decoded frames, then
    the crop and flip, then ImageNet normalisation. One set of random
    parameters is used for every frame.

    Args:
        frames: uint8 `(T, H, W, 3)`.
        rng: `numpy.random.Generator`.
        crop_size: output side length.
        scale: area range of the random resized crop.
        ratio: aspect ratio range of the random resized crop.
        flip: random horizontal flip with probability 0.5 (turn off for
            datasets whose labels depend on left/right, such as SSV2).
        rand_augment: optional `RandAugment` instance.
        mean, std: per-channel normalisation (RGB in [0, 1]; ImageNet's).

    Returns:
        float32 `(T, crop_size, crop_size, 3)`, normalised.

    Example:

    >>> import numpy as np
    >>> clip = np.zeros((16, 48, 64, 3), np.uint8)
    >>> train_clip_transform(clip, np.random.default_rng(0), 32).shape
    (16, 32, 32, 3)
    """
    if rand_augment is not None:
        frames = rand_augment(frames, rng)
    box = random_resized_crop_box(*frames.shape[1:3], rng, scale=scale, ratio=ratio)
    frames = resize(crop(frames, box), crop_size, crop_size)
    if flip and rng.random() < 0.5:
        frames = horizontal_flip(frames)
    return normalize(frames, mean, std)


def test_clip_transform(
    frames, crop_size, crop_index=0, num_crops=1, mean=IMAGENET_MEAN, std=IMAGENET_STD
):
    """Test view: short side to `crop_size`, crop `crop_index` of `num_crops`.

    Normalised with `mean` / `std` (RGB in [0, 1]; ImageNet's by default).

    Example:

    >>> import numpy as np
    >>> clip = np.zeros((16, 48, 64, 3), np.uint8)
    >>> test_clip_transform(clip, 32, crop_index=1, num_crops=3).shape
    (16, 32, 32, 3)
    """
    frames = short_side_resize(frames, crop_size)
    box = uniform_crop_box(*frames.shape[1:3], crop_size, crop_index, num_crops)
    return normalize(crop(frames, box), mean, std)


# === Audio ===


class AudioAugment:
    """SpecAugment masks, noise and time shift for AST features.

    Follows the AST recipe: frequency and time masks on the raw log-mel
    features (masked values become 0, like torchaudio's masking), then, after
    normalisation, uniform noise scaled by a random factor up to
    `noise_scale` and a random circular shift in time.

    Args:
        freq_mask: maximum frequency-mask width in mel bins (0 disables).
        time_mask: maximum time-mask width in frames (0 disables).
        noise_scale: maximum noise amplitude (AST uses 0.1; 0 disables).
        max_time_shift: maximum circular time shift in frames (0 disables).

    Example:

    >>> import numpy as np
    >>> augment = AudioAugment(freq_mask=24, time_mask=20)
    >>> raw = augment.mask(np.ones((100, 128)), np.random.default_rng(0))
    >>> bool((raw == 0).any())
    True
    """

    def __init__(self, freq_mask=48, time_mask=192, noise_scale=0.1, max_time_shift=10):
        self.freq_mask = freq_mask
        self.time_mask = time_mask
        self.noise_scale = noise_scale
        self.max_time_shift = max_time_shift

    @staticmethod
    def _mask_axis(features, max_width, axis, rng):
        # torchaudio's mask_along_axis: width ~ U[0, max_width), start ~
        # U[0, size - width), both floored.
        size = features.shape[axis]
        width = int(rng.uniform(0, min(max_width, size)))
        start = int(rng.uniform(0, size - width))
        index = [slice(None)] * features.ndim
        index[axis] = slice(start, start + width)
        features[tuple(index)] = 0.0
        return features

    def mask(self, raw_features, rng):
        """Applies the frequency then the time mask to `(time, mel)` features."""
        features = np.array(raw_features, dtype=np.float32, copy=True)
        if self.freq_mask > 0:
            features = self._mask_axis(features, self.freq_mask, 1, rng)
        if self.time_mask > 0:
            features = self._mask_axis(features, self.time_mask, 0, rng)
        return features

    def perturb(self, normalized_features, rng):
        """Adds noise and shifts normalised `(time, mel)` features in time."""
        features = np.asarray(normalized_features, dtype=np.float32)
        if self.noise_scale > 0:
            strength = rng.random() * self.noise_scale
            features = features + rng.random(features.shape, np.float32) * strength
        if self.max_time_shift > 0:
            shift = int(rng.integers(-self.max_time_shift, self.max_time_shift))
            features = np.roll(features, shift, axis=0)
        return features.astype(np.float32)

    def get_config(self):
        return {
            "freq_mask": self.freq_mask,
            "time_mask": self.time_mask,
            "noise_scale": self.noise_scale,
            "max_time_shift": self.max_time_shift,
        }

    def __repr__(self):
        arguments = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"AudioAugment({arguments})"
