"""The registry of named presets, read from the JSON files in `presets/`."""

import json
from importlib import resources

PRESET_PACKAGE = "keras_ca2st.presets"


def available_presets(model_class_name=None):
    """Names of the registered presets, optionally only those of one model class."""
    names = []
    for entry in resources.files(PRESET_PACKAGE).iterdir():
        if entry.name.endswith(".json"):
            spec = json.loads(entry.read_text())
            if model_class_name in (None, spec["model_class"]):
                names.append(entry.name[: -len(".json")])
    return sorted(names)


def is_registered_preset(name):
    return isinstance(name, str) and name in available_presets()


def load_preset_spec(name):
    """The spec of a registered preset: architecture, weight sources, preprocessing."""
    if not is_registered_preset(name):
        raise ValueError(
            f"Unknown preset {name!r}. Registered presets: "
            f"{', '.join(available_presets())}. A local preset directory (as written "
            "by `save_to_preset`) can be passed as a path."
        )
    path = resources.files(PRESET_PACKAGE).joinpath(f"{name}.json")
    return json.loads(path.read_text())
