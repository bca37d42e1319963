"""LAVISH heads: clip classification and per-second event localisation."""

import keras
from keras_hub.models import Task

from keras_ca2st.models.lavish.lavish_backbone import LAVISHBackbone
from keras_ca2st.models.named_inputs import NamedInputs
from keras_ca2st.models.task_base import PreparedInputsTask

HEADS = ("classification", "localization")


@keras.saving.register_keras_serializable(package="keras_ca2st")
class LAVISH(NamedInputs, PreparedInputsTask, Task):
    """LAVISH classifier: `concat(audio, visual) → Linear(2C, 512) → Linear(512, K)`.

    `head="localization"` gives per-time-step logits `(batch, T, K)` (AVE: 10
    one-second segments, 29 classes); `head="classification"` averages the
    per-step features over time first and gives `(batch, K)`.

    The backbone shares one frozen ViT expert between frames and spectrogram:
    CLIP ViT-B/16 in the paper and in the `lavish_clip_base*` presets, or a
    `VideoMAEEncoder` or `ASTEncoder` built into a `LAVISHBackbone` by hand.

    Args:
        backbone: a `LAVISHBackbone`.
        num_classes: int.
        head: `"classification"` or `"localization"`.
        hidden_units: int. Width of the head's hidden layer (512).
        preprocessor: unused.

    Example:
    ```python
    model = keras_ca2st.LAVISH.from_preset("lavish_clip_base", num_classes=29,
                                           load_weights=False)
    logits = model.predict({"video": frames, "audio": fbank})   # (batch, 10, 29)
    ```
    """

    backbone_cls = LAVISHBackbone
    preprocessor_cls = None

    def __init__(
        self,
        backbone,
        num_classes,
        head="classification",
        hidden_units=512,
        preprocessor=None,
        **kwargs,
    ):
        if head not in HEADS:
            raise ValueError(f"Unknown head {head!r}; expected one of {HEADS}.")
        dtype = backbone.dtype_policy
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.hidden = keras.layers.Dense(hidden_units, dtype=dtype, name="head_hidden")
        self.head = keras.layers.Dense(num_classes, dtype=dtype, name="head")

        # === Functional Model ===
        inputs = backbone.input
        features = backbone(inputs)
        fused = keras.layers.Concatenate(axis=-1, dtype=dtype, name="concat")(
            [features["audio"], features["visual"]]
        )
        if head == "classification":
            fused = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="time_mean")(
                fused
            )
        outputs = self.head(self.hidden(fused))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.head_kind = head
        self.hidden_units = hidden_units

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Compile with AdamW and sparse cross-entropy on logits by default."""
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.05)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = ["sparse_categorical_accuracy"]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            head=self.head_kind,
            hidden_units=self.hidden_units,
        )
        return config
