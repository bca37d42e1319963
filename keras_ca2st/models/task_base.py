"""Behaviour shared by our keras-hub `Task` models (CAST/CAVA/CA²ST, LAVISH)."""

import os

import keras

# The preset layer (`keras_ca2st.presets`) sits above the models and the
# converters; it installs its resolver here when `keras_ca2st` is imported, so
# that `CAST.from_preset("cast_base")` works while no model imports it.
_preset_resolver = None


def set_preset_resolver(resolver):
    """Install the object that turns preset names into models; returns the old one.

    `resolver.load(task_class, preset, load_weights, **kwargs)` builds a model
    and `resolver.names(model_class_name)` lists registered presets.
    `keras_ca2st.presets` installs its own; without one, `from_preset` reads
    preset directories only.
    """
    global _preset_resolver
    previous, _preset_resolver = _preset_resolver, resolver
    return previous


class PreparedInputsTask:
    """Mixin for task models that take inputs already prepared by `keras_ca2st.data`.

    - `fit`, `evaluate` and `predict` are Keras's own: keras-hub's pipeline
      would wrap NumPy inputs into a `tf.data.Dataset` for its preprocessor,
      which these models do not have, and that dataset is never shuffled
      (`fit(shuffle=True)` would be ignored).
    - The compile settings saved in a `.keras` file name the optimizer as
      `keras.optimizers.*`, not the backend's own class (e.g. the torch AdamW),
      so a model saved under one backend loads under another without importing
      the first; and they are restored through the model's own `compile`.
    - `from_preset` takes a registered preset name (resolved by
      `keras_ca2st.presets`) or a keras-hub preset directory
      (`from_preset_dir`); `from_spec` builds a preset's architecture.
    """

    def fit(self, *args, **kwargs):
        return keras.Model.fit(self, *args, **kwargs)

    def evaluate(self, *args, **kwargs):
        return keras.Model.evaluate(self, *args, **kwargs)

    def predict(self, *args, **kwargs):
        return keras.Model.predict(self, *args, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        optimizer = (config or {}).get("optimizer")
        if isinstance(optimizer, dict) and optimizer.get("module", "").startswith(
            "keras.src.backend."
        ):
            optimizer["module"] = "keras.optimizers"
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # === Presets ===

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Build a model from a registered preset name or a preset directory.

        Args:
            preset: a registered name (`presets_list()`, e.g. `"ca2st_base"`,
                `"cast_base_k400"`, `"lavish_clip_base"`) or the path of a
                keras-hub preset directory (`save_to_preset`, `ca2st convert`).
            load_weights: bool. `True` loads pretrained weights: registered
                expert presets are converted once from their Hugging Face
                sources and cached (`$KERAS_CA2ST_CACHE`, else
                `~/.cache/keras_ca2st`), fine-tuned ones must have been
                converted with `ca2st convert official-cast`, and cached files
                are checked against the sha256 recorded when they were
                written (see `keras_ca2st.presets`). `False` builds the
                architecture with random weights and reads nothing.
            **kwargs: task arguments (`num_classes`, required unless the preset
                brings its heads; `head_sources`, `head_dropout`, `head`, ...),
                `dtype`, and backbone overrides such as `drop_path_rate`.

        Raises:
            ValueError: unknown preset names (the message lists the registered
                ones); `keras_ca2st.presets.PresetWeightsUnavailableError` (a
                `ValueError`) when weights are neither cached nor obtainable.
        """
        if _preset_resolver is None:
            return cls.from_preset_dir(preset, load_weights, **kwargs)
        return _preset_resolver.load(cls, preset, load_weights, **kwargs)

    @classmethod
    def presets_list(cls):
        """Registered preset names of this class."""
        if _preset_resolver is None:
            return []
        return _preset_resolver.names(cls)

    @classmethod
    def from_spec(cls, backbone_config, **kwargs):
        """A model with random weights from a preset's architecture.

        Args:
            backbone_config: the backbone arguments (a preset spec's
                `"backbone"`).
            **kwargs: task arguments (`num_classes`, ...).
        """
        return cls(backbone=cls.backbone_cls(**backbone_config), **kwargs)

    @classmethod
    def from_preset_dir(cls, directory, load_weights=True, **kwargs):
        """A model from a keras-hub preset directory.

        A directory with `task.json` gives the saved task (new heads when
        `num_classes` is passed); one with a backbone only needs `num_classes`.
        """
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise ValueError(f"{directory} is not a preset directory.")
        if "num_classes" not in kwargs and not os.path.exists(
            os.path.join(directory, "task.json")
        ):
            raise ValueError(
                f"{directory} holds a backbone without a classifier; pass "
                "num_classes=... to put new heads on it."
            )
        # keras-hub's loader (`Task.from_preset`): task.json and its weights,
        # or new heads on the saved backbone.
        return super().from_preset(directory, load_weights=load_weights, **kwargs)
