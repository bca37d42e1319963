"""Writes the `.keras` files that `test_legacy_models.py` loads.

They were made once, with the package as it stood at commit 515cb2b (before
the one-way redesign of issue 11), under `KERAS_BACKEND=torch`:

    KERAS_BACKEND=torch python tests/models/legacy/make_legacy_models.py

`ca2st_trained_moments.npz` (the AdamW first moment of every trainable
variable, by variable path, as the old code read it back from the file) comes
from `record_moments()`, run with the same code after the files were written.
They must keep loading and giving the recorded logits: a user's saved model
outlives any refactor. Do not regenerate them with newer code; add new files
beside them instead.

The `.keras` files are tracked despite the repository-wide `*.keras` ignore
rule (`.gitignore` makes an exception for this folder): the first copies were
ignored and never reached CI. They were rewritten once by this script at
515cb2b, with the `.npz` records written in the same run (logits within
1.5e-8 and moments within 1e-9 of the first records).
"""

import os

import keras
import numpy as np

from keras_ca2st import CA2ST, CAST, LAVISH, CA2STBackbone, LAVISHBackbone
from keras_ca2st.experts import ASTEncoder, CLIPVisionEncoder, VideoMAEEncoder
from keras_ca2st.training import (
    build_optimizer,
    classification_loss,
    classification_metrics,
)

HERE = os.path.dirname(os.path.abspath(__file__))
WIDTH = dict(hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32)


def experts():
    return {
        "spatial": CLIPVisionEncoder(
            image_size=32, patch_size=16, num_frames=4, **WIDTH
        ),
        "temporal": VideoMAEEncoder(
            image_size=32, patch_size=16, num_frames=4, **WIDTH
        ),
        "audio": ASTEncoder(
            num_time_frames=66, frequency_bins=32, position_grid=(2, 8), **WIDTH
        ),
    }


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = rng.standard_normal(weight.shape).astype("float32") * 0.1
        if weight.path.endswith("moving_variance"):  # batch norm: must be > 0
            value = 1.0 + np.abs(value)
        weight.assign(value)


def inputs_for(model, seed):
    rng = np.random.default_rng(seed)
    shapes = model.backbone.input_shapes()
    return {
        name: (
            rng.uniform(0.0, 0.6, (2, *shape))
            if name.endswith("_times")
            else rng.standard_normal((2, *shape))
        ).astype("float32")
        for name, shape in shapes.items()
    }


def ca2st_trained():
    """CA²ST with every pair, compiled with the package's recipe and trained a step."""
    backbone = CA2STBackbone(
        experts=experts(),
        pairs=[
            {"experts": ["spatial", "temporal"]},
            {"experts": ["spatial", "audio"], "layers": [1]},
            {"experts": ["temporal", "audio"], "layers": [1]},
        ],
        cross_attention_heads=2,
        drop_path_rate=0.1,
    )
    model = CA2ST(backbone, num_classes=5)
    randomize(model, 1)
    model.compile(
        optimizer=build_optimizer(
            model, batch_size=2, epochs=2, steps_per_epoch=2, warmup_epochs=1
        ),
        loss=classification_loss(5),
        weighted_metrics=classification_metrics(5),
    )
    inputs = inputs_for(model, 2)
    model.train_on_batch(inputs, np.array([1, 3]))
    return model, inputs


def cast_ek100():
    """Two-head CAST, S2T only, exchange before the adapters, bottleneck 1/4."""
    names = ("spatial", "temporal")
    backbone = CA2STBackbone(
        experts={k: v for k, v in experts().items() if k in names},
        pairs=[
            {
                "experts": ["spatial", "temporal"],
                "windows": {"spatial_to_temporal": "space"},
            }
        ],
        bottleneck_ratio=0.25,
        cross_attention_placement="before_adapter",
        cross_attention_heads=2,
    )
    model = CAST(backbone, num_classes={"verb": 3, "noun": 4})
    randomize(model, 3)
    return model, inputs_for(model, 4)


def lavish_localization():
    encoder = CLIPVisionEncoder(
        image_size=32,
        patch_size=16,
        num_frames=2,
        frame_offset=0,
        frame_stride=1,
        **WIDTH,
    )
    backbone = LAVISHBackbone(
        encoder=encoder, audio_frames=64, frequency_bins=32, reduction=4
    )
    model = LAVISH(backbone, num_classes=3, head="localization", hidden_units=16)
    randomize(model, 5)
    return model, inputs_for(model, 6)


def record_moments():
    """The loaded optimizer's first moments by variable path (old code's view)."""
    import keras_ca2st  # noqa: F401  (registers the classes)

    model = keras.saving.load_model(
        os.path.join(HERE, "ca2st_trained.keras"), safe_mode=True
    )
    optimizer = model.optimizer
    moments = {
        v.path: keras.ops.convert_to_numpy(
            optimizer._momentums[optimizer._get_variable_index(v)].value
        )
        for v in model.trainable_variables
    }
    np.savez_compressed(os.path.join(HERE, "ca2st_trained_moments.npz"), **moments)


def main():
    for name, build in (
        ("ca2st_trained", ca2st_trained),
        ("cast_ek100", cast_ek100),
        ("lavish_localization", lavish_localization),
    ):
        keras.utils.set_random_seed(0)
        model, inputs = build()
        outputs = model.predict(inputs, verbose=0)
        outputs = outputs if isinstance(outputs, dict) else {"logits": outputs}
        model.save(os.path.join(HERE, f"{name}.keras"))
        np.savez(
            os.path.join(HERE, f"{name}.npz"),
            **{f"input:{k}": v for k, v in inputs.items()},
            **{f"output:{k}": np.asarray(v) for k, v in outputs.items()},
        )
        print(name, {k: np.asarray(v).shape for k, v in outputs.items()})
    record_moments()


if __name__ == "__main__":
    main()
