"""`ca2st predict`: the top labels of video files, with their scores.

Decode → transform → model: each of a video's clips is decoded once (with
its audio window when the model has an audio expert), the transform makes
its crops as the model's clip spec says, the model scores the clips × crops
views, and their softmax is averaged
(`keras_ca2st.training.average_view_softmax`) before the `--top-k` classes
are printed. A video that cannot be read is reported on stderr; the others
are still predicted, and the exit status is 1.
"""

import json
import sys

import numpy as np

from keras_ca2st.cli import options, runs, timeline
from keras_ca2st.cli.config import CLIError
from keras_ca2st.cli.options import CommandFlags
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
    ClipDecoder,
    ClipTransform,
    VideoDecodeError,
    ViewSampler,
    evaluation_view_inputs,
)


def add_parser(commands):
    flags = CommandFlags(
        commands.add_parser(
            "predict",
            help="top-k labels with scores for video files",
            description="Classify video files with a trained model: softmax "
            "averaged over clips × crops, audio used when the model has an audio "
            "expert.",
        )
    )
    flags.add("videos", nargs="+", metavar="VIDEO", help="video files")
    flags.add_shared(
        options.MODEL,
        help="required; a run directory's run.json supplies class names and sampling",
    )
    flags.add_shared(
        options.CLASS_NAMES,
        help="class names (default: the run's; else class indices)",
    )
    flags.add("--top-k", type=int, default=5, metavar="K")
    flags.add_shared(
        options.VIEWS, help="views per video, e.g. 2x3 (default: the recipe's)"
    )
    flags.add_shared(
        options.DATASET,
        help="sampling and views of this recipe (default: the training run's)",
    )
    flags.add_shared(
        options.MISSING_AUDIO,
        help="a video without audio track (audio models): report it, or predict "
        "with silence",
    )
    flags.add_shared(options.BATCH_SIZE, help="views per batch")
    flags.add_shared(options.JSON, help="print JSON")
    flags.add(
        "--explain",
        metavar="OUT_DIR",
        help="also write what the model attended to in each video's centre view: "
        "a PNG per cross-attention direction (heat maps on the frames, time "
        "strips, the spectrogram), attention.npz and attention.json in "
        "OUT_DIR/<video name>/",
    )
    timeline.add_flags(flags)
    return flags.finish(handler=run_prediction)


def run_prediction(args):
    if not args.model:
        raise CLIError("give --model RUN_DIR|FILE.keras.")
    if args.top_k < 1:
        raise CLIError(f"--top-k must be at least 1; got {args.top_k}.")
    if args.timeline:
        if args.explain:
            raise CLIError("--explain works on clips; drop it or --timeline.")
        return timeline.run_timeline(args)
    model, info = runs.load_run(args.model)
    class_names = class_names_for(args, model, info)
    settings = runs.evaluation_settings(model, info, args.dataset, args.views)
    pipeline = VideoViews(settings, args.missing_audio)
    results, failures = [], 0
    for path in args.videos:
        try:
            probabilities = pipeline.predict(model, path, args.batch_size)
        except (VideoDecodeError, AudioDecodeError) as error:
            failures += 1
            message = describe_failure(model, path, error)
            print(f"ca2st predict: {message}", file=sys.stderr, flush=True)
            results.append({"video": path, "error": message})
            continue
        if not all_finite(probabilities):
            failures += 1
            message = NOT_FINITE.format(path=path)
            print(f"ca2st predict: {message}", file=sys.stderr, flush=True)
            results.append({"video": path, "error": message})
            continue
        result = {
            "video": path,
            "predictions": top_k(probabilities, args.top_k, class_names),
        }
        if args.explain:
            result["explain"] = explain(model, pipeline, path, args, class_names)
        results.append(result)
        if not args.json:
            print(format_result(result), flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 1 if failures else 0


class VideoViews:
    """The test views of one video file, as `evaluation_settings` describe them.

    Args:
        settings: `runs.evaluation_settings(...)`: the model's `spec`, and
            optionally `sampling`, `frame_stride`, `num_test_clips`,
            `num_test_crops` (else `VideoDataset`'s defaults).
        missing_audio: `"error"` or `"silence"` for files without audio.
    """

    def __init__(self, settings, missing_audio="error"):
        spec = settings["spec"]
        views = _pick(settings, "num_test_clips", "num_test_crops")
        self.sampler = ViewSampler(1, mode="test", **views)
        self.decoder = ClipDecoder.for_spec(
            spec,
            num_clips=self.sampler.num_clips,
            missing_audio=missing_audio,
            **_pick(settings, "sampling", "frame_stride"),
        )
        self.transform = ClipTransform(spec, num_crops=self.sampler.num_crops)

    def inputs(self, path):
        """The batched model inputs of every view of `path`."""
        cache = {}  # each clip is decoded once for all its crops
        views = [
            evaluation_view_inputs(self.decoder, self.transform, path, view, cache)
            for view in self.sampler.views
        ]
        return {name: np.stack([v[name] for v in views]) for name in views[0]}

    def predict(self, model, path, batch_size):
        """Averaged class probabilities of one video (a dict per head)."""
        from keras_ca2st.training import average_view_softmax

        logits = model.predict(self.inputs(path), batch_size=batch_size, verbose=0)
        logits = map_heads(np.asarray, logits)
        video_ids = self.sampler.view_record_indices(epoch=0)
        probabilities = average_view_softmax(logits, video_ids, 1)
        return map_heads(lambda p: p[0], probabilities)


def explain(model, pipeline, path, args, class_names):
    """Writes the attention maps of `path` to `--explain`; returns its directory."""
    from keras_ca2st.cli.explain import explain_video

    try:
        written = explain_video(model, pipeline, path, args.explain, class_names)
    except ValueError as error:
        raise CLIError(f"--explain: {error}") from None
    except OSError as error:
        raise CLIError(
            f"--explain: cannot write to {args.explain} ({error.strerror}); "
            "give a writable directory."
        ) from None
    return written["directory"]


def _pick(settings, *names):
    return {name: settings[name] for name in names if name in settings}


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
    if "explain" in result:
        lines.append(f"  attention maps: {result['explain']}")
    return "\n".join(lines)
