"""Multi-view evaluation the way the papers report it.

Each test video is seen as several views (K400: 5 clips × 3 crops, others
2 × 3); the softmax of every view is averaged per video and the averaged
scores give the video's top-1 / top-5 (EPIC-KITCHENS-100: verb, noun and
action, an action being right only when verb and noun both are). Results are
kept per video so they can be written out and inspected.
"""

import csv
import dataclasses

import keras
import numpy as np

from keras_ca2st.training.metrics import harmonic_mean

ACTION_HEADS = ("verb", "noun")


def average_view_softmax(logits, video_ids, num_videos=None):
    """Softmax of each view, averaged over the views of each video.

    Args:
        logits: `(num_views, classes)` array, or a dict of them (one per head).
        video_ids: `(num_views,)` video index of every view.
        num_videos: number of videos (default `max(video_ids) + 1`).

    Returns:
        `(num_videos, classes)` float32 probabilities (a dict for dict input).

    Example:

    >>> import numpy as np
    >>> probs = average_view_softmax(np.array([[0.0, 5.0], [0.0, 3.0], [4.0, 0.0]]),
    ...                              np.array([0, 0, 1]))
    >>> probs.argmax(-1).tolist()
    [1, 0]
    """
    if isinstance(logits, dict):
        return {
            head: average_view_softmax(value, video_ids, num_videos)
            for head, value in logits.items()
        }
    logits = np.asarray(logits, np.float64)
    video_ids = np.asarray(video_ids, np.int64)
    if video_ids.shape != (logits.shape[0],):
        raise ValueError(
            f"video_ids has shape {video_ids.shape}; expected one id per view "
            f"({logits.shape[0]},)."
        )
    num_videos = int(num_videos or video_ids.max() + 1)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    totals = np.zeros((num_videos, logits.shape[-1]))
    counts = np.zeros((num_videos, 1))
    np.add.at(totals, video_ids, probabilities)
    np.add.at(counts, video_ids, 1.0)
    if np.any(counts == 0):
        missing = np.flatnonzero(counts[:, 0] == 0)[:5].tolist()
        raise ValueError(f"Videos {missing} have no views.")
    return (totals / counts).astype(np.float32)


def top_k_hits(scores, labels, k):
    """Boolean `(num_videos,)`: the label is among the `k` highest scores.

    Ties count against the prediction, as in `TopKAccuracy`: the label is a
    hit only if fewer than `k` other classes score at least as high (`k` is
    capped at the number of classes).

    Example:

    >>> import numpy as np
    >>> top_k_hits(np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]]), [1, 0], 1).tolist()
    [True, False]
    """
    scores = np.asarray(scores)
    labels = _class_indices(labels)
    k = min(int(k), scores.shape[-1])
    label_scores = np.take_along_axis(scores, labels[:, None], axis=-1)
    # Classes not strictly below the label, less the label itself.
    rivals = np.sum(~(scores < label_scores), axis=-1) - 1
    return rivals < k


def _class_indices(labels):
    labels = np.asarray(labels)
    return labels.argmax(-1) if labels.ndim == 2 else labels.reshape(-1)


def classification_scores(
    scores, labels, top_k=(1, 5), heads=ACTION_HEADS, sample_weight=None
):
    """Accuracy figures for averaged scores.

    Args:
        scores: `(videos, classes)` or a dict of them.
        labels: class indices `(videos,)` or a dict of them.
        top_k: the k values.
        heads: for dict input, the two heads whose joint top-1 is the action.
        sample_weight: optional `(videos,)` weights; weight 0 leaves a sample
            out (bad samples, padding), as in Keras' weighted metrics.

    Returns:
        dict: `top1`, `top5` (single head), or `verb_top1`, `noun_top5`, ...
        and `action_top1` when both `heads` are present; values in [0, 1]
        (0 when no sample has weight).
    """

    def mean(hits):
        if sample_weight is None:
            return float(np.mean(hits))
        weights = np.asarray(sample_weight, np.float64).reshape(-1)
        total = weights.sum()
        return float(np.sum(hits * weights) / total) if total > 0 else 0.0

    if not isinstance(scores, dict):
        return {f"top{k}": mean(top_k_hits(scores, labels, k)) for k in top_k}
    results = {}
    for head in scores:
        for k in top_k:
            results[f"{head}_top{k}"] = mean(top_k_hits(scores[head], labels[head], k))
    if all(head in scores for head in heads):
        action = np.logical_and(
            *[top_k_hits(scores[head], labels[head], 1) for head in heads]
        )
        results["action_top1"] = mean(action)
    return results


@dataclasses.dataclass
class MultiViewResult:
    """Per-video scores and the accuracy figures of a multi-view evaluation.

    Attributes:
        probabilities: `(videos, classes)` averaged softmax, or a dict per head.
        labels: `(videos,)` class indices (a dict per head), or `None`.
        metrics: dict of accuracies (see `classification_scores`); empty
            without labels.
    """

    probabilities: object
    labels: object = None
    metrics: dict = dataclasses.field(default_factory=dict)

    @property
    def predictions(self):
        """Top-1 class per video (a dict per head)."""
        if isinstance(self.probabilities, dict):
            return {h: p.argmax(-1) for h, p in self.probabilities.items()}
        return self.probabilities.argmax(-1)

    def per_video(self):
        """One dict per video: prediction, its probability, label, correct.

        `correct` is the top-1 hit of `metrics`: a prediction tied with
        another class's probability is not correct.
        """
        heads = (
            list(self.probabilities) if isinstance(self.probabilities, dict) else [None]
        )
        hits = {}
        if self.labels is not None:
            for head in heads:
                probs = self.probabilities if head is None else self.probabilities[head]
                labels = self.labels if head is None else self.labels[head]
                hits[head] = top_k_hits(probs, labels, 1)
        rows = []
        num_videos = len(
            next(iter(self.probabilities.values()))
            if isinstance(self.probabilities, dict)
            else self.probabilities
        )
        for video in range(num_videos):
            row = {"video": video}
            all_right = True
            for head in heads:
                probs = self.probabilities if head is None else self.probabilities[head]
                prefix = "" if head is None else f"{head}_"
                prediction = int(probs[video].argmax())
                row[f"{prefix}prediction"] = prediction
                row[f"{prefix}probability"] = float(probs[video, prediction])
                if self.labels is not None:
                    labels = self.labels if head is None else self.labels[head]
                    label = int(_class_indices(labels)[video])
                    row[f"{prefix}label"] = label
                    row[f"{prefix}correct"] = bool(hits[head][video])
                    all_right = all_right and row[f"{prefix}correct"]
            if self.labels is not None and len(heads) > 1:
                row["action_correct"] = all_right
            rows.append(row)
        return rows

    def to_csv(self, path):
        """Writes `per_video()` as a CSV file."""
        rows = self.per_video()
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def evaluate_multiview(
    model,
    views,
    video_ids=None,
    labels=None,
    num_videos=None,
    batch_size=None,
    top_k=(1, 5),
    verbose=0,
):
    """Predicts every view, averages softmax per video and scores the videos.

    Args:
        model: a classifier returning logits (or a dict of logits per head).
        views: anything `model.predict` accepts, with the views of all videos,
            e.g. a test-mode dataset (its `view_record_indices` and `labels`
            are used when the arguments below are not given) or a dict of
            arrays `(num_views, ...)`.
        video_ids: `(num_views,)` video index of every view.
        labels: per-video class indices `(videos,)` (or a dict per head, or a
            list of per-video dicts such as `{"verb": 3, "noun": 7}`).
        num_videos: number of videos (default from `video_ids`).
        batch_size: for array inputs.
        top_k: the k values to report.
        verbose: `model.predict` verbosity.

    Returns:
        `MultiViewResult`.

    Example:
    ```python
    test = VideoDataset(records, batch_size=8, mode="test", num_test_clips=5)
    result = evaluate_multiview(model, test)
    result.metrics        # {"top1": 0.83, "top5": 0.96}
    result.to_csv("per_video.csv")
    ```
    """
    if video_ids is None:
        video_ids = getattr(views, "view_record_indices", None)
    if video_ids is None:
        raise ValueError(
            "evaluate_multiview needs video_ids (the video index of every view) "
            "unless the views come from a dataset with `view_record_indices`."
        )
    if labels is None:
        labels = getattr(views, "labels", None)
    logits = model.predict(views, batch_size=batch_size, verbose=verbose)
    logits = keras.tree.map_structure(np.asarray, logits)
    probabilities = average_view_softmax(logits, video_ids, num_videos)
    labels = _stack_labels(labels, probabilities)
    metrics = {}
    if labels is not None:
        metrics = classification_scores(probabilities, labels, top_k)
    return MultiViewResult(probabilities, labels, metrics)


def _stack_labels(labels, probabilities):
    if labels is None:
        return None
    if isinstance(probabilities, dict):
        if isinstance(labels, dict):
            return {h: np.asarray(labels[h]) for h in probabilities}
        return {h: np.asarray([label[h] for label in labels]) for h in probabilities}
    return np.asarray(labels)


class ActionAccuracyCallback(keras.callbacks.Callback):
    """Adds multi-head validation accuracies (EK100 action) to the epoch logs.

    Keras metrics see one output at a time, so the action accuracy (verb and
    noun both right) cannot be a compiled metric. This callback predicts the
    validation batches once per `frequency` epochs and writes
    `{prefix}verb_top1`, `{prefix}noun_top5`, `{prefix}action_top1`, ... into
    the logs, where `CSVLogger`, `TensorBoard` and `ModelCheckpoint(monitor=...)`
    listed after it see them. Sample weights weigh the samples, as in Keras'
    weighted metrics: bad samples and padding (weight 0) do not count.

    Args:
        validation_data: a `keras.utils.PyDataset` (or any sequence / iterable)
            of `(inputs, labels[, weights])` batches, or a tuple
            `(inputs, labels[, weights])` of arrays.
        batch_size: batch size for array input.
        prefix: prefix of the log keys.
        frequency: evaluate every `frequency` epochs.

    Example:
    ```python
    model.fit(train, epochs=50, callbacks=[ActionAccuracyCallback(val), CSVLogger(...)])
    ```
    """

    def __init__(self, validation_data, batch_size=32, prefix="val_", frequency=1):
        super().__init__()
        self.validation_data = validation_data
        self.batch_size = batch_size
        self.prefix = prefix
        self.frequency = frequency

    def _batches(self):
        """`(inputs, labels, weights or None)` batches."""
        data = self.validation_data
        if isinstance(data, tuple) and len(data) in (2, 3):
            size = len(keras.tree.flatten(data[1])[0])
            for start in range(0, size, self.batch_size):
                batch = [_slice(part, start, start + self.batch_size) for part in data]
                yield _with_weights(batch)
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
            for index in range(len(data)):
                yield _with_weights(data[index])
        else:
            for batch in data:
                yield _with_weights(batch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or (epoch + 1) % self.frequency:
            return
        scores, labels, weights = [], [], []
        for inputs, batch_labels, batch_weights in self._batches():
            outputs = self.model.predict_on_batch(inputs)
            scores.append(keras.tree.map_structure(np.asarray, outputs))
            labels.append(keras.tree.map_structure(np.asarray, batch_labels))
            size = len(keras.tree.flatten(labels[-1])[0])
            weights.append(
                np.ones(size)
                if batch_weights is None
                else np.asarray(batch_weights, np.float64).reshape(-1)
            )
        scores = keras.tree.map_structure(lambda *a: np.concatenate(a), *scores)
        labels = keras.tree.map_structure(lambda *a: np.concatenate(a), *labels)
        results = classification_scores(
            scores, labels, sample_weight=np.concatenate(weights)
        )
        for name, value in results.items():
            logs[f"{self.prefix}{name}"] = value


def _with_weights(batch):
    inputs, labels, *weights = batch
    return inputs, labels, (weights[0] if weights else None)


def _slice(structure, start, stop):
    return keras.tree.map_structure(lambda a: a[start:stop], structure)


def balance_report(accuracies, title="Top-1 accuracy"):
    """A Markdown table of per-dataset accuracies and their harmonic mean.

    Args:
        accuracies: dict dataset name → accuracy in [0, 1] (for EK100 the
            action top-1, as in the papers).
        title: column title.

    Example:

    >>> print(balance_report({"K400": 0.85, "SSV2": 0.70}))
    | dataset | Top-1 accuracy |
    |---|---|
    | K400 | 85.00 |
    | SSV2 | 70.00 |
    | harmonic mean | 76.77 |
    """
    lines = [f"| dataset | {title} |", "|---|---|"]
    for name, value in accuracies.items():
        lines.append(f"| {name} | {100 * value:.2f} |")
    lines.append(f"| harmonic mean | {100 * harmonic_mean(accuracies):.2f} |")
    return "\n".join(lines)
