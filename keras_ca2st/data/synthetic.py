"""A tiny audio-visual dataset whose label needs appearance, motion and sound.

Each clip shows one bright object on a dark background and plays one tone.
The class combines three binary factors:

- appearance: a red square or a blue disc (visible in any single frame);
- motion: the object moves left-to-right or right-to-left. It wraps around
  the frame edges and starts at a uniformly random position, so its position
  in any single frame is uniformly distributed whatever the direction: only
  two or more frames reveal the motion;
- sound: a low (440 Hz) or high (1760 Hz) tone, absent from the pixels.

`2 x 2 x 2 = 8` classes, `label = 4 * appearance + 2 * direction + sound`.
A single frame reveals only the appearance, the frames only appearance and
motion, the audio only the tone: one factor alone leaves 4 candidate classes
(25% accuracy), two leave 2 (50%), and only all three identify the class.
Files are real H.264/AAC mp4s, written deterministically from the seed.

Note: horizontal flipping swaps the motion direction and so changes the
label; train on this set with `horizontal_flip=False`.
"""

import csv
import dataclasses
import os

import numpy as np

from keras_ca2st.data.encode import write_mp4

APPEARANCES = ("red_square", "blue_disc")
DIRECTIONS = ("left_to_right", "right_to_left")
SOUNDS = ("low_tone", "high_tone")
TONE_FREQUENCIES = (440.0, 1760.0)
_COLOURS = {"red_square": (235, 40, 40), "blue_disc": (40, 90, 235)}


def class_names():
    """The 8 class names, in label order.

    Example:

    >>> class_names()[5]
    'blue_disc-left_to_right-high_tone'
    """
    return [
        f"{appearance}-{direction}-{sound}"
        for appearance in APPEARANCES
        for direction in DIRECTIONS
        for sound in SOUNDS
    ]


def label_factors(label):
    """Splits a label into `(appearance, direction, sound)` indices.

    Example:

    >>> label_factors(6)
    (1, 1, 0)
    """
    return (label // 4) % 2, (label // 2) % 2, label % 2


@dataclasses.dataclass(frozen=True)
class SyntheticDataset:
    """Paths of a dataset written by `make_synthetic_dataset`.

    Attributes:
        root: dataset directory (annotation paths are relative to it).
        train_annotations: CSV `path,label` of the training clips.
        val_annotations: CSV `path,label` of the validation clips.
        class_names_path: text file with one class name per line.
        class_names: list of the class names.
    """

    root: str
    train_annotations: str
    val_annotations: str
    class_names_path: str
    class_names: list

    @property
    def num_classes(self):
        return len(self.class_names)


def render_clip(
    appearance,
    direction,
    sound,
    rng,
    size=64,
    fps=16,
    duration_s=2.0,
    sample_rate=16000,
):
    """Frames and waveform of one synthetic clip.

    Args:
        appearance: 0 (red square) or 1 (blue disc).
        direction: 0 (left to right) or 1 (right to left).
        sound: 0 (low tone) or 1 (high tone).
        rng: `numpy.random.Generator` for the start position, vertical
            position, speed, background and tone amplitude.
        size: frame side in pixels (even).
        fps: frame rate.
        duration_s: clip length in seconds.
        sample_rate: audio sampling rate.

    Returns:
        `(frames, waveform, start_x)`: uint8 `(T, size, size, 3)`, float32
        `(samples,)` and the object's horizontal centre in the first frame.

    Example:

    >>> import numpy as np
    >>> frames, audio, _ = render_clip(0, 1, 0, np.random.default_rng(0))
    >>> frames.shape, audio.shape
    ((32, 64, 64, 3), (32000,))
    """
    num_frames = int(round(fps * duration_s))
    radius = size * 0.15
    start_x = rng.uniform(0, size)
    centre_y = rng.uniform(radius + 2, size - radius - 2)
    # Half a frame width per second: 8 px between frames sampled at stride 4
    # (64 px, 16 fps), far below the half-width that would alias the wrap.
    speed = size * rng.uniform(0.4, 0.6) * (1.0 if direction == 0 else -1.0)
    background = rng.uniform(15, 45)

    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    # A static textured background: realistic enough to keep the codec
    # honest, and cheap to compress because it does not change over time.
    backdrop = background + rng.normal(0.0, 3.0, (size, size, 1))
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    colour = np.asarray(_COLOURS[APPEARANCES[appearance]], np.float32)
    for t in range(num_frames):
        centre_x = (start_x + speed * t / fps) % size
        # Horizontal distance on the wrapped (toroidal) frame.
        dx = (xs - centre_x + size / 2) % size - size / 2
        dy = ys - centre_y
        if appearance == 0:
            mask = (np.abs(dx) <= radius) & (np.abs(dy) <= radius)
        else:
            mask = dx**2 + dy**2 <= (radius * 1.15) ** 2
        image = np.broadcast_to(backdrop, (size, size, 3)).astype(np.float32)
        image[mask] = colour
        frames[t] = np.clip(image, 0, 255).astype(np.uint8)

    num_samples = int(round(sample_rate * duration_s))
    time = np.arange(num_samples) / sample_rate
    amplitude = rng.uniform(0.3, 0.6)
    phase = rng.uniform(0, 2 * np.pi)
    waveform = amplitude * np.sin(2 * np.pi * TONE_FREQUENCIES[sound] * time + phase)
    fade = np.minimum(1.0, np.minimum(time, time[::-1]) / 0.01)  # 10 ms ramps
    return frames, (waveform * fade).astype(np.float32), start_x


def _write_split(root, split, count, seed, split_id, **render_kwargs):
    labels = np.random.default_rng((seed, split_id)).permutation(np.arange(count) % 8)
    rows = []
    for index, label in enumerate(labels):
        rng = np.random.default_rng((seed, split_id, index))
        frames, waveform, _ = render_clip(
            *label_factors(int(label)), rng, **render_kwargs
        )
        relative = os.path.join("videos", f"{split}_{index:05d}.mp4")
        write_mp4(
            os.path.join(root, relative),
            frames,
            fps=render_kwargs["fps"],
            audio=waveform,
            audio_sample_rate=render_kwargs["sample_rate"],
            qp=26,
            audio_bit_rate=24000,
        )
        rows.append((relative, int(label)))
    path = os.path.join(root, f"{split}.csv")
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


def make_synthetic_dataset(
    root,
    num_train=64,
    num_val=16,
    seed=0,
    size=64,
    fps=16,
    duration_s=2.0,
    sample_rate=16000,
):
    """Writes the synthetic audio-visual dataset to `root`.

    Layout: `root/videos/{train,val}_NNNNN.mp4` (H.264 + AAC mono),
    `root/train.csv` and `root/val.csv` (header `path,label`, paths relative
    to `root`) and `root/classes.txt`. Labels are balanced over the 8 classes
    in each split. The same arguments always write the same files.

    Args:
        root: output directory (created if needed).
        num_train: training clips.
        num_val: validation clips.
        seed: random seed.
        size: frame side in pixels (even).
        fps: frame rate.
        duration_s: clip length in seconds (32 frames by default; dense
            sampling with `frame_stride=2` covers a whole clip).
        sample_rate: audio sampling rate in Hz.

    Returns:
        `SyntheticDataset` with the paths.

    Example:

    >>> from keras_ca2st.data import make_synthetic_dataset, read_csv_annotations
    >>> data = make_synthetic_dataset("/tmp/avsynth", num_train=16, num_val=8)  # doctest: +SKIP
    >>> records = read_csv_annotations(data.train_annotations, data.root)  # doctest: +SKIP
    """
    if size % 2:
        raise ValueError(f"size must be even (H.264 4:2:0); got {size}.")
    root = os.fspath(root)
    os.makedirs(os.path.join(root, "videos"), exist_ok=True)
    render_kwargs = dict(
        size=size, fps=fps, duration_s=duration_s, sample_rate=sample_rate
    )
    train = _write_split(root, "train", num_train, seed, 0, **render_kwargs)
    val = _write_split(root, "val", num_val, seed, 1, **render_kwargs)
    names = class_names()
    names_path = os.path.join(root, "classes.txt")
    with open(names_path, "w", encoding="utf-8") as file:
        file.write("\n".join(names) + "\n")
    return SyntheticDataset(root, train, val, names_path, names)
