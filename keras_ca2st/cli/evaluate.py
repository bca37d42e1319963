"""`ca2st evaluate`: multi-view accuracy of a trained model on annotated videos.

Every video is seen as clips × crops views; the softmax of the views is
averaged per video (`keras_ca2st.training.evaluate_multiview`) and the
averaged scores give top-1 / top-5 (verb, noun and action for two-head
EPIC-KITCHENS-100 models).
"""

import csv
import json
import sys

import numpy as np

from keras_ca2st.cli import options, runs
from keras_ca2st.cli.config import CLIError
from keras_ca2st.cli.options import CommandFlags


def add_parser(commands):
    flags = CommandFlags(
        commands.add_parser(
            "evaluate",
            help="multi-view top-1 / top-5 of a trained model on annotated videos",
            description="Evaluate a model (a `ca2st train` run directory or a "
            ".keras file) with softmax averaged over clips × crops per video.",
        )
    )
    flags.add_shared(
        options.MODEL,
        help="required; a run directory's run.json supplies the dataset recipe "
        "and data root",
    )
    flags.add("--annotations", metavar="FILE", help="required")
    flags.add_shared(
        options.DATA_ROOT,
        help="prefix of the video paths (default: the training run's)",
    )
    flags.add_shared(
        options.DATASET,
        help="data recipe (annotation format, sampling, views); default: the "
        "training run's",
    )
    flags.add_shared(
        options.VIEWS, help="views per video, e.g. 5x3 (default: the recipe's)"
    )
    flags.add_shared(options.BATCH_SIZE, help="views per batch")
    flags.add_shared(options.WORKERS)
    flags.add_shared(
        options.MISSING_AUDIO,
        help="a video without audio track (audio models): score it from blank "
        "inputs and report it, or feed silence",
    )
    flags.add("--per-video-csv", metavar="FILE", help="write one row per video here")
    flags.add_shared(options.JSON, help="print the results as JSON")
    return flags.finish(handler=run_evaluation)


METRIC_LABELS = {"top1": "top-1", "top5": "top-5"}


def metric_label(key):
    """`"top1"` → `"top-1"`, `"verb_top5"` → `"verb top-5"`."""
    head, _, metric = key.rpartition("_")
    label = METRIC_LABELS.get(metric, metric)
    return f"{head} {label}" if head else label


def run_evaluation(args):
    # Keras loads here, not when the flags are declared.
    from keras_ca2st.data import VideoDataset
    from keras_ca2st.training import classification_scores, evaluate_multiview

    if not args.model or not args.annotations:
        raise CLIError("give --model RUN_DIR|FILE.keras and --annotations FILE.")
    model, info = runs.load_run(args.model)
    recipe_name = args.dataset or info.get("dataset")
    data_root = args.data_root if args.data_root is not None else info.get("data_root")
    annotation_format = runs.annotation_format(recipe_name, args.annotations)
    records = runs.read_records(args.annotations, annotation_format, data_root or "")
    runs.check_labels(records, model.num_classes)
    settings = runs.evaluation_settings(model, info, args.dataset, args.views)
    try:
        dataset = VideoDataset(
            records,
            args.batch_size,
            mode="test",
            missing_audio=args.missing_audio,
            workers=args.workers,
            **settings,
        )
    except ValueError as error:
        raise CLIError(f"{args.annotations}: {error}") from None
    views = len(dataset.views)
    say = print if not args.json else _to_stderr
    say(
        f"evaluating {type(model).__name__} on {len(records)} videos × "
        f"{dataset.num_test_clips} clips × {dataset.num_test_crops} crops "
        f"({views} views)",
        flush=True,
    )
    result = evaluate_multiview(
        model,
        dataset,
        video_ids=dataset.view_record_indices,
        labels=dataset.labels,
        num_videos=len(records),
        verbose=0 if args.json else 1,
    )
    bad = dataset.bad_samples
    bad_files = sorted({path for path, _ in bad})
    # A video with a view that could not be decoded would be scored from
    # blank inputs: it is left out of the figures, and said so.
    decoded = np.array([record.path not in bad_files for record in records])
    if not decoded.any():
        first_path, first_reason = bad[0]
        raise CLIError(
            f"{args.annotations}: none of its {len(records)} videos could be "
            f"decoded, so there is nothing to score (first: {first_reason}). "
            "Check --data-root and the files."
        )
    if bad:
        print(
            f"warning: {len(bad_files)} of {len(records)} videos could not be "
            f"decoded ({len(bad)} view(s)) and are left out of the figures: "
            + "; ".join(f"{path}: {reason}" for path, reason in dict(bad).items()),
            file=sys.stderr,
        )
        result.metrics = classification_scores(
            result.probabilities, result.labels, sample_weight=decoded
        )
    if args.per_video_csv:
        write_per_video_csv(args.per_video_csv, result, records, decoded)
        say(f"wrote {args.per_video_csv}")
    if args.json:
        print(
            json.dumps(
                {
                    "videos": len(records),
                    "scored_videos": int(decoded.sum()),
                    "views": views,
                    "metrics": result.metrics,
                    "bad_files": bad_files,
                },
                indent=1,
            )
        )
    else:
        for key, value in result.metrics.items():
            print(f"{metric_label(key):<14} {100 * value:6.2f}%")
    return 0


def write_per_video_csv(path, result, records, decoded):
    """`MultiViewResult.per_video()` rows, with each video's path and whether
    all its views were decoded (the others are not in the figures)."""
    rows = [
        {
            "video": row["video"],
            "path": records[row["video"]].path,
            "decoded": bool(decoded[row["video"]]),
            **row,
        }
        for row in result.per_video()
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _to_stderr(*args, **kwargs):
    print(*args, file=sys.stderr, **kwargs)
