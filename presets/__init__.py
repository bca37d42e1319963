"""Presets: named models, their pretrained weights, and the cache they live in.

The one preset layer of the package, above the models and the converters:

- `registry.py`: the specs — the JSON files in this folder (architecture,
  weight sources, preprocessing) and presets registered at runtime;
- `hub.py`: fetching weight files through `huggingface_hub` and its cache;
- `store.py`: the cache of converted presets, their manifests and sha256
  verification;
- `build.py`: converting a preset's sources once into the cache
  (`build_preset`, `convert_official_cast_preset`, `pretrained_preset_dir`);
- `loader.py`: what `CAST.from_preset(...)` / `LAVISH.from_preset(...)` do
  with a name or a directory.

The models never import this package: it installs its resolver into
`keras_ca2st.models.task_base` when imported (which `import keras_ca2st`
does).
"""

from keras_ca2st.models.task_base import set_preset_resolver
from keras_ca2st.presets.build import (
    build_preset,
    convert_official_cast_preset,
    pretrained_preset_dir,
    weights_kind,
)
from keras_ca2st.presets.errors import CorruptPresetError, PresetWeightsUnavailableError
from keras_ca2st.presets.loader import RESOLVER, load_preset
from keras_ca2st.presets.registry import (
    available_presets,
    is_registered_preset,
    load_preset_spec,
    register_preset,
    unregister_preset,
)
from keras_ca2st.presets.store import (
    cache_root,
    cached_preset_dir,
    preset_status,
    save_preset,
    verify_preset_dir,
)

set_preset_resolver(RESOLVER)

__all__ = [
    "CorruptPresetError",
    "PresetWeightsUnavailableError",
    "available_presets",
    "build_preset",
    "cache_root",
    "cached_preset_dir",
    "convert_official_cast_preset",
    "is_registered_preset",
    "load_preset",
    "load_preset_spec",
    "preset_status",
    "pretrained_preset_dir",
    "register_preset",
    "save_preset",
    "unregister_preset",
    "verify_preset_dir",
    "weights_kind",
]
