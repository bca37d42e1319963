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
- `recipe`: `Recipe` and `fit_with_recipe`, the one training entry point of
  `ca2st train` and `ca2st demo`.
- `keras_internals`: the private Keras hooks the above rely on, checked
  against the Keras versions they were written for.
"""

from keras_ca2st.training.checkpointing import (
    DatasetEpoch,
    TrainingState,
    build_before_fit,
    read_training_state,
    training_callbacks,
)
from keras_ca2st.training.distribution import (
    KINDS as DISTRIBUTION_KINDS,
)
from keras_ca2st.training.distribution import (
    DistributionContext,
    TorchDataParallelCallback,
    setup_distribution,
    shard_indices,
)
from keras_ca2st.training.evaluation import (
    ActionAccuracyCallback,
    MultiViewResult,
    average_view_softmax,
    balance_report,
    classification_scores,
    evaluate_multiview,
)
from keras_ca2st.training.losses import SmoothedCrossEntropy, classification_loss
from keras_ca2st.training.metrics import (
    ActionAccuracy,
    TopKAccuracy,
    classification_metrics,
    harmonic_mean,
)
from keras_ca2st.training.optimizer import (
    LayerDecayAdamW,
    build_optimizer,
    infer_num_layers,
    layer_index,
    layer_scale,
    precision_policy,
    uses_weight_decay,
)
from keras_ca2st.training.recipe import (
    Recipe,
    compile_with_recipe,
    fit_with_recipe,
    monitored_metric,
)
from keras_ca2st.training.schedules import (
    WarmupCosineDecay,
    effective_batch_size,
    scaled_learning_rate,
)
