import re

import keras
import numpy as np
import pytest

from keras_ca2st.training import (
    LayerDecayAdamW,
    WarmupCosineDecay,
    build_optimizer,
    effective_batch_size,
    infer_num_layers,
    layer_index,
    layer_scale,
    scaled_learning_rate,
    uses_weight_decay,
)
from tests.models.test_lavish import tiny_lavish
from tests.training.helpers import tiny_classifier

VIT_B = 12


@pytest.fixture(scope="module")
def model():
    """One tiny CAST for the whole module; tests only read its structure or
    start from its current values."""
    return tiny_classifier()


@pytest.mark.parametrize(
    "path, expected",
    [
        # Block i of 12 gets 0.75 ** (13 - (i + 1)).
        ("cross_expert_encoder/spatial_attention_adapter_0/down/kernel", 0.75**12),
        ("cross_expert_encoder/temporal_mlp_adapter_5/up/bias", 0.75**7),
        ("cross_expert_encoder/exchange_11/spatial_to_temporal/query/kernel", 0.75),
        ("cross_expert_encoder/exchange_3/temporal_to_spatial/query_position", 0.75**9),
        ("cross_expert_encoder/clip_vision_encoder/block_7/mlp/fc1/kernel", 0.75**5),
        ("lavish_encoder/audio_attention_adapter_10/latent_tokens", 0.75**2),
        # Embeddings below the first block: 0.75 ** 13.
        ("cross_expert_encoder/clip_vision_encoder/patch_embedding/kernel", 0.75**13),
        ("cross_expert_encoder/clip_vision_encoder/position_embedding", 0.75**13),
        ("cross_expert_encoder/ast_encoder/cls_token", 0.75**13),
        # Above the blocks: 1.
        ("head/kernel", 1.0),
        ("head_verb/bias", 1.0),
        ("spatial_last_adapter/up/kernel", 1.0),
        ("cross_expert_encoder/clip_vision_encoder/post_layernorm/gamma", 1.0),
        ("cross_expert_encoder/video_mae_encoder/fc_norm/beta", 1.0),
        ("cross_expert_encoder/audio_time_embedding/dense_0/kernel", 1.0),
    ],
)
def test_layer_decay_factor_of_vit_b_paths(path, expected):
    assert layer_scale(path, VIT_B, 0.75) == pytest.approx(expected, rel=1e-12)


def test_every_trainable_variable_of_a_model_gets_its_block_factor(model):
    optimizer = LayerDecayAdamW(layer_decay=0.5)
    optimizer.build(model.trainable_variables)
    scales = optimizer.learning_rate_scales
    assert len(scales) == len(model.trainable_variables)
    assert optimizer._resolved_num_layers == 2
    counts = {0.25: 0, 0.5: 0, 1.0: 0}
    for path, scale in scales.items():
        # Not any "_1/": an encoder is `clip_vision_encoder_1` in a process
        # that built another one before.
        block = re.search(r"(?:block|adapter|exchange)_(\d+)/", path)
        depth = None if block is None else int(block.group(1))
        if depth == 0:  # block 0: 0.5 ** 2
            assert scale == 0.25, path
        elif depth == 1:  # block 1: 0.5 ** 1
            assert scale == 0.5, path
        else:  # last norms, last adapters, head
            assert scale == 1.0, path
            assert "last_adapter" in path or "norm" in path or "head" in path
        counts[scale] += 1
    assert all(counts.values()), counts
    # Frozen embeddings (never in the optimizer) would get 0.5 ** 3.
    embeddings = [w.path for w in model.weights if "patch_embedding" in w.path]
    assert embeddings and all(layer_scale(p, 2, 0.5) == 0.125 for p in embeddings)


def test_lavish_adapters_get_their_block_factor():
    model = tiny_lavish()
    paths = [w.path for w in model.trainable_weights]
    assert infer_num_layers(paths) == 2
    for path in paths:
        if "adapter_0/" in path:
            assert layer_index(path, 2) == 1, path
        elif "adapter_1/" in path:
            assert layer_index(path, 2) == 2, path
        else:
            assert layer_index(path, 2) == 3, path


def test_no_weight_decay_on_biases_vectors_and_position_embeddings(model):
    optimizer = LayerDecayAdamW()
    optimizer.build(model.trainable_variables)
    decayed = set(optimizer.weight_decay_paths)
    assert decayed
    for weight in model.trainable_weights:
        name = weight.path.split("/")[-1]
        expected = len(weight.shape) > 1 and name not in (
            "query_position",
            "key_position",
        )
        assert (weight.path in decayed) == expected, weight.path
    assert any(p.endswith("query_position") for p in optimizer._variable_paths)
    assert not uses_weight_decay(
        "lavish_encoder/visual_mlp_adapter_0/latent_tokens", (2, 8)
    )
    assert not uses_weight_decay("lavish_encoder/visual_mlp_adapter_0/gate", ())


def reference_adamw(initial, gradients, learning_rates, scales, decays, wd):
    """torch.optim.AdamW with per-parameter learning rates, in float64."""
    results = []
    for index, start in enumerate(initial):
        w = start.astype(np.float64)
        m = np.zeros_like(w)
        v = np.zeros_like(w)
        for step, (grads, lr) in enumerate(
            zip(gradients, learning_rates, strict=True), start=1
        ):
            g = grads[index].astype(np.float64)
            lr = lr * scales[index]
            if decays[index]:
                w = w * (1 - lr * wd)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            w = w - lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        results.append(w)
    return results


def test_update_matches_reference_adamw_with_layer_decay(model):
    variables = model.trainable_variables
    schedule = WarmupCosineDecay(0.02, total_steps=10, warmup_steps=2)
    optimizer = LayerDecayAdamW(
        learning_rate=schedule, weight_decay=0.3, layer_decay=0.5
    )
    rng = np.random.default_rng(0)
    initial = [keras.ops.convert_to_numpy(v) for v in variables]
    gradients = [
        [rng.standard_normal(v.shape).astype("float32") for v in variables]
        for _ in range(3)
    ]
    for grads in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    expected = reference_adamw(
        initial,
        gradients,
        [float(schedule(s)) for s in range(3)],
        optimizer._lr_scales,
        optimizer._decay_flags,
        0.3,
    )
    differences = [
        np.abs(keras.ops.convert_to_numpy(v) - e).max()
        for v, e in zip(variables, expected, strict=True)
    ]
    assert max(differences) < 1e-6
    # A wrong factor would show: block-0 and top variables moved differently.
    moved = [
        np.abs(keras.ops.convert_to_numpy(v) - i).max()
        for v, i in zip(variables, initial, strict=True)
    ]
    assert min(moved) > 1e-4


def test_gradient_accumulation_averages_the_gradients_of_a_window(model):
    variables = model.trainable_variables
    start = [keras.ops.convert_to_numpy(v) for v in variables]
    rng = np.random.default_rng(1)
    grads = [
        [rng.standard_normal(v.shape).astype("float32") for v in variables]
        for _ in range(4)
    ]
    schedule = WarmupCosineDecay(
        0.01, total_steps=4, warmup_steps=1, accumulation_steps=2
    )
    accumulating = LayerDecayAdamW(
        learning_rate=schedule, layer_decay=0.5, gradient_accumulation_steps=2
    )
    for g in grads:
        accumulating.apply([keras.ops.convert_to_tensor(x) for x in g], variables)
    assert int(keras.ops.convert_to_numpy(accumulating.iterations)) == 2
    accumulated = [keras.ops.convert_to_numpy(v) for v in variables]

    for variable, value in zip(variables, start, strict=True):
        variable.assign(value)
    plain = LayerDecayAdamW(
        learning_rate=WarmupCosineDecay(0.01, total_steps=4, warmup_steps=1),
        layer_decay=0.5,
    )
    for first, second in (grads[0:2], grads[2:4]):
        mean = [(a + b) / 2 for a, b in zip(first, second, strict=True)]
        plain.apply([keras.ops.convert_to_tensor(x) for x in mean], variables)
    for variable, value in zip(variables, accumulated, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(variable), value, atol=1e-6
        )
    # The first window ran at warm-up step 0 (lr 0): only the second moved.
    assert float(schedule(1)) == 0.0 and float(schedule(3)) > 0.0


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),
        (5, 0.5e-3),
        (10, 1e-3),
        (55, 1e-6 + 0.5 * (1e-3 - 1e-6)),
        (100, 1e-6),
        (1000, 1e-6),
    ],
)
def test_warmup_cosine_values(step, expected):
    schedule = WarmupCosineDecay(1e-3, total_steps=100, warmup_steps=10)
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_schedule_counts_updates_with_accumulation_and_round_trips():
    schedule = WarmupCosineDecay(
        2e-3,
        total_steps=50,
        warmup_steps=4,
        min_learning_rate=0.0,
        accumulation_steps=3,
    )
    # Batches 6, 7, 8 are update 2 of 4 warm-up updates.
    assert [float(schedule(s)) for s in (6, 7, 8)] == pytest.approx([1e-3] * 3)
    assert float(schedule(9)) == pytest.approx(1.5e-3)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert restored.get_config() == schedule.get_config()
    # Under jit the step is a tensor.
    value = keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(9)))
    assert float(value) == pytest.approx(1.5e-3)


def test_learning_rate_scaling():
    assert effective_batch_size(6, num_replicas=8, accumulation_steps=4) == 192
    assert scaled_learning_rate(1e-3, 192) == pytest.approx(7.5e-4)
    with pytest.raises(ValueError, match="positive integer"):
        effective_batch_size(0)


def test_build_optimizer_follows_the_recipe(model):
    optimizer = build_optimizer(
        model,
        base_learning_rate=1e-3,
        batch_size=6,
        num_replicas=8,
        accumulation_steps=4,
        epochs=50,
        steps_per_epoch=400,
        warmup_epochs=5,
    )
    assert isinstance(optimizer, LayerDecayAdamW)
    assert optimizer.num_layers == 2
    assert optimizer.gradient_accumulation_steps == 4
    assert optimizer.weight_decay == 0.05 and optimizer.layer_decay == 0.75
    assert optimizer.beta_1 == 0.9 and optimizer.epsilon == 1e-8
    schedule = optimizer._learning_rate
    assert schedule.peak_learning_rate == pytest.approx(1e-3 * 192 / 256)
    # 400 batches / 4 = 100 updates per epoch.
    assert schedule.total_steps == 5000 and schedule.warmup_steps == 500
    wrapped = build_optimizer(
        batch_size=2, epochs=1, steps_per_epoch=3, loss_scale=True
    )
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
    assert isinstance(wrapped.inner_optimizer, LayerDecayAdamW)


def test_optimizer_state_and_config_survive_a_saved_model(model, tmp_path):
    optimizer = build_optimizer(model, batch_size=4, epochs=2, steps_per_epoch=1)
    model.compile(optimizer=optimizer, loss="mse", jit_compile=False)
    optimizer.build(model.trainable_variables)
    variables = model.trainable_variables
    optimizer.apply([np.ones(v.shape, "float32") for v in variables], variables)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(restored.optimizer, LayerDecayAdamW)
    assert restored.optimizer.get_config() == optimizer.get_config()
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 1
    moments = [
        keras.ops.convert_to_numpy(v)
        for v in restored.optimizer.variables
        if "momentum" in v.path
    ]
    assert moments and all(np.allclose(m, 0.1) for m in moments)


def test_float16_training_with_loss_scaling(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, name="block_0", dtype="mixed_float16"),
            keras.layers.Dense(3, name="head", dtype="mixed_float16"),
        ]
    )
    optimizer = build_optimizer(
        model,
        batch_size=4,
        epochs=2,
        steps_per_epoch=2,
        warmup_epochs=0,
        loss_scale=True,
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 8)).astype("float32")
    y = rng.integers(0, 3, 8)
    before = keras.ops.convert_to_numpy(model.layers[0].kernel)
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(keras.ops.convert_to_numpy(model.layers[0].kernel), before)
    scales = optimizer.inner_optimizer.learning_rate_scales
    assert {path.split("/", 1)[1]: scale for path, scale in scales.items()} == {
        "block_0/kernel": 0.75,
        "block_0/bias": 0.75,
        "head/kernel": 1.0,
        "head/bias": 1.0,
    }


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        LayerDecayAdamW(amsgrad=True)
