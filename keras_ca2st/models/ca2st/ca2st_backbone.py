"""The multi-expert backbone shared by CAST, CAVA and CA²ST."""

import keras
from keras_hub.models import Backbone

from keras_ca2st.models.ca2st.cross_expert_encoder import (
    CrossExpertEncoder,
    deserialize_expert,
)
from keras_ca2st.models.encoder_arguments import pop_arguments, saved_arguments
from keras_ca2st.models.named_inputs import OPTIONAL_INPUTS, NamedInputs


@keras.saving.register_keras_serializable(package="keras_ca2st")
class CA2STBackbone(NamedInputs, Backbone):
    """Frozen experts exchanging information through B-CA, as one Keras model.

    The same class builds CAST (spatial + temporal), CAVA (spatial + audio), CA²ST
    (all three), single-expert baselines (one expert, no pairs) and the papers'
    ablations; see `CrossExpertEncoder` for the fusion arguments.

    Inputs (a dict):
    - `"video"`: `(batch, frames, size, size, 3)` float, channels-last,
      ImageNet-normalised (both video experts use ImageNet mean/std);
    - `"audio"`: `(batch, L, 128)` normalised Kaldi fbank (audio models);
    - `"video_times"`, `"audio_times"`: optional `(batch, T, 2)` `[start, end]`
      seconds of every visual time step and of every `1/T` of the audio window
      (models with time-interval codes). Left out, both default to `T` equal
      intervals over the `L / 100` s audio window, which is right for evenly
      spaced frames covering the audio window.

    Outputs: dict expert name → pooled feature `(batch, hidden_dim)`.

    Args:
        experts: dict name → expert layer or config (`"spatial"`, `"temporal"`,
            `"audio"` by convention).
        dtype: dtype policy of the whole model.
        **kwargs: the fusion arguments of `CrossExpertEncoder` (`pairs`,
            `bottleneck_ratio`, `adapter_ratio`, `fusion`,
            `cross_attention_placement`, `cross_attention_heads`,
            `drop_path_rate`, `train_experts`), which owns, checks and saves
            them; the backbone mirrors them as attributes. Other keyword
            arguments (`name`, ...) go to `keras.Model`.

    Example:
    ```python
    backbone = CA2STBackbone(
        experts={
            "spatial": CLIPVisionEncoder(image_size=32, num_frames=4, hidden_dim=64,
                num_layers=2, num_heads=4, intermediate_dim=128),
            "temporal": VideoMAEEncoder(image_size=32, num_frames=4, hidden_dim=64,
                num_layers=2, num_heads=4, intermediate_dim=128),
        },
        pairs=[{"experts": ["spatial", "temporal"]}],
        cross_attention_heads=4,
    )
    features = backbone({"video": np.zeros((1, 4, 32, 32, 3), "float32")})
    ```
    """

    def __init__(self, experts, dtype=None, **kwargs):
        fusion_arguments = pop_arguments(CrossExpertEncoder, kwargs)
        # === Layers ===
        self.encoder = CrossExpertEncoder(
            experts={
                name: _expert_with_dtype(expert, dtype)
                for name, expert in experts.items()
            },
            **{k: v for k, v in fusion_arguments.items() if k != "experts"},
            dtype=dtype,
            name="cross_expert_encoder",
        )

        # === Functional Model ===
        inputs = {
            name: keras.Input(shape, name=name, optional=name in OPTIONAL_INPUTS)
            for name, shape in self.encoder.input_shapes().items()
        }
        outputs = self.encoder(inputs)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
        # `trainable=True` from a saved config would unfreeze every sublayer.
        self.encoder.freeze_experts()

        # === Config ===
        self.experts = self.encoder.experts
        for name, value in saved_arguments(self.encoder).items():
            if name != "experts":
                setattr(self, name, value)

    def input_shapes(self):
        """Dict input name → per-sample shape."""
        return self.encoder.input_shapes()

    @property
    def clip_spec(self):
        """The clip contract (`keras_ca2st.data.ClipSpec`) the data must meet."""
        return self.encoder.clip_spec

    @property
    def expert_names(self):
        return list(self.encoder.experts)

    def hidden_dim(self, expert_name):
        return self.encoder.experts[expert_name].hidden_dim

    def get_config(self):
        config = super().get_config()
        config.update(saved_arguments(self.encoder))
        return config


def _expert_with_dtype(expert, dtype):
    """The experts follow the backbone's dtype policy, as keras-hub's CLIP does."""
    if isinstance(expert, keras.layers.Layer):
        if dtype is None:
            return expert
        expert = keras.layers.serialize(expert)
    if dtype is not None:
        expert = {**expert, "config": {**expert.get("config", {}), "dtype": dtype}}
    return deserialize_expert(expert)
