"""Video classification tasks on the multi-expert backbone: CAST, CAVA, CA²ST."""

import keras
from keras_hub.models import Task

from keras_ca2st.fusion.adapter import BottleneckAdapter
from keras_ca2st.models.ca2st.ca2st_backbone import CA2STBackbone
from keras_ca2st.models.named_inputs import NamedInputs
from keras_ca2st.models.task_base import PreparedInputsTask

EK100_HEAD_SOURCES = {"noun": "spatial", "verb": "temporal"}


@keras.saving.register_keras_serializable(package="keras_ca2st")
class VideoClassifier(NamedInputs, PreparedInputsTask, Task):
    """A classifier on `CA2STBackbone` features.

    Single label (`num_classes=int`): every expert's pooled feature passes a last
    adapter (zero-initialised, no skip), the results add up, and a linear layer
    maps them to logits, so at initialisation the logits equal the head bias.
    With the late-fusion ablations the pooled features are added
    (`fusion="late_add"`) or concatenated (`"late_concat"`) without last adapters.

    Several labels (`num_classes={"verb": 97, "noun": 300}`, EPIC-KITCHENS-100):
    one linear head per key on one expert's pooled feature, by default noun from
    the spatial expert and verb from the temporal one; the model returns a dict
    of logits.

    Args:
        backbone: a `CA2STBackbone`.
        num_classes: int, or dict head name → classes.
        head_sources: dict head name → expert name, for dict `num_classes`.
        head_dropout: float. Dropout before the linear head(s).
        preprocessor: unused; the data pipeline prepares inputs.

    Example:
    ```python
    model = keras_ca2st.CAST.from_preset("cast_base", num_classes=400,
                                         load_weights=False)
    logits = model.predict({"video": clips})          # (batch, 400)
    ```
    """

    backbone_cls = CA2STBackbone
    preprocessor_cls = None

    def __init__(
        self,
        backbone,
        num_classes,
        head_sources=None,
        head_dropout=0.0,
        preprocessor=None,
        **kwargs,
    ):
        head_init = keras.initializers.TruncatedNormal(stddev=0.02)
        dtype = backbone.dtype_policy
        fusion = backbone.fusion
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.dropout = keras.layers.Dropout(head_dropout, dtype=dtype, name="dropout")
        self.last_adapters = {}
        if isinstance(num_classes, dict):
            head_sources = {
                **{k: v for k, v in EK100_HEAD_SOURCES.items() if k in num_classes},
                **(head_sources or {}),
            }
            for head, source in head_sources.items():
                if source not in backbone.expert_names or head not in num_classes:
                    raise ValueError(
                        f"Head {head!r} reads expert {source!r}; the heads are "
                        f"{sorted(num_classes)} and the experts "
                        f"{backbone.expert_names}."
                    )
            missing = sorted(set(num_classes) - set(head_sources))
            if missing:
                raise ValueError(
                    f"Heads {missing} have no source expert; pass head_sources, "
                    'e.g. {"verb": "temporal"}.'
                )
            self.heads = {
                head: keras.layers.Dense(
                    classes,
                    kernel_initializer=head_init,
                    dtype=dtype,
                    name=f"head_{head}",
                )
                for head, classes in num_classes.items()
            }
        else:
            if fusion not in ("late_add", "late_concat"):
                self.last_adapters = {
                    name: BottleneckAdapter(
                        backbone.hidden_dim(name),
                        int(backbone.hidden_dim(name) * backbone.adapter_ratio),
                        dtype=dtype,
                        name=f"{name}_last_adapter",
                    )
                    for name in backbone.expert_names
                }
            self.heads = {
                "logits": keras.layers.Dense(
                    num_classes, kernel_initializer=head_init, dtype=dtype, name="head"
                )
            }

        # === Functional Model ===
        inputs = backbone.input
        features = backbone(inputs)
        if isinstance(num_classes, dict):
            outputs = {
                head: layer(self.dropout(features[head_sources[head]]))
                for head, layer in self.heads.items()
            }
        else:
            if fusion == "late_concat":
                fused = keras.layers.Concatenate(axis=-1, dtype=dtype, name="concat")(
                    [features[name] for name in backbone.expert_names]
                )
            elif self.last_adapters:
                fused = (
                    keras.layers.Add(dtype=dtype, name="fuse")(
                        [
                            self.last_adapters[n](features[n])
                            for n in backbone.expert_names
                        ]
                    )
                    if len(backbone.expert_names) > 1
                    else self.last_adapters[backbone.expert_names[0]](
                        features[backbone.expert_names[0]]
                    )
                )
            else:
                names = backbone.expert_names
                fused = (
                    keras.layers.Add(dtype=dtype, name="fuse")(
                        [features[n] for n in names]
                    )
                    if len(names) > 1
                    else features[names[0]]
                )
            outputs = self.heads["logits"](self.dropout(fused))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.head_sources = head_sources
        self.head_dropout = head_dropout

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Compile with AdamW and sparse cross-entropy on logits by default."""
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.05)
        multi = "logits" not in self.heads
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            if multi:
                loss = {head: loss for head in self.heads}
        if metrics == "auto":
            metrics = (
                {head: ["sparse_categorical_accuracy"] for head in self.heads}
                if multi
                else ["sparse_categorical_accuracy"]
            )
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            head_sources=self.head_sources,
            head_dropout=self.head_dropout,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ca2st")
class CAST(VideoClassifier):
    """CAST: CLIP (space) and VideoMAE (time) experts joined by B-CA in every block.

    [CAST, NeurIPS 2023](https://arxiv.org/abs/2311.03770). Presets: `cast_base`.
    See `VideoClassifier` for the arguments.
    """


@keras.saving.register_keras_serializable(package="keras_ca2st")
class CAVA(VideoClassifier):
    """CAVA: CLIP (space) and AST (audio) experts joined by global-window B-CA.

    [CA²ST, arXiv 2503.23447](https://arxiv.org/abs/2503.23447). Presets:
    `cava_base`. See `VideoClassifier` for the arguments.
    """


@keras.saving.register_keras_serializable(package="keras_ca2st")
class CA2ST(VideoClassifier):
    """CA²ST: space, time and audio experts with B-CA between every pair.

    [CA²ST, arXiv 2503.23447](https://arxiv.org/abs/2503.23447). Presets:
    `ca2st_base`. See `VideoClassifier` for the arguments.
    """
