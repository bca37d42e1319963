"""RandAugment for video clips, in numpy, with one draw per clip.

RandAugment (Cubuk et al., https://arxiv.org/abs/1909.13719) applies `n`
operations drawn at random, each with magnitude `m` out of 10. The CAST and
VideoMAE reference code uses timm's "rand-m7-n4-mstd0.5-inc1" policy on a list
of PIL frames: the operations, their application coin flips and their
magnitudes are drawn once and applied to every frame. This module reproduces
that policy (the "increasing" operation set, each operation applied with
probability 0.5, magnitude jittered with a Gaussian of std `magnitude_std`)
without PIL, so it runs in any worker under any Keras backend.

Histogram-based operations (auto-contrast, equalise) use each frame's own
histogram, as the per-frame PIL calls of the reference do; the parameters are
still shared by the whole clip.
"""

import math

import numpy as np

_MAX_LEVEL = 10.0
_FILL = 128  # timm fills uncovered pixels with mid grey
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # PIL "L" mode


def _to_uint8(frames):
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def _grayscale(frames):
    return frames.astype(np.float32) @ _GRAY_WEIGHTS


def _blend(degenerate, frames, factor):
    # PIL ImageEnhance: out = degenerate + factor * (image - degenerate).
    frames = frames.astype(np.float32)
    return _to_uint8(degenerate + factor * (frames - degenerate))


# === Pixel operations (frames: uint8 (T, H, W, 3)) ===


def auto_contrast(frames):
    """Stretches each frame's channels to the full [0, 255] range."""
    low = frames.min(axis=(1, 2), keepdims=True).astype(np.float32)
    high = frames.max(axis=(1, 2), keepdims=True).astype(np.float32)
    span = high - low
    scale = np.where(span > 0, 255.0 / np.maximum(span, 1.0), 1.0)
    offset = np.where(span > 0, -low * scale, 0.0)
    # PIL truncates the lookup-table values.
    stretched = np.floor(frames.astype(np.float32) * scale + offset + 1e-4)
    return np.clip(stretched, 0, 255).astype(np.uint8)


def equalize(frames):
    """Histogram-equalises every channel of every frame (PIL's algorithm)."""
    result = np.empty_like(frames)
    for t in range(frames.shape[0]):
        for c in range(frames.shape[-1]):
            channel = frames[t, ..., c]
            histogram = np.bincount(channel.ravel(), minlength=256)
            nonzero = histogram[histogram > 0]
            step = (histogram.sum() - nonzero[-1]) // 255
            if step == 0:
                result[t, ..., c] = channel
                continue
            lut = (np.cumsum(histogram) - histogram + step // 2) // step
            result[t, ..., c] = np.clip(lut, 0, 255).astype(np.uint8)[channel]
    return result


def invert(frames):
    return 255 - frames


def posterize(frames, bits):
    """Keeps the `bits` most significant bits of every value."""
    if bits >= 8:
        return frames
    mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
    return frames & mask


def solarize(frames, threshold):
    """Inverts values at or above `threshold`."""
    return np.where(frames >= threshold, 255 - frames, frames).astype(np.uint8)


def solarize_add(frames, addition, threshold=128):
    """Adds `addition` to values below `threshold`, clipped to 255."""
    added = np.minimum(frames.astype(np.int16) + addition, 255).astype(np.uint8)
    return np.where(frames < threshold, added, frames)


def color(frames, factor):
    """Saturation: blends with the grey image (factor 0 is grey, 1 is identity)."""
    gray = _grayscale(frames)[..., None]
    return _blend(gray, frames, factor)


def contrast(frames, factor):
    """Blends with each frame's mean grey level."""
    mean = np.floor(_grayscale(frames).mean(axis=(1, 2), keepdims=True) + 0.5)
    return _blend(mean[..., None], frames, factor)


def brightness(frames, factor):
    return _blend(0.0, frames, factor)


def sharpness(frames, factor):
    """Blends with PIL's SMOOTH-filtered frame (border pixels unchanged)."""
    frames_f = frames.astype(np.float32)
    smooth = frames_f.copy()
    # 3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 on the interior.
    acc = 4.0 * frames_f[:, 1:-1, 1:-1]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            height, width = frames.shape[1:3]
            acc = acc + frames_f[:, 1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx]
    smooth[:, 1:-1, 1:-1] = np.rint(acc / 13.0)
    return _blend(smooth, frames, factor)


# === Geometric operations ===


def affine(frames, matrix):
    """Bilinear inverse-mapped affine warp with a grey fill.

    `matrix = (a, b, c, d, e, f)` maps output pixel centre `(x, y)` to the
    input point `(a x + b y + c, d x + e y + f)`, PIL's convention.
    """
    height, width = frames.shape[1:3]
    a, b, c, d, e, f = matrix
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    source_x = a * xs + b * ys + c - 0.5
    source_y = d * xs + e * ys + f - 0.5
    x0 = np.floor(source_x).astype(np.int64)
    y0 = np.floor(source_y).astype(np.int64)
    wx = (source_x - x0).astype(np.float32)[None, ..., None]
    wy = (source_y - y0).astype(np.float32)[None, ..., None]
    frames_f = frames.astype(np.float32)
    result = np.zeros(frames.shape, np.float32)
    inside = np.zeros((1,) + frames.shape[1:3] + (1,), np.float32)
    for dy, weight_y in ((0, 1.0 - wy), (1, wy)):
        for dx, weight_x in ((0, 1.0 - wx), (1, wx)):
            yy, xx = y0 + dy, x0 + dx
            valid = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
            sample = frames_f[:, np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)]
            weight = weight_y * weight_x * valid[None, ..., None]
            result += sample * weight
            inside += weight
    # Pixels whose footprint leaves the image are filled with grey.
    result += (1.0 - inside) * _FILL
    return _to_uint8(result)


def rotate(frames, degrees):
    """Rotates counter-clockwise about the centre (PIL `Image.rotate`)."""
    height, width = frames.shape[1:3]
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    # PIL's inverse map (output pixel -> input point) for a counter-clockwise
    # rotation in image coordinates (y pointing down).
    a, b = cos, -sin
    d, e = sin, cos
    c = cx - a * cx - b * cy
    f = cy - d * cx - e * cy
    return affine(frames, (a, b, c, d, e, f))


def shear_x(frames, factor):
    return affine(frames, (1.0, factor, 0.0, 0.0, 1.0, 0.0))


def shear_y(frames, factor):
    return affine(frames, (1.0, 0.0, 0.0, factor, 1.0, 0.0))


def translate_x(frames, pixels):
    return affine(frames, (1.0, 0.0, pixels, 0.0, 1.0, 0.0))


def translate_y(frames, pixels):
    return affine(frames, (1.0, 0.0, 0.0, 0.0, 1.0, pixels))


# === Magnitude to argument (timm's "increasing" set) ===


def _signed(value, rng):
    return -value if rng.random() < 0.5 else value


def _enhance_factor(level, rng):
    return 1.0 + _signed(level / _MAX_LEVEL * 0.9, rng)


_OPERATIONS = {
    "AutoContrast": lambda x, level, rng: auto_contrast(x),
    "Equalize": lambda x, level, rng: equalize(x),
    "Invert": lambda x, level, rng: invert(x),
    "Rotate": lambda x, level, rng: rotate(x, _signed(level / _MAX_LEVEL * 30.0, rng)),
    "PosterizeIncreasing": lambda x, level, rng: posterize(
        x, 4 - int(level / _MAX_LEVEL * 4)
    ),
    "SolarizeIncreasing": lambda x, level, rng: solarize(
        x, 256 - int(level / _MAX_LEVEL * 256)
    ),
    "SolarizeAdd": lambda x, level, rng: solarize_add(x, int(level / _MAX_LEVEL * 110)),
    "ColorIncreasing": lambda x, level, rng: color(x, _enhance_factor(level, rng)),
    "ContrastIncreasing": lambda x, level, rng: contrast(
        x, _enhance_factor(level, rng)
    ),
    "BrightnessIncreasing": lambda x, level, rng: brightness(
        x, _enhance_factor(level, rng)
    ),
    "SharpnessIncreasing": lambda x, level, rng: sharpness(
        x, _enhance_factor(level, rng)
    ),
    "ShearX": lambda x, level, rng: shear_x(x, _signed(level / _MAX_LEVEL * 0.3, rng)),
    "ShearY": lambda x, level, rng: shear_y(x, _signed(level / _MAX_LEVEL * 0.3, rng)),
    "TranslateXRel": lambda x, level, rng: translate_x(
        x, _signed(level / _MAX_LEVEL * 0.45, rng) * x.shape[2]
    ),
    "TranslateYRel": lambda x, level, rng: translate_y(
        x, _signed(level / _MAX_LEVEL * 0.45, rng) * x.shape[1]
    ),
}

OPERATION_NAMES = tuple(_OPERATIONS)


class RandAugment:
    """Clip-consistent RandAugment on uint8 `(T, H, W, 3)` frames.

    Args:
        num_ops: operations applied per clip (`n`), drawn with replacement.
        magnitude: strength in [0, 10] (`m`). The reference scripts use
            `m=7, n=4`; the paper table lists `(9, 0.5)`.
        magnitude_std: std of the Gaussian jitter on the magnitude, drawn per
            operation (0 disables it).
        prob: probability that each drawn operation is applied.
        operations: names from `OPERATION_NAMES` to draw from.

    Call arguments:
        frames: uint8 `(T, H, W, 3)`.
        rng: `numpy.random.Generator`.

    Returns:
        uint8 `(T, H, W, 3)`.

    Example:

    >>> import numpy as np
    >>> augment = RandAugment(num_ops=2, magnitude=9)
    >>> clip = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), np.uint8)
    >>> augment(clip, np.random.default_rng(1)).shape
    (4, 32, 32, 3)
    """

    def __init__(
        self,
        num_ops=4,
        magnitude=7.0,
        magnitude_std=0.5,
        prob=0.5,
        operations=OPERATION_NAMES,
    ):
        unknown = set(operations) - set(_OPERATIONS)
        if unknown:
            raise ValueError(
                f"Unknown RandAugment operations {sorted(unknown)}; "
                f"choose from {OPERATION_NAMES}."
            )
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.magnitude_std = magnitude_std
        self.prob = prob
        self.operations = tuple(operations)

    def draw(self, rng):
        """The operations a clip receives: a list of `(name, level)`.

        Operations that lose their coin flip are left out.
        """
        chosen = rng.choice(len(self.operations), size=self.num_ops, replace=True)
        plan = []
        for index in chosen:
            if rng.random() > self.prob:
                continue
            level = self.magnitude
            if self.magnitude_std > 0:
                level = rng.normal(level, self.magnitude_std)
            plan.append((self.operations[index], float(np.clip(level, 0, _MAX_LEVEL))))
        return plan

    def apply(self, frames, plan, rng):
        """Applies a `draw()` plan to all frames of a clip."""
        for name, level in plan:
            frames = _OPERATIONS[name](frames, level, rng)
        return frames

    def __call__(self, frames, rng):
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise ValueError(f"RandAugment expects uint8 frames; got {frames.dtype}.")
        return self.apply(frames, self.draw(rng), rng)

    def get_config(self):
        return {
            "num_ops": self.num_ops,
            "magnitude": self.magnitude,
            "magnitude_std": self.magnitude_std,
            "prob": self.prob,
            "operations": list(self.operations),
        }

    def __repr__(self):
        return (
            f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}, "
            f"magnitude_std={self.magnitude_std}, prob={self.prob})"
        )
