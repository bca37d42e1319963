"""Compile settings that a `.keras` file carries from one backend to another."""

import keras


class PortableCompileConfig:
    """Mixin for task models whose `compile` has defaults of its own.

    Keras records the backend's own optimizer class (e.g. the torch AdamW), so a
    model saved under one backend would import that backend when loaded under
    another; the optimizer is recorded as `keras.optimizers.*` instead. Keras
    also skips `compile_from_config` for models that override `compile`; this
    restores the saved settings through our `compile`.
    """

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
