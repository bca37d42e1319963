"""Behaviour shared by our keras-hub `Task` models (CAST/CAVA/CA²ST, LAVISH)."""

import keras


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
