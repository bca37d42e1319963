"""What `ca2st predict` says about a video's scores, with or without `--timeline`:
top-k entries, per-head mapping, and the one-line messages for files that
cannot be scored."""

import numpy as np

from keras_ca2st.cli import runs
from keras_ca2st.data import AudioDecodeError

NOT_FINITE = (
    "{path}: the model's scores are not finite (NaN or Inf) although the inputs "
    "are; its weights may have diverged in training. Check the run's log.csv and "
    "use an earlier checkpoint."
)


def map_heads(function, value):
    """`function` on an array, or on each head's array of a dict."""
    if isinstance(value, dict):
        return {head: function(v) for head, v in value.items()}
    return function(value)


def all_finite(value):
    """Whether an array, or every head's array of a dict, is finite."""
    values = value.values() if isinstance(value, dict) else [value]
    return all(np.isfinite(v).all() for v in values)


def top_k(scores, k, class_names):
    """The top `k` classes of one score vector: `[{"index", "label", "score"}]`
    (a dict of them per head)."""
    if isinstance(scores, dict):
        return {
            head: top_k(head_scores, k, (class_names or {}).get(head))
            for head, head_scores in scores.items()
        }
    order = np.argsort(-scores, kind="stable")[:k]
    return [
        {
            "index": int(index),
            "label": class_names[index] if class_names else str(int(index)),
            "score": float(scores[index]),
        }
        for index in order
    ]


def class_names_for(args, model, info):
    """`--class-names` checked against the model, else the run's names, else None."""
    if args.class_names:
        names = runs.read_class_names_argument(args.class_names)
        runs.check_class_names(names, model.num_classes, args.class_names)
        return names
    return info.get("class_names")


def describe_failure(model, path, error):
    """One line for a file that could not be decoded, naming it and what to do."""
    message = str(error)
    if isinstance(error, AudioDecodeError) and "has no audio stream" in message:
        return (
            f"{path}: has no audio track, and this model uses audio (experts: "
            f"{', '.join(model.backbone.expert_names)}). Pass --missing-audio "
            "silence to predict with silent audio."
        )
    return message if path in message else f"{path}: {message}"
