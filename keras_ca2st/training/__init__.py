"""Training and evaluation: the reference recipe (SPEC section 10) on `model.fit`.

- `optimizer`: `LayerDecayAdamW`, `build_optimizer`, layer-decay helpers.
- `schedules`: `WarmupCosineDecay`, batch-size scaling of the learning rate.
- `losses`: `SmoothedCrossEntropy`, `classification_loss` (EK100: two heads).
- `metrics`: `TopKAccuracy`, `ActionAccuracy`, `classification_metrics`,
  `harmonic_mean`.
- `evaluation`: `evaluate_multiview` (softmax averaged over clips × crops),
  `ActionAccuracyCallback`, `balance_report`.
- `checkpointing`: `TrainingState` (resume), `DatasetEpoch` (the data's epoch
  is the `fit` epoch), `build_before_fit`, `training_callbacks`.
- `distribution`: `setup_distribution` (JAX DataParallel, torch DDP,
  TensorFlow MirroredStrategy).
- `recipe`: `Recipe`, the settings of a run (no Keras import: the CLI
  declares its flags from it); `fit`: `compile_with_recipe` and
  `fit_with_recipe`, the one training entry point of `ca2st train` and
  `ca2st demo`.

Names are imported on first use (`keras_ca2st.lazy`); `import keras_ca2st`
imports them all, which registers the Keras classes a saved model needs.
- `keras_internals`: the private Keras hooks the above rely on, checked
  against the Keras versions they were written for.
"""

from keras_ca2st.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ActionAccuracy": "metrics",
        "ActionAccuracyCallback": "evaluation",
        "DISTRIBUTION_KINDS": "recipe",
        "DatasetEpoch": "checkpointing",
        "DistributionContext": "distribution",
        "LayerDecayAdamW": "optimizer",
        "MultiViewResult": "evaluation",
        "Recipe": "recipe",
        "SmoothedCrossEntropy": "losses",
        "TopKAccuracy": "metrics",
        "TorchDataParallelCallback": "distribution",
        "TrainingState": "checkpointing",
        "WarmupCosineDecay": "schedules",
        "average_view_softmax": "evaluation",
        "balance_report": "evaluation",
        "build_before_fit": "checkpointing",
        "build_optimizer": "optimizer",
        "classification_loss": "losses",
        "classification_metrics": "metrics",
        "classification_scores": "evaluation",
        "compile_with_recipe": "fit",
        "effective_batch_size": "schedules",
        "evaluate_multiview": "evaluation",
        "fit_with_recipe": "fit",
        "harmonic_mean": "metrics",
        "infer_num_layers": "optimizer",
        "layer_index": "optimizer",
        "layer_scale": "optimizer",
        "monitored_metric": "fit",
        "precision_policy": "recipe",
        "read_training_state": "checkpointing",
        "scaled_learning_rate": "schedules",
        "setup_distribution": "distribution",
        "shard_indices": "distribution",
        "training_callbacks": "checkpointing",
        "uses_weight_decay": "optimizer",
    },
)
