"""Per-dataset data settings of the reference recipes (SPEC section 10).

`dataset_recipe(name)` returns the annotation format and the `VideoDataset`
keyword arguments the paper's training scripts use for a dataset, plus the
mixup probability, so training code does not repeat them:

| dataset | sampling | flip | mixup prob | test views |
|---|---|---|---|---|
| k400 | dense, stride 4 | yes | 0.5 | 5 clips x 3 crops |
| ssv2 | uniform | no (labels say left/right) | 0.9 | 2 x 3 |
| ek100 | uniform | yes | 0.9 | 2 x 3, verb + noun |
| audio-visual sets | dense, stride 4 | yes | 0.5 | 2 x 3 |
"""

import copy

_COMMON = {"num_frames": 16, "crop_size": 224, "num_test_crops": 3}

_RECIPES = {
    "k400": {
        "annotation_format": "space",
        "mixup_prob": 0.5,
        "dataset": {"sampling": "dense", "frame_stride": 4, "num_test_clips": 5},
    },
    "ssv2": {
        "annotation_format": "space",
        "mixup_prob": 0.9,
        "dataset": {
            "sampling": "uniform",
            "horizontal_flip": False,
            "num_test_clips": 2,
        },
    },
    "ek100": {
        "annotation_format": "epic",
        "mixup_prob": 0.9,
        "num_classes": {"verb": 97, "noun": 300},
        "dataset": {"sampling": "uniform", "num_test_clips": 2},
    },
    "audio_visual": {
        "annotation_format": "csv",
        "mixup_prob": 0.5,
        "dataset": {
            "sampling": "dense",
            "frame_stride": 4,
            "num_test_clips": 2,
            "audio_frames": 1024,
        },
    },
    "synthetic": {
        "annotation_format": "csv",
        "mixup_prob": 0.0,
        "num_classes": 8,
        "dataset": {
            "sampling": "dense",
            "frame_stride": 2,
            "num_test_clips": 1,
            "num_test_crops": 1,
            "crop_size": 64,
            "crop_scale": (0.6, 1.0),
            # Flipping reverses the motion, which is part of the label.
            "horizontal_flip": False,
            "audio_frames": 192,
        },
    },
}
# Audio-visual datasets of the paper share one recipe.
for _alias in ("vggsound", "epic_sounds", "ucf101", "kinetics_sound"):
    _RECIPES[_alias] = _RECIPES["audio_visual"]

RECIPE_NAMES = tuple(sorted(_RECIPES))


def dataset_recipe(name):
    """The reference data settings for `name`.

    Args:
        name: one of `RECIPE_NAMES` (e.g. `"k400"`, `"ssv2"`, `"ek100"`,
            `"vggsound"`, `"synthetic"`).

    Returns:
        dict with `"annotation_format"` (for `read_annotations`),
        `"mixup_prob"`, optionally `"num_classes"`, and `"dataset"`: keyword
        arguments for `VideoDataset` (a fresh copy each call).

    Example:

    >>> recipe = dataset_recipe("ssv2")
    >>> recipe["dataset"]["sampling"], recipe["dataset"]["horizontal_flip"]
    ('uniform', False)
    """
    key = name.lower().replace("-", "_")
    if key not in _RECIPES:
        raise ValueError(f"Unknown dataset {name!r}; choose from {RECIPE_NAMES}.")
    recipe = copy.deepcopy(_RECIPES[key])
    recipe["dataset"] = {**_COMMON, **recipe["dataset"]}
    return recipe
