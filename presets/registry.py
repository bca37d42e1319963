"""The registry of named presets: the JSON specs in `presets/` plus runtime ones.

A spec records:
- `model_class` (`CAST`, `CAVA`, `CA2ST`, `LAVISH`) and a `description`;
- `backbone`: the `CA2STBackbone` (or `LAVISHBackbone`) arguments (the
  architecture);
- `task`: classifier arguments, e.g. `num_classes` (fine-tuned presets) or
  LAVISH's `head`;
- `weights`: `kind` — `"experts"` (pretrained experts, freshly initialised
  fusion or adapters) or `"fine_tuned"` (a whole trained model) — and
  `sources`: per expert a Hugging Face `repo_id`, `revision`, candidate weight
  `files` and `config`, with the `official` release (URL, file, format) as an
  alternative (LAVISH's shared expert goes by its role: `spatial` for CLIP,
  `temporal` for VideoMAE, `audio` for AST); for fine-tuned presets one
  `checkpoint` with its download location;
- `preprocessing`: frames, sampling, mean/std, audio features.
"""

import copy
import json
from importlib import resources

PRESET_PACKAGE = "keras_ca2st.presets"
_RUNTIME_PRESETS = {}


def _packaged_specs():
    specs = {}
    for entry in resources.files(PRESET_PACKAGE).iterdir():
        if entry.name.endswith(".json"):
            specs[entry.name[: -len(".json")]] = entry
    return specs


def available_presets(model_class_name=None):
    """Names of the registered presets, optionally only those of one model class."""
    names = []
    for name, entry in _packaged_specs().items():
        spec = json.loads(entry.read_text())
        if model_class_name in (None, spec["model_class"]):
            names.append(name)
    for name, spec in _RUNTIME_PRESETS.items():
        if model_class_name in (None, spec["model_class"]) and name not in names:
            names.append(name)
    return sorted(names)


def is_registered_preset(name):
    return isinstance(name, str) and name in available_presets()


def load_preset_spec(name):
    """The spec of a registered preset: architecture, weight sources, preprocessing."""
    if not is_registered_preset(name):
        raise ValueError(
            f"Unknown preset {name!r}. Registered presets: "
            f"{', '.join(available_presets())}. A local preset directory (as written "
            "by `save_to_preset` or `ca2st convert`) can be passed as a path."
        )
    if name in _RUNTIME_PRESETS:
        return copy.deepcopy(_RUNTIME_PRESETS[name])
    return json.loads(_packaged_specs()[name].read_text())


def register_preset(name, spec, overwrite=False):
    """Register a preset spec at runtime (e.g. other weight sources or revisions).

    Args:
        name: str. The preset name.
        spec: dict in the format of the packaged specs (see the module doc).
        overwrite: bool. Replace a preset registered earlier at runtime.

    Example:
    ```python
    spec = load_preset_spec("cast_base")
    spec["weights"]["sources"]["temporal"]["repo_id"] = "me/my-videomae"
    register_preset("cast_mine", spec)
    model = CAST.from_preset("cast_mine", num_classes=10)
    ```
    """
    for key in ("model_class", "backbone"):
        if key not in spec:
            raise ValueError(f"A preset spec needs {key!r}; got keys {sorted(spec)}.")
    if name in _packaged_specs() or (name in _RUNTIME_PRESETS and not overwrite):
        raise ValueError(f"Preset {name!r} is already registered.")
    _RUNTIME_PRESETS[name] = copy.deepcopy(spec)


def unregister_preset(name):
    """Remove a preset registered with `register_preset`."""
    _RUNTIME_PRESETS.pop(name, None)
