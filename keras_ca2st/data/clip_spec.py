"""The clip contract between a model and the data pipeline.

A model says once what one clip must look like (`backbone.clip_spec`); the
data pipeline (`VideoDataset`, `ClipDecoder`, `ClipTransform`), `ca2st
predict` and `ca2st evaluate` read it instead of re-deriving frame counts,
crop sizes, time intervals or mel bins from input shapes. The spec is derived
from the model's saved configuration, so it travels with every `.keras` file
and preset.
"""

import dataclasses

from keras_ca2st.data.fbank import NUM_MEL_BINS
from keras_ca2st.data.transforms import IMAGENET_MEAN, IMAGENET_STD

INPUT_NAMES = ("video", "audio", "video_times", "audio_times")


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """What one clip looks like to a model.

    Args:
        inputs: the input names the model takes, a subset of `"video"`,
            `"audio"`, `"video_times"`, `"audio_times"`.
        num_frames: frames of the `"video"` input (`None` without video).
        crop_size: side of the square frames (`None` without video).
        frames_per_interval: consecutive frames that share one `[start, end]`
            time interval (a VideoMAE tubelet, or CLIP's frame stride); the
            model takes `num_frames // frames_per_interval` intervals.
        audio_frames: fbank frames of the `"audio"` input, 10 ms each (`None`
            without audio).
        mel_bins: mel bins of the fbank.
        mean, std: per-channel normalisation of the frames (RGB in [0, 1]).

    Example:
    ```python
    spec = model.backbone.clip_spec
    spec.num_frames, spec.crop_size, spec.num_time_intervals  # 16, 224, 8
    train = VideoDataset(records, batch_size=8, spec=spec)
    ```
    """

    inputs: tuple
    num_frames: int = None
    crop_size: int = None
    frames_per_interval: int = 2
    audio_frames: int = None
    mel_bins: int = NUM_MEL_BINS
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        unknown = sorted(set(self.inputs) - set(INPUT_NAMES))
        if unknown:
            raise ValueError(
                f"Unknown clip inputs {unknown}; a clip has {list(INPUT_NAMES)}."
            )
        if self.has_video and not (self.num_frames and self.crop_size):
            raise ValueError("A clip with video needs num_frames and crop_size.")
        if self.has_audio and not self.audio_frames:
            raise ValueError("A clip with audio needs audio_frames.")
        if self.uses_time_intervals and not (self.has_video and self.has_audio):
            # Video intervals are measured from the audio window's start.
            raise ValueError(
                "video_times / audio_times need both the video and the audio input."
            )
        if self.uses_time_intervals and (
            self.frames_per_interval < 1 or self.num_frames % self.frames_per_interval
        ):
            raise ValueError(
                f"{self.num_frames} frames do not split into intervals of "
                f"{self.frames_per_interval} frames."
            )

    @property
    def has_video(self):
        return "video" in self.inputs

    @property
    def has_audio(self):
        return "audio" in self.inputs

    @property
    def uses_time_intervals(self):
        return "video_times" in self.inputs or "audio_times" in self.inputs

    @property
    def num_time_intervals(self):
        """`[start, end]` intervals of `"video_times"` / `"audio_times"`."""
        if not self.num_frames:
            return None
        return self.num_frames // self.frames_per_interval

    def input_shapes(self):
        """Dict input name → per-sample shape, in the order of `inputs`.

        Example:

        >>> ClipSpec(("video",), num_frames=8, crop_size=32).input_shapes()
        {'video': (8, 32, 32, 3)}
        """
        shapes = {
            "video": (self.num_frames, self.crop_size, self.crop_size, 3),
            "audio": (self.audio_frames, self.mel_bins),
            "video_times": (self.num_time_intervals, 2),
            "audio_times": (self.num_time_intervals, 2),
        }
        return {name: shapes[name] for name in self.inputs}

    def to_dict(self):
        """A JSON-ready dict (`run.json`); `ClipSpec.from_dict` reads it back."""
        config = dataclasses.asdict(self)
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in config.items()
        }

    @classmethod
    def from_dict(cls, config):
        return cls(**config)
