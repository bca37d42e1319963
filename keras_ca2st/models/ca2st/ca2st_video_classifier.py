"""Video classification tasks on the multi-expert backbone: CAST, CAVA, CA²ST."""

import os

import keras
from keras_hub.models import Task

from keras_ca2st.fusion.adapter import BottleneckAdapter
from keras_ca2st.models.ca2st.ca2st_backbone import (
    CA2STBackbone,
    OptionalTimeInputs,
)
from keras_ca2st.models.ca2st.ca2st_presets import (
    available_presets,
    load_preset_spec,
)
from keras_ca2st.models.task_base import PreparedInputsTask

EK100_HEAD_SOURCES = {"noun": "spatial", "verb": "temporal"}


@keras.saving.register_keras_serializable(package="keras_ca2st")
class VideoClassifier(OptionalTimeInputs, PreparedInputsTask, Task):
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

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Build a classifier from a registered preset name or a preset directory.

        Args:
            preset: a registered name (`keras_ca2st.VideoClassifier.presets_list()`,
                e.g. `"ca2st_base"`, `"cast_base_k400"`) or the path of a
                keras-hub preset directory (`save_to_preset`, `ca2st convert`).
            load_weights: bool. `True` loads pretrained weights. A registered
                expert preset (`cast_base`, `cava_base`, `ca2st_base`) is served
                from the cache of converted weights (`$KERAS_CA2ST_CACHE`, else
                `~/.cache/keras_ca2st`); on a miss its CLIP / VideoMAE / AST
                sources are fetched with `huggingface_hub` (honouring `HF_HOME`
                and `HF_HUB_OFFLINE`), converted once and cached. A fine-tuned
                preset (`cast_base_k400`, ...) must have been converted once with
                `ca2st convert official-cast`. Cached files are checked against
                the sha256 recorded when they were written. With `False` the
                architecture is built with random weights and nothing is read.
            **kwargs: `num_classes` (required for expert presets; fine-tuned
                presets bring theirs, and passing one gives new heads),
                `head_sources`, `head_dropout`, `dtype`, and backbone overrides
                such as `drop_path_rate`.

        Raises:
            ValueError: unknown preset names (the message lists the registered
                ones); `keras_ca2st.conversion.PresetWeightsUnavailableError`
                (a `ValueError`) when weights are neither cached nor obtainable.
        """
        if isinstance(preset, (str, os.PathLike)) and os.path.isdir(preset):
            return cls._from_preset_dir(os.fspath(preset), load_weights, **kwargs)
        spec = load_preset_spec(preset)
        if spec["model_class"] not in MODEL_CLASSES:
            raise ValueError(
                f"Preset {preset!r} is a {spec['model_class']} preset; load it with "
                f"keras_ca2st.{spec['model_class']}.from_preset."
            )
        if cls is not VideoClassifier and spec["model_class"] != cls.__name__:
            raise ValueError(
                f"Preset {preset!r} is a {spec['model_class']} preset; "
                f"{cls.__name__} presets: {', '.join(available_presets(cls.__name__))}."
            )
        model_cls = (
            cls if cls is not VideoClassifier else MODEL_CLASSES[spec["model_class"]]
        )
        task = spec.get("task", {})
        if "num_classes" not in kwargs and "num_classes" not in task:
            raise ValueError(
                f"from_preset({preset!r}) needs num_classes=..., e.g. 400 for "
                'Kinetics-400 or {"verb": 97, "noun": 300} for EPIC-KITCHENS-100.'
            )
        backbone_overrides = {
            key: kwargs.pop(key)
            for key in list(kwargs)
            if key in ("dtype", "drop_path_rate", "fusion", "bottleneck_ratio", "pairs")
        }
        if not load_weights:
            backbone = CA2STBackbone(**{**spec["backbone"], **backbone_overrides})
            return model_cls(backbone=backbone, **{**task, **kwargs})

        from keras_ca2st.conversion.presets import pretrained_preset_dir, weights_kind

        fixed = sorted(set(backbone_overrides) - {"dtype", "drop_path_rate"})
        if fixed:
            raise ValueError(
                f"{fixed} change the shapes of pretrained weights; only dtype and "
                "drop_path_rate can be overridden with load_weights=True."
            )
        if weights_kind(spec) == "fine_tuned":
            if "drop_path_rate" in backbone_overrides:
                raise ValueError(
                    f"The fine-tuned preset {preset!r} keeps its drop_path_rate; "
                    "only dtype can be overridden."
                )
            directory = pretrained_preset_dir(preset, spec)
            return model_cls._load_preset_dir(
                directory, True, **backbone_overrides, **kwargs
            )
        directory = pretrained_preset_dir(preset, spec)
        backbone = CA2STBackbone.from_preset(directory, **backbone_overrides)
        return model_cls(backbone=backbone, **{**task, **kwargs})

    @classmethod
    def _from_preset_dir(cls, directory, load_weights, **kwargs):
        """A local keras-hub preset directory, verified if it has a manifest."""
        from keras_ca2st.conversion.preset_store import (
            MANIFEST_FILE,
            verify_preset_dir,
        )

        if load_weights and os.path.exists(os.path.join(directory, MANIFEST_FILE)):
            verify_preset_dir(directory)
        if "num_classes" not in kwargs and not os.path.exists(
            os.path.join(directory, "task.json")
        ):
            raise ValueError(
                f"{directory} holds a backbone without a classifier; pass "
                "num_classes=... to put new heads on it."
            )
        return cls._load_preset_dir(directory, load_weights, **kwargs)

    @classmethod
    def _load_preset_dir(cls, directory, load_weights, **kwargs):
        # keras-hub's loader: task.json + task weights unless num_classes is
        # given (then new heads on the pretrained backbone).
        return Task.from_preset.__func__(
            cls, directory, load_weights=load_weights, **kwargs
        )

    @classmethod
    def presets_list(cls):
        """Registered preset names of this class."""
        name = None if cls is VideoClassifier else cls.__name__
        return available_presets(name)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            head_sources=self.head_sources,
            head_dropout=self.head_dropout,
        )
        return config


def _describe_sources(spec):
    sources = spec.get("weights", {}).get("sources", {})
    return (
        ", ".join(f"{k}: {v.get('repo_id', v)}" for k, v in sources.items()) or "none"
    )


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


MODEL_CLASSES = {"CAST": CAST, "CAVA": CAVA, "CA2ST": CA2ST}
