"""Presets: named models, their pretrained weights, and the cache they live in.

The one preset layer of the package, above the models and the converters:

- `registry.py`: the specs — the JSON files in this folder (architecture,
  weight sources, preprocessing) and presets registered at runtime;
- `hub.py`: fetching weight files through `huggingface_hub` and its cache;
- `store.py`: the cache of converted presets, their manifests and sha256
  verification;
- `build.py`: converting a preset's sources once into the cache
  (`build_preset`, `convert_official_cast_preset`, `pretrained_preset_dir`),
  for CAST / CAVA / CA²ST and LAVISH presets alike;
- `loader.py`: what `CAST.from_preset(...)` / `LAVISH.from_preset(...)` do
  with a name or a directory.

The models never import this package: `loader.py` installs its resolver into
`keras_ca2st.models.task_base` when imported (which `import keras_ca2st`
does). Names are imported on first use (`keras_ca2st.lazy`), so listing the
registry (`ca2st presets`) loads no Keras backend.
"""

from keras_ca2st.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CorruptPresetError": "errors",
        "PresetWeightsUnavailableError": "errors",
        "available_presets": "registry",
        "build_preset": "build",
        "cache_root": "store",
        "cached_preset_dir": "store",
        "convert_official_cast_preset": "build",
        "is_registered_preset": "registry",
        "load_preset": "loader",
        "load_preset_spec": "registry",
        "preset_experts": "build",
        "preset_status": "store",
        "pretrained_preset_dir": "build",
        "register_preset": "registry",
        "save_preset": "store",
        "unregister_preset": "registry",
        "verify_preset_dir": "store",
        "weights_kind": "build",
    },
)
