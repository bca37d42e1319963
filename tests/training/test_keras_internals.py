"""The private Keras hooks of `keras_ca2st.training.keras_internals` on this Keras.

Upgrading Keras must fail here first, with the hook named, rather than deep
inside a training run.
"""

import keras
import numpy as np
import pytest

from keras_ca2st.training import LayerDecayAdamW
from keras_ca2st.training import keras_internals as internals
from tests.test_case import to_numpy


def tiny_model():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(inputs))
    return model


def test_the_installed_keras_is_one_the_hooks_were_checked_on():
    assert keras.__version__ in internals.CHECKED_KERAS_VERSIONS


def test_a_missing_hook_names_itself_and_the_checked_versions():
    with pytest.raises(internals.KerasInternalsError) as error:
        internals._require(object(), "_gone", "something", "Model")
    message = str(error.value)
    assert "Model._gone" in message and "something" in message
    assert internals.CHECKED_KERAS_VERSIONS[-1] in message


def test_metrics_built_from_a_batch_need_no_fit():
    model = tiny_model()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    assert not model.optimizer.built
    internals.build_metrics_from_batch(
        model, [np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32")]
    )
    assert model.optimizer.built
    assert "mae" in model.get_metrics_result()


def test_fit_starts_at_the_epoch_it_is_told():
    model = tiny_model()
    model.compile(optimizer="sgd", loss="mse")
    internals.set_initial_epoch(model, 2)
    history = model.fit(
        np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32"), epochs=4, verbose=0
    )
    assert history.epoch == [2, 3]


def test_keras_routes_its_optimizer_steps_through_the_public_hooks():
    calls = []

    class Recording(LayerDecayAdamW):
        def apply_weight_decay(self, variables):
            calls.append("decay")
            return super().apply_weight_decay(variables)

        def backend_update_step(self, grads, variables, learning_rate):
            calls.append("step")
            return super().backend_update_step(grads, variables, learning_rate)

    model = tiny_model()
    model.compile(optimizer=Recording(learning_rate=0.1), loss="mse")
    before = to_numpy(model.get_layer("head").kernel)
    model.train_on_batch(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"))
    # (TensorFlow traces the step more than once, so the pair may repeat.)
    assert calls[:2] == ["decay", "step"] and set(calls) == {"decay", "step"}
    assert not np.allclose(to_numpy(model.get_layer("head").kernel), before)
    index = internals.variable_index(model.optimizer, model.get_layer("head").kernel)
    momentum, velocity = internals.adam_slots(model.optimizer, index)
    assert momentum.shape == velocity.shape == (3, 2)
    assert np.abs(to_numpy(momentum)).max() > 0


def test_gradients_are_transformed_once_before_apply():
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="mse")
    model.optimizer.build(model.trainable_variables)

    def zero(grads):
        return [keras.ops.zeros_like(g) for g in grads]

    internals.transform_gradients_before_apply(model.optimizer, zero)
    internals.transform_gradients_before_apply(model.optimizer, zero)
    before = to_numpy(model.get_layer("head").kernel)
    model.train_on_batch(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"))
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").kernel), before)


def test_metric_direction_is_read_by_the_callbacks():
    metric = keras.metrics.MeanMetricWrapper(lambda y, p: p, name="top1")
    internals.set_metric_direction(metric, "up")
    assert metric._direction == "up"
    with pytest.raises(ValueError):
        internals.set_metric_direction(metric, "sideways")


@pytest.mark.skipif(
    keras.config.backend() != "tensorflow", reason="the TensorFlow trainer's hooks"
)
def test_the_multi_worker_fixes_install_once_and_leave_other_strategies_alone():
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    internals.fix_multi_worker_fit()
    build = tensorflow_trainer.TensorFlowTrainer._maybe_symbolic_build
    reduce = tensorflow_trainer.reduce_per_replica
    internals.fix_multi_worker_fit()  # idempotent: no wrapper around a wrapper
    assert tensorflow_trainer.TensorFlowTrainer._maybe_symbolic_build is build
    assert tensorflow_trainer.reduce_per_replica is reduce
    # Without a multi-worker strategy, Keras's own path runs: fit still works.
    model = tiny_model()
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(
        np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
