"""Batches filled up to a multiple of the devices a process feeds."""

import keras
import numpy as np


class PaddedBatches(keras.utils.PyDataset):
    """A dataset's batches filled up to a multiple of `multiple_of` samples.

    JAX `DataParallel` splits every batch evenly over a process's devices, so
    a last, smaller batch cannot be fed as it is. The missing samples are
    copies of the batch's last sample with sample weight 0: weighted metrics
    ignore them. (Keras' loss still divides by the padded batch size.)

    Args:
        dataset: a `PyDataset` of `(inputs, labels)` or `(inputs, labels,
            weights)` batches, e.g. a `VideoDataset`.
        multiple_of: the batch-size multiple (devices per process).

    Example:
    ```python
    val = VideoDataset(records, batch_size=8, mode="val", spec=spec)  # 10 videos
    padded = PaddedBatches(val, multiple_of=4)
    padded[1][2]  # weights of the last batch: [1, 1, 0, 0]
    ```
    """

    def __init__(self, dataset, multiple_of):
        super().__init__(
            workers=dataset.workers,
            use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset = dataset
        self.multiple_of = multiple_of

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        inputs, labels, *weights = self.dataset[index]
        size = len(next(iter(inputs.values())))
        extra = -size % self.multiple_of
        if not extra:
            return (inputs, labels, *weights)
        weights = weights[0] if weights else np.ones(size, np.float32)

        def pad(array):
            array = np.asarray(array)
            return np.concatenate([array, np.repeat(array[-1:], extra, axis=0)])

        inputs, labels = keras.tree.map_structure(pad, (inputs, labels))
        weights = np.concatenate([weights, np.zeros(extra, np.float32)])
        return inputs, labels, weights

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


def pad_batches(dataset, multiple_of=None):
    """`dataset`, or `PaddedBatches` of it when a batch size is not a multiple
    of `multiple_of` (nothing to do without one).

    Example:

    >>> pad_batches(train, multiple_of=1) is train  # doctest: +SKIP
    True
    """
    if not multiple_of:
        return dataset
    sizes = {dataset.batch_size, len(dataset.epoch_order()) % dataset.batch_size}
    if not any(size % multiple_of for size in sizes):
        return dataset
    return PaddedBatches(dataset, multiple_of)
