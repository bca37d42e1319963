"""`from_preset` for every task class: names, directories, weights and overrides.

The model classes only know how to build a preset's architecture
(`from_spec`) and how to read a preset directory (`from_preset_dir`); this
module decides everything else: which class a registered name builds, which
arguments may be overridden when pretrained weights are loaded, where those
weights come from (the verified cache, built on a miss) and what a directory
must pass before it is read. Importing this module installs `RESOLVER` into
the models (`import keras_ca2st` does).
"""

import os

from keras_ca2st.models import CA2ST, CAST, CAVA, LAVISH, VideoClassifier
from keras_ca2st.models.task_base import set_preset_resolver
from keras_ca2st.presets.build import pretrained_preset_dir, weights_kind
from keras_ca2st.presets.registry import available_presets, load_preset_spec
from keras_ca2st.presets.store import MANIFEST_FILE, verify_preset_dir

MODEL_CLASSES = {"CAST": CAST, "CAVA": CAVA, "CA2ST": CA2ST, "LAVISH": LAVISH}
# Backbone arguments a caller may override: any of them for a random-weight
# build, only those that leave the weights' shapes alone with pretrained ones.
BACKBONE_OVERRIDES = {
    VideoClassifier: (
        "dtype",
        "drop_path_rate",
        "gradient_checkpointing",
        "fusion",
        "bottleneck_ratio",
        "pairs",
    ),
    LAVISH: ("dtype",),
}
WEIGHT_PRESERVING_OVERRIDES = ("dtype", "drop_path_rate", "gradient_checkpointing")


def _family(task_class):
    """The task family a class belongs to (`VideoClassifier` or `LAVISH`)."""
    for family in BACKBONE_OVERRIDES:
        if issubclass(task_class, family):
            return family
    raise ValueError(f"{task_class.__name__} has no presets.")


def _model_class(task_class, preset, spec):
    """The class registered preset `preset` builds when asked through `task_class`."""
    family = _family(task_class)
    model_class = MODEL_CLASSES.get(spec["model_class"])
    if model_class is None or (
        family is VideoClassifier and not issubclass(model_class, family)
    ):
        raise ValueError(
            f"Preset {preset!r} is a {spec['model_class']} preset; load it with "
            f"keras_ca2st.{spec['model_class']}.from_preset."
        )
    if task_class is not VideoClassifier and model_class is not task_class:
        raise ValueError(
            f"Preset {preset!r} is a {spec['model_class']} preset; "
            f"{task_class.__name__} presets: "
            f"{', '.join(available_presets(task_class.__name__))}."
        )
    return model_class


def load_directory(task_class, directory, load_weights=True, **kwargs):
    """A local preset directory, verified first if it has a manifest."""
    if load_weights and os.path.exists(os.path.join(directory, MANIFEST_FILE)):
        verify_preset_dir(directory)
    return task_class.from_preset_dir(directory, load_weights, **kwargs)


def load_preset(task_class, preset, load_weights=True, **kwargs):
    """`task_class.from_preset(preset, load_weights, **kwargs)`; see there."""
    if isinstance(preset, (str, os.PathLike)) and os.path.isdir(preset):
        return load_directory(task_class, os.fspath(preset), load_weights, **kwargs)
    spec = load_preset_spec(preset)
    model_class = _model_class(task_class, preset, spec)
    task = spec.get("task", {})
    if "num_classes" not in kwargs and "num_classes" not in task:
        raise ValueError(
            f"from_preset({preset!r}) needs num_classes=..., e.g. 400 for "
            'Kinetics-400 or {"verb": 97, "noun": 300} for EPIC-KITCHENS-100.'
        )
    allowed = BACKBONE_OVERRIDES[_family(model_class)]
    overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in allowed}
    if not load_weights:
        return model_class.from_spec(
            {**spec["backbone"], **overrides}, **{**task, **kwargs}
        )
    fixed = sorted(set(overrides) - set(WEIGHT_PRESERVING_OVERRIDES))
    if fixed:
        raise ValueError(
            f"{fixed} change the shapes of pretrained weights; only "
            f"{', '.join(WEIGHT_PRESERVING_OVERRIDES)} can be overridden with "
            "load_weights=True."
        )
    if weights_kind(spec) == "fine_tuned":
        if "drop_path_rate" in overrides:
            raise ValueError(
                f"The fine-tuned preset {preset!r} keeps its drop_path_rate; "
                "only dtype and gradient_checkpointing can be overridden."
            )
        directory = pretrained_preset_dir(preset, spec)
        return model_class.from_preset_dir(directory, True, **overrides, **kwargs)
    # Pretrained experts (a LAVISH's shared one included), fresh heads.
    directory = pretrained_preset_dir(preset, spec)
    backbone = model_class.backbone_cls.from_preset(directory, **overrides)
    return model_class(backbone=backbone, **{**task, **kwargs})


class PresetResolver:
    """What the models call for names: `load` and `names` (see `task_base`)."""

    def load(self, task_class, preset, load_weights=True, **kwargs):
        return load_preset(task_class, preset, load_weights, **kwargs)

    def names(self, task_class):
        if task_class is _family(task_class):
            return available_presets(None)
        return available_presets(task_class.__name__)


RESOLVER = PresetResolver()
# What `CAST.from_preset("cast_base")` calls once this module is imported.
set_preset_resolver(RESOLVER)
