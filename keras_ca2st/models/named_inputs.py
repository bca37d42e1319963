"""Model inputs matched by name: extra keys dropped, optional ones defaulted."""

OPTIONAL_INPUTS = ("video_times", "audio_times")


class NamedInputs:
    """Mixin for functional models whose inputs are a dict: match them by name.

    Keras matches a dict of inputs to a functional model's inputs by position
    when the keys differ from the model's, so a CAST fed the batch of a CA²ST
    pipeline (`{"audio": ..., "video": ...}`) would take the fbank as its
    video. Here every input is looked up by its name instead:

    - keys the model does not take are dropped (one data pipeline can feed
      models of several kinds);
    - an optional input left out (`video_times`, `audio_times`) is passed on
      as `None`, so the model uses its default;
    - a required input that is missing raises a `ValueError` naming it and
      the keys given.

    Example:
    ```python
    cast = keras_ca2st.CAST.from_preset("cast_base", num_classes=3,
                                        load_weights=False)
    cast.predict({"video": clips, "audio": fbank})  # "audio" is ignored
    ```
    """

    def __call__(self, inputs, *args, **kwargs):
        inputs = inputs_by_name(inputs, self.input, type(self).__name__)
        return super().__call__(inputs, *args, **kwargs)

    # `training` is named so that Keras sees the model takes it and `fit` passes
    # `training=True` (drop path, dropout).
    def call(self, inputs, training=None, mask=None):
        inputs = inputs_by_name(inputs, self.input, type(self).__name__)
        return super().call(inputs, training=training, mask=mask)


def inputs_by_name(inputs, model_inputs, model_name="the model"):
    """The entries of `inputs` the model takes, by name (see `NamedInputs`)."""
    if not isinstance(inputs, dict) or not isinstance(model_inputs, dict):
        return inputs
    missing = [
        name
        for name in model_inputs
        if name not in inputs and name not in OPTIONAL_INPUTS
    ]
    if missing:
        raise ValueError(
            f"{model_name} needs the input(s) {missing}; got a dict with keys "
            f"{sorted(inputs)}. Its inputs are {list(model_inputs)}."
        )
    return {name: inputs.get(name) for name in model_inputs}
