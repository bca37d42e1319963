"""`ca2st predict --timeline`: what a model sees along a long video.

The model's clip window slides over each file every `--stride` seconds
(`keras_ca2st.data.WindowStream`: each frame is decoded once, and only the
frames and audio that windows still to come need are kept, so a file of any
length fits in memory). Each window is one centre crop; windows are scored in
batches. Per window the command prints the start and end seconds and the
top-k labels, and writes `<stem>.timeline.csv` (one row per window) and
`<stem>.timeline.png` (scores over time, the top class as a coloured band)
under `--timeline-out`. A LAVISH localisation model (per-segment logits)
gets a row per second instead: its segments' logits averaged per second
where windows overlap.
"""

import csv
import json
import math
import os
import sys

import numpy as np

from keras_ca2st.cli import runs
from keras_ca2st.cli.config import CLIError
from keras_ca2st.cli.scores import (
    NOT_FINITE,
    all_finite,
    class_names_for,
    describe_failure,
    map_heads,
    top_k,
)
from keras_ca2st.data import (
    AudioDecodeError,
    ClipTransform,
    VideoDecodeError,
    WindowStream,
)
from keras_ca2st.data.timeline import per_second_average
from keras_ca2st.reports.timeline_plot import plot_timeline

DEFAULT_OUTPUT_DIR = "timelines"


def add_flags(flags):
    """The `--timeline` flags of `ca2st predict`."""
    group = flags.group("timeline of a long video")
    flags.add(
        "--timeline",
        action="store_true",
        group=group,
        help="slide the model's clip window over each video: top labels per "
        "window (per second for a LAVISH localisation model), a CSV and a PNG",
    )
    flags.add(
        "--stride",
        type=float,
        default=1.0,
        metavar="SECONDS",
        group=group,
        help="seconds between window starts (default 1)",
    )
    flags.add(
        "--timeline-out",
        default=DEFAULT_OUTPUT_DIR,
        metavar="DIR",
        group=group,
        help="where VIDEO_STEM.timeline.csv and .png go (default ./timelines)",
    )


def run_timeline(args):
    """The handler of `ca2st predict --timeline`; exit status 1 if a file failed."""
    if not (math.isfinite(args.stride) and args.stride > 0):
        raise CLIError(
            f"--stride must be a positive number of seconds; got {args.stride}."
        )
    # Both belong to whole-video prediction; `ca2st predict` parses them.
    explain = vars(args).get("explain")
    for flag, value in (("--views", args.views), ("--explain", explain)):
        if value:
            raise CLIError(
                f"{flag} is for whole-video prediction; --timeline scores one "
                "centre crop per window. Drop one of them."
            )
    try:
        os.makedirs(args.timeline_out, exist_ok=True)
    except OSError as error:
        raise CLIError(
            f"--timeline-out: cannot create {args.timeline_out} ({error.strerror}); "
            "give a writable directory."
        ) from None
    model, info = runs.load_run(args.model)
    class_names = class_names_for(args, model, info)
    settings = runs.evaluation_settings(model, info, args.dataset)
    spec = settings["spec"]
    stream = WindowStream.for_spec(
        spec,
        args.stride,
        missing_audio=args.missing_audio,
        **{k: settings[k] for k in ("sampling", "frame_stride") if k in settings},
    )
    transform = ClipTransform(spec)
    stems = set()
    results, failures = [], 0
    for path in args.videos:
        show = None if args.json else _printer(path, args.top_k, class_names)
        try:
            intervals, logits, unit = score_timeline(
                model, stream, transform, path, args.batch_size, show
            )
        except (VideoDecodeError, AudioDecodeError) as error:
            failures += 1
            message = describe_failure(model, path, error)
            print(f"ca2st predict: {message}", file=sys.stderr, flush=True)
            results.append({"video": path, "error": message})
            continue
        scores = map_heads(softmax, logits)
        stem = _unique_stem(path, stems)
        csv_path = os.path.join(args.timeline_out, f"{stem}.timeline.csv")
        png_path = os.path.join(args.timeline_out, f"{stem}.timeline.png")
        rows = top_k_rows(intervals, scores, args.top_k, class_names)
        write_csv(csv_path, rows)
        plot_timeline(
            intervals, scores, class_names, png_path, title=os.path.basename(path)
        )
        results.append(
            {
                "video": path,
                "unit": unit,
                "csv": csv_path,
                "png": png_path,
                "rows": rows,
            }
        )
        if not args.json:
            if unit == "second":  # known once every window is in
                for row in rows:
                    print(format_row(row), flush=True)
            print(f"  {len(rows)} {unit}s: {csv_path}, {png_path}", flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 1 if failures else 0


def score_timeline(model, stream, transform, path, batch_size, show=None):
    """`(intervals, logits, unit)` of one file.

    `intervals` is `(N, 2)` seconds and `logits` `(N, K)` (a dict per head),
    one row per window (`unit` `"window"`); per-segment logits (LAVISH
    localisation) give one row per second instead (`unit` `"second"`), the
    segments' logits averaged over each second. `show(intervals, scores)`
    sees the softmax of each batch of windows as it is scored.
    """
    intervals, logits, segments = [], [], []
    for windows, inputs in stream.batches(path, transform, batch_size):
        batch = map_heads(
            np.asarray, model.predict(inputs, batch_size=batch_size, verbose=0)
        )
        _check_finite(batch, path)
        logits.append(batch)
        intervals.append([[w.start, w.end] for w in windows])
        if _per_segment(batch):
            segments.extend(
                stream.segment_intervals(w, batch.shape[1]) for w in windows
            )
        elif show is not None:
            show(np.asarray(intervals[-1]), map_heads(softmax, batch))
    logits = _concatenate(logits)
    if segments:
        seconds, per_second = per_second_average(np.stack(segments), logits)
        intervals = np.stack([seconds, seconds + 1], axis=-1).astype(np.float64)
        return intervals, per_second, "second"
    return np.concatenate(intervals), logits, "window"


def softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def top_k_rows(intervals, scores, k, class_names):
    """One dict per row: `start`, `end` and `predictions` (the top `k`
    `{"index", "label", "score"}`, a dict of them per head)."""
    return [
        {
            "start": float(start),
            "end": float(end),
            "predictions": top_k(
                map_heads(lambda s, r=row: s[r], scores), k, class_names
            ),
        }
        for row, (start, end) in enumerate(np.asarray(intervals))
    ]


def write_csv(path, rows):
    """`start,end,label_1,score_1,...` (`HEAD_label_1,...` per head)."""
    first = rows[0]["predictions"]
    heads = list(first) if isinstance(first, dict) else [None]
    header = ["start", "end"]
    for head in heads:
        prefix = f"{head}_" if head else ""
        count = len(first[head] if head else first)
        for rank in range(1, count + 1):
            header += [f"{prefix}label_{rank}", f"{prefix}score_{rank}"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            line = [f"{row['start']:.3f}", f"{row['end']:.3f}"]
            for head in heads:
                entries = row["predictions"][head] if head else row["predictions"]
                for entry in entries:
                    line += [entry["label"], f"{entry['score']:.6f}"]
            writer.writerow(line)
    return path


def format_row(row):
    """`  12.00-14.25s  0.9731 bright  0.0269 dark` (heads separated by `|`)."""
    predictions = row["predictions"]
    groups = (
        predictions.items() if isinstance(predictions, dict) else [(None, predictions)]
    )
    parts = []
    for head, entries in groups:
        text = "  ".join(f"{e['score']:.4f} {e['label']}" for e in entries)
        parts.append(f"{head}: {text}" if head else text)
    return f"  {row['start']:8.2f}-{row['end']:.2f}s  " + "  |  ".join(parts)


def _printer(path, k, class_names):
    print(path, flush=True)

    def show(intervals, scores):
        for row in top_k_rows(intervals, scores, k, class_names):
            print(format_row(row), flush=True)

    return show


def _per_segment(logits):
    return not isinstance(logits, dict) and logits.ndim == 3


def _check_finite(logits, path):
    if not all_finite(logits):
        # Not a user's file error, but one line all the same.
        raise VideoDecodeError(NOT_FINITE.format(path=path))


def _unique_stem(path, taken):
    stem = os.path.splitext(os.path.basename(path))[0]
    candidate, number = stem, 2
    while candidate in taken:  # the same name from two folders
        candidate, number = f"{stem}_{number}", number + 1
    taken.add(candidate)
    return candidate


def _concatenate(batches):
    if isinstance(batches[0], dict):
        return {head: np.concatenate([b[head] for b in batches]) for head in batches[0]}
    return np.concatenate(batches)
