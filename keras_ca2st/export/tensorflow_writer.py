"""Writes ONNX and SavedModel files from a model under the TensorFlow backend.

The one backend-specific part of the export: the model is traced once into a
`tf.function` of its named inputs, with a dynamic batch, and `training=False`
(no dropout, no drop path, no gradient checkpointing). TensorFlow has no fused
attention path (`keras_ca2st.kernels`), so the plain `keras.ops` attention is
what gets written.
"""

import contextlib
import logging
import os

import numpy as np

from keras_ca2st.export.signature import input_shapes, named_outputs

ONNX_OPSET = 18
BATCH_DIMENSION = "batch"


def serving_function(model, constant_weights=False):
    """The concrete `tf.function` of `model` on its named inputs.

    Args:
        model: the Keras model (TensorFlow backend).
        constant_weights: trace the weights as constants instead of reading
            variables: the graph is then frozen as traced, which is what ONNX
            needs (freezing a traced graph afterwards copies it op by op and
            takes as long as the conversion).
    """
    import keras
    import tensorflow as tf

    shapes = input_shapes(model)
    specs = [tf.TensorSpec(shape, tf.float32, name=n) for n, shape in shapes.items()]
    state = [(v, v.numpy()) for v in model.variables]

    def serve(*tensors):
        inputs = dict(zip(shapes, tensors, strict=True))
        weights = (
            keras.StatelessScope(state_mapping=state)
            if constant_weights
            else contextlib.nullcontext()
        )
        with weights:
            return named_outputs(model(inputs, training=False))

    function = tf.function(serve, input_signature=specs, autograph=False)
    return function.get_concrete_function()


def write_saved_model(model, path):
    """A SavedModel directory whose `serving_default` signature takes the named
    inputs and returns the named outputs."""
    import tensorflow as tf

    module = tf.Module()
    # The signature's variables are saved under the module. Only the concrete
    # function is saved: a `tf.function` attribute would be traced again.
    module.model_variables = [variable.value for variable in model.variables]
    tf.saved_model.save(
        module, path, signatures={"serving_default": serving_function(model)}
    )


def write_onnx(model, path):
    """An ONNX file with the named inputs and outputs, batch dimension `batch`."""
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import optimizer, tf_loader, tfonnx

    concrete = serving_function(model, constant_weights=True)
    inputs = [t.name for t in concrete.inputs]
    outputs = [t.name for t in concrete.outputs]
    # Graph tensor names → the signature's input names and output keys.
    renames = tf2onnx.convert.tensor_names_from_structed(concrete, inputs, outputs)
    graph_def = concrete.graph.as_graph_def(add_shapes=True)
    with _quiet_tf2onnx(), tf.Graph().as_default():
        # Grappler folds constants and drops identities: fewer ops to convert.
        graph_def = tf_loader.tf_optimize(inputs, outputs, graph_def)
        with tf.Graph().as_default() as graph:
            tf.import_graph_def(graph_def, name="")
            onnx_graph = tfonnx.process_tf_graph(
                graph,
                opset=ONNX_OPSET,
                input_names=inputs,
                output_names=outputs,
                tensors_to_rename=renames,
                custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])},
            )
        # No tf2onnx optimizers: each copies the whole graph first, which
        # takes most of the conversion time, and the einsum one fails on
        # Keras's einsums. ONNX Runtime optimizes the graph when it loads it.
        onnx_graph = optimizer.optimize_graph(
            onnx_graph, catch_errors=False, optimizers={}
        )
        proto = onnx_graph.make_model(f"keras_ca2st {type(model).__name__}")
    _name_batch_dimension(proto)
    with open(path, "wb") as file:
        file.write(proto.SerializeToString())


def _erfc_as_one_minus_erf(ctx, node, name, args):
    """TensorFlow's exact GELU uses `Erfc`, which ONNX lacks: `1 - erf(x)`."""
    from tf2onnx import utils

    node.type = "Erf"
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1.0, "float32"))
    ctx.insert_new_node_on_output(
        "Sub",
        node.output[0],
        inputs=[one.output[0], node.output[0]],
        name=utils.make_name(f"{name}_erfc"),
    )


def _name_batch_dimension(proto):
    """tf2onnx names the dynamic batch `unk__N`; callers see `batch`."""
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIMENSION


@contextlib.contextmanager
def _quiet_tf2onnx():
    """tf2onnx logs every step at INFO level; its warnings and errors still show."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


WRITERS = {"onnx": write_onnx, "saved_model": write_saved_model}


def write(model, path, format):
    """Writes `model` to `path` in `format` (the TensorFlow backend must be active)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    WRITERS[format](model, path)
