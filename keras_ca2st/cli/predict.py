"""`ca2st predict`: the top labels of video files, with their scores.

Each video is decoded into clips × crops views (with its audio track when the
model has an audio expert); the softmax of the views is averaged
(`keras_ca2st.training.average_view_softmax`) and the `--top-k` classes are
printed. A video that cannot be read is reported on stderr; the others are
still predicted, and the exit status is 1.
"""

import json
import sys

import keras
import numpy as np

from keras_ca2st.cli import runs
from keras_ca2st.cli.config import CLIError, add_config_argument
from keras_ca2st.data import (
    RECIPE_NAMES,
    AudioDecodeError,
    VideoDataset,
    VideoDecodeError,
    VideoRecord,
)
from keras_ca2st.training import average_view_softmax


def add_parser(commands):
    parser = commands.add_parser(
        "predict",
        help="top-k labels with scores for video files",
        description="Classify video files with a trained model: softmax averaged "
        "over clips × crops, audio used when the model has an audio expert.",
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    parser.add_argument(
        "--model",
        metavar="RUN_DIR|FILE.keras",
        help="required; a run directory's run.json supplies class names and sampling",
    )
    parser.add_argument(
        "--class-names",
        metavar="FILE|HEAD=FILE,...",
        help="class names (default: the run's; else class indices)",
    )
    parser.add_argument("--top-k", type=int, default=5, metavar="K")
    parser.add_argument(
        "--views",
        type=runs.parse_views,
        metavar="CLIPSxCROPS",
        help="views per video, e.g. 2x3 (default: the recipe's)",
    )
    parser.add_argument(
        "--dataset",
        metavar="RECIPE",
        choices=RECIPE_NAMES,
        help="sampling and views of this recipe (default: the training run's)",
    )
    parser.add_argument(
        "--missing-audio",
        choices=("error", "silence"),
        default="error",
        help="a video without audio track (audio models): report it, or predict "
        "with silence",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, metavar="N", help="views per batch"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_config_argument(parser)
    parser.set_defaults(handler=run_prediction)
    return parser


def run_prediction(args):
    if not args.model:
        raise CLIError("give --model RUN_DIR|FILE.keras.")
    if args.top_k < 1:
        raise CLIError(f"--top-k must be at least 1; got {args.top_k}.")
    model, info = runs.load_run(args.model)
    if args.class_names:
        class_names = runs.read_class_names_argument(args.class_names)
        runs.check_class_names(class_names, model.num_classes, args.class_names)
    else:
        class_names = info.get("class_names")
    settings = runs.evaluation_settings(model, info, args.dataset, args.views)
    results, failures = [], 0
    for path in args.videos:
        try:
            probabilities = predict_video(model, path, settings, args)
        except (VideoDecodeError, AudioDecodeError) as error:
            failures += 1
            message = describe_failure(model, path, error)
            print(f"ca2st predict: {message}", file=sys.stderr, flush=True)
            results.append({"video": path, "error": message})
            continue
        result = {"video": path, "predictions": top_k(probabilities, args, class_names)}
        results.append(result)
        if not args.json:
            print(format_result(result), flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 1 if failures else 0


def predict_video(model, path, settings, args):
    """Averaged class probabilities of one video (a dict per head)."""
    dataset = VideoDataset(
        [VideoRecord(path, 0, source=path)],
        batch_size=settings.get("num_test_clips", 2)
        * settings.get("num_test_crops", 3),
        mode="test",
        missing_audio=args.missing_audio,
        bad_sample_policy="raise",
        **settings,
    )
    inputs, _ = dataset[0]
    inputs = {name: inputs[name] for name in runs.model_input_names(model)}
    logits = model.predict(inputs, batch_size=args.batch_size, verbose=0)
    logits = keras.tree.map_structure(np.asarray, logits)
    probabilities = average_view_softmax(logits, dataset.view_record_indices, 1)
    return keras.tree.map_structure(lambda p: p[0], probabilities)


def describe_failure(model, path, error):
    message = str(error)
    if isinstance(error, AudioDecodeError) and "has no audio stream" in message:
        return (
            f"{path}: has no audio track, and this model uses audio (experts: "
            f"{', '.join(model.backbone.expert_names)}). Pass --missing-audio "
            "silence to predict with silent audio."
        )
    return message if path in message else f"{path}: {message}"


def top_k(probabilities, args, class_names):
    """The `--top-k` classes by score: `[{"index", "label", "score"}]` (per head)."""
    if isinstance(probabilities, dict):
        return {
            head: top_k(scores, args, (class_names or {}).get(head))
            for head, scores in probabilities.items()
        }
    order = np.argsort(-probabilities, kind="stable")[: args.top_k]
    return [
        {
            "index": int(index),
            "label": class_names[index] if class_names else str(int(index)),
            "score": float(probabilities[index]),
        }
        for index in order
    ]


def format_result(result):
    lines = [result["video"]]
    predictions = result["predictions"]
    groups = (
        predictions.items() if isinstance(predictions, dict) else [(None, predictions)]
    )
    for head, entries in groups:
        if head is not None:
            lines.append(f"  {head}:")
        for rank, entry in enumerate(entries, start=1):
            lines.append(f"  {rank}. {entry['score']:.4f}  {entry['label']}")
    return "\n".join(lines)
