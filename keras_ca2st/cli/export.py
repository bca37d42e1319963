"""`ca2st export`: a trained model as an ONNX file or a TensorFlow SavedModel.

The model (a run directory or a `.keras` file) is written with named inputs
and outputs and a dynamic batch (`keras_ca2st.export`), then checked: the
exported file, run by ONNX Runtime or TensorFlow, must give Keras `predict`'s
outputs on the views of a real clip (`--check-video`, decoded as `ca2st
predict` decodes it) or, without one, on a random input of the model's clip
shape. The command prints the largest absolute difference and exits 1 when
it is above `--tolerance`.
"""

import sys

from keras_ca2st.cli import options, runs
from keras_ca2st.cli.config import CLIError
from keras_ca2st.cli.options import CommandFlags
from keras_ca2st.export.formats import FORMATS


def add_parser(commands):
    flags = CommandFlags(
        commands.add_parser(
            "export",
            help="write a trained model as ONNX or a TensorFlow SavedModel",
            description="Export a model with named inputs (video, audio, "
            "video_times, audio_times, as the model takes them), named outputs "
            "(logits, or one per head) and a dynamic batch. TensorFlow writes "
            "both formats; under torch or JAX a TensorFlow subprocess does. The "
            "exported file is then run (onnxruntime / tf.saved_model.load) and "
            "compared with Keras predict.",
        )
    )
    flags.add("output", metavar="OUT", help="the .onnx file or SavedModel directory")
    flags.add_shared(options.MODEL, help="required")
    flags.add(
        "--format",
        default="onnx",
        choices=tuple(FORMATS),
        help="onnx (default: an .onnx file run by onnxruntime) or saved_model (a "
        "directory run by tf.saved_model.load)",
    )
    flags.add(
        "--check-video",
        metavar="FILE",
        help="check the export on this video's views, decoded as `ca2st predict` "
        "does (default: a random input of the model's clip shape)",
    )
    flags.add_shared(
        options.MISSING_AUDIO,
        help="a check video without audio track (audio models): refuse it, or "
        "use silence",
    )
    flags.add(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest accepted difference from Keras predict (default 1e-4)",
    )
    return flags.finish(handler=run_export)


def run_export(args):
    import keras

    from keras_ca2st.export import (
        ExportError,
        export_model,
        max_abs_difference,
        random_clip_inputs,
        run_exported,
    )

    if not args.model:
        raise CLIError("give --model RUN_DIR|FILE.keras.")
    model, info = runs.load_run(args.model)
    # The check input first: a video that cannot be read stops the command
    # before the (slow) export.
    if args.check_video:
        inputs = _video_inputs(model, info, args)
        count = len(next(iter(inputs.values())))
        where = f"{count} views of {args.check_video}"
    else:
        inputs = random_clip_inputs(model)
        where = "a random input of the clip spec's shape (no --check-video given)"
    try:
        result = export_model(model, args.output, args.format)
        outputs = run_exported(result.path, result.format, inputs)
    except ExportError as error:
        raise CLIError(str(error)) from None
    print(result.describe(), flush=True)
    expected = model.predict(inputs, verbose=0)
    difference = max_abs_difference(outputs, expected)
    runtime = FORMATS[result.format].runtime
    print(
        f"check: {runtime} vs Keras predict ({keras.config.backend()}) on {where}: "
        f"max abs difference {difference:.2e}"
    )
    if not difference <= args.tolerance:
        print(
            f"ca2st export: {result.path} differs from the Keras model by "
            f"{difference:.2e}, more than --tolerance {args.tolerance:g}.",
            file=sys.stderr,
        )
        return 1
    return 0


def _video_inputs(model, info, args):
    from keras_ca2st.cli.predict import VideoViews
    from keras_ca2st.cli.scores import describe_failure
    from keras_ca2st.data import AudioDecodeError, VideoDecodeError

    settings = runs.evaluation_settings(model, info)
    try:
        return VideoViews(settings, args.missing_audio).inputs(args.check_video)
    except (VideoDecodeError, AudioDecodeError) as error:
        raise CLIError(describe_failure(model, args.check_video, error)) from None
