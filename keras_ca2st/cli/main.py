"""`ca2st`: command-line entry point.

Commands:
    ca2st presets            list the registered presets and whether their
                             converted weights are cached
    ca2st info PRESET        build a preset (random weights, no download), print
                             its parameter counts and run one random clip
    ca2st demo               train tiny models of every kind on a synthetic
                             audio-visual set and print their accuracy table
    ca2st convert preset NAME [--spatial SRC] [--temporal SRC] [--audio SRC]
                             convert a preset's experts from local checkpoint
                             files or hub ids into the preset cache (or --output)
    ca2st convert official-cast CHECKPOINT [OUTPUT_DIR] [--preset NAME]
                             convert an authors' fine-tuned CAST checkpoint
    ca2st train (--preset NAME | --model FILE.keras) --train-annotations FILE ...
                             train with the reference recipe into a run
                             directory (model.keras, run.json, log.csv,
                             checkpoints); the same command again resumes
    ca2st evaluate --model RUN_DIR --annotations FILE [--views CLIPSxCROPS]
                             multi-view top-1 / top-5
    ca2st predict --model RUN_DIR VIDEO [VIDEO ...]
                             top-5 labels with scores for video files
    ca2st export --model RUN_DIR --format onnx|saved_model OUT [--check-video FILE]
                             write the model as ONNX or a SavedModel and check
                             it against Keras predict

train, evaluate and predict also read their flags from `--config FILE` (TOML or
JSON; flags on the command line win).
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

from keras_ca2st.cli import evaluate, export, predict, train
from keras_ca2st.cli.bench import add_bench_parser
from keras_ca2st.cli.config import CLIError, parse_args

# Commands that need neither Keras nor the models: they answer at once.
LIGHT_COMMANDS = ("presets",)


def _presets(args):
    from keras_ca2st.presets import (
        available_presets,
        cache_root,
        load_preset_spec,
        preset_status,
    )

    for name in available_presets():
        spec = load_preset_spec(name)
        status = f"[{preset_status(name)}]"
        print(f"{name:<20} {spec['model_class']:<6} {status:<13} {spec['description']}")
    print(f"converted-preset cache: {cache_root()}")
    return 0


def _convert_preset(args):
    from keras_ca2st.conversion import ConversionError
    from keras_ca2st.presets import build_preset

    sources = {
        name: value
        for name, value in (
            ("spatial", args.spatial),
            ("temporal", args.temporal),
            ("audio", args.audio),
        )
        if value is not None
    }
    try:
        directory = build_preset(
            args.name,
            sources=sources,
            output_dir=args.output,
            allow_torchscript=args.trust_torchscript,
        )
    except ValueError as error:  # ConversionError and unknown preset names
        kind = "ca2st convert" if isinstance(error, ConversionError) else "ca2st"
        print(f"{kind}: {error}", file=sys.stderr)
        return 2
    print(f"wrote preset {args.name!r} to {directory}")
    return 0


def _convert_official_cast(args):
    from keras_ca2st.presets import convert_official_cast_preset

    if args.output_dir is None and args.preset is None:
        print(
            "ca2st convert official-cast: give OUTPUT_DIR, --preset NAME, or both.",
            file=sys.stderr,
        )
        return 2
    try:
        directory = convert_official_cast_preset(
            args.checkpoint,
            args.preset,
            output_dir=args.output_dir,
            num_heads=args.num_heads,
        )
    except ValueError as error:
        print(f"ca2st convert official-cast: {error}", file=sys.stderr)
        return 2
    print(f"wrote CAST preset to {directory}")
    return 0


def _info(args):
    import keras
    import numpy as np

    from keras_ca2st.presets import load_preset_spec
    from keras_ca2st.presets.loader import MODEL_CLASSES

    try:
        spec = load_preset_spec(args.preset)
    except ValueError as error:
        print(f"ca2st info: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    model = MODEL_CLASSES[spec["model_class"]].from_preset(
        args.preset, num_classes=args.num_classes, load_weights=False
    )
    built = time.perf_counter() - start
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    print(f"{args.preset} ({spec['model_class']}, backend {keras.config.backend()})")
    print(f"  experts: {', '.join(model.backbone.expert_names)}")
    print(f"  parameters: {total:,} total, {trainable:,} trainable")
    print(f"  built in {built:.1f}s (random weights; nothing downloaded)")
    if args.run:
        shapes = model.backbone.input_shapes()
        rng = np.random.default_rng(0)
        inputs = {
            name: rng.standard_normal((1, *shape)).astype("float32")
            for name, shape in shapes.items()
            if not name.endswith("_times")
        }
        start = time.perf_counter()
        logits = model.predict(inputs, verbose=0)
        print(
            f"  one clip: logits {tuple(logits.shape)} in "
            f"{time.perf_counter() - start:.1f}s"
        )
    return 0


def _demo(args):
    from keras_ca2st.cli.demo import DEMO_MODELS, run_demo

    models = args.models.split(",") if args.models else None
    unknown = sorted(set(models or []) - set(DEMO_MODELS))
    if unknown:
        print(
            f"ca2st demo: unknown model(s) {unknown}; choose from "
            f"{', '.join(DEMO_MODELS)}.",
            file=sys.stderr,
        )
        return 2
    run_demo(
        args.output_dir,
        num_train=args.num_train,
        num_val=args.num_val,
        epochs=args.epochs,
        seed=args.seed,
        models=models,
    )
    print(
        f"results: {args.output_dir}/demo_results.json, plot: {args.output_dir}/demo.png"
    )
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ca2st",
        description="CA²ST / CAST / CAVA video recognition for Keras 3. The backend "
        "follows KERAS_BACKEND (torch, jax or tensorflow).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    presets = commands.add_parser("presets", help="list the registered presets")
    presets.set_defaults(handler=_presets)
    info = commands.add_parser(
        "info", help="build a preset with random weights and print its size"
    )
    info.add_argument("preset", help="registered preset name, e.g. ca2st_base")
    info.add_argument("--num-classes", type=int, default=400)
    info.add_argument(
        "--run", action="store_true", help="also classify one random clip"
    )
    info.set_defaults(handler=_info)
    demo = commands.add_parser(
        "demo",
        help="train tiny single-expert, CAST, CAVA, CA²ST and LAVISH models on a "
        "synthetic audio-visual set (CPU, no download) and compare them",
    )
    demo.add_argument("--output-dir", default="ca2st_demo")
    demo.add_argument("--num-train", type=int, default=256)
    demo.add_argument("--num-val", type=int, default=48)
    demo.add_argument("--epochs", type=int, default=80)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--models", default="", help="comma-separated subset, e.g. 'CA²ST,CAST'"
    )
    demo.set_defaults(handler=_demo)
    _add_convert_parser(commands)
    add_bench_parser(commands)
    train.add_parser(commands)
    evaluate.add_parser(commands)
    predict.add_parser(commands)
    export.add_parser(commands)
    return parser


SOURCE_HELP = (
    "checkpoint file (.safetensors, .bin, .pth, .pt), save_pretrained directory, "
    "or Hugging Face repo id org/name[@revision]; default: the preset's source"
)


def _add_convert_parser(commands):
    convert = commands.add_parser(
        "convert",
        help="convert pretrained checkpoints into keras_ca2st presets",
        description="Convert checkpoints into keras-hub preset directories. "
        "Checkpoints are read with torch.load(weights_only=True) or as "
        "safetensors; no code stored in them runs, except for TorchScript "
        "archives, which are only opened with --trust-torchscript.",
    )
    kinds = convert.add_subparsers(dest="kind", required=True)
    preset = kinds.add_parser(
        "preset",
        help="a registered expert preset (cast_base, cava_base, ca2st_base, "
        "lavish_clip_base, lavish_clip_base_qa)",
        description="Convert the experts of a registered preset. Without --output "
        "the preset goes to the converted-preset cache ($KERAS_CA2ST_CACHE, else "
        "~/.cache/keras_ca2st), where from_preset(NAME) finds it. Experts without "
        "a source argument use the preset's Hugging Face source (downloaded, or "
        "from the HF cache; HF_HOME and HF_HUB_OFFLINE apply). A LAVISH preset's "
        "one shared expert takes the flag of its kind: --spatial for CLIP "
        "(lavish_clip_base).",
    )
    preset.add_argument("name", help="registered preset, e.g. ca2st_base")
    preset.add_argument("--spatial", metavar="SRC", help="CLIP: " + SOURCE_HELP)
    preset.add_argument("--temporal", metavar="SRC", help="VideoMAE: " + SOURCE_HELP)
    preset.add_argument("--audio", metavar="SRC", help="AST: " + SOURCE_HELP)
    preset.add_argument(
        "--output", metavar="DIR", help="write here instead of the preset cache"
    )
    preset.add_argument(
        "--trust-torchscript",
        action="store_true",
        help="allow TorchScript archives such as OpenAI's ViT-B-16.pt. Opening one "
        "RUNS THE CODE STORED IN IT: use only files from a source you trust.",
    )
    preset.set_defaults(handler=_convert_preset)
    official = kinds.add_parser(
        "official-cast",
        help="an authors' fine-tuned CAST checkpoint (K400, SSV2, EK100)",
        description="Convert a fine-tuned CAST checkpoint of KHU-VLL/CAST (state "
        "dict under 'module' or 'model'; EK100 head_noun/head_verb give the "
        "two-head model) into a preset that keras_ca2st.CAST.from_preset loads.",
    )
    official.add_argument("checkpoint", help="the .pth / .pt checkpoint")
    official.add_argument(
        "output_dir",
        nargs="?",
        help="preset directory to write (default with --preset: the preset cache)",
    )
    official.add_argument(
        "--preset",
        help="registered fine-tuned preset it is (cast_base_k400, cast_base_ssv2, "
        "cast_base_ek100): its architecture is used and, without OUTPUT_DIR, the "
        "result is cached so that CAST.from_preset(NAME) loads it",
    )
    official.add_argument(
        "--num-heads",
        type=int,
        help="attention heads when no --preset is given (default: width / 64)",
    )
    official.set_defaults(handler=_convert_official_cast)


def chosen_backend():
    """The Keras backend this process will use, read as Keras reads it."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as file:
            return json.load(file).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


# Lines TensorFlow's native logging prints when it is imported (CUDA probing,
# oneDNN notices), before any Python logging is set up.
TENSORFLOW_START_UP_LINES = (
    "I0000 ",
    "W0000 ",
    "WARNING: All log messages before absl::InitializeLog()",
    "To enable the following instructions:",
)


@contextlib.contextmanager
def quiet_unchosen_backends():
    """Drops TensorFlow's start-up log lines unless TensorFlow is the backend.

    keras-hub imports TensorFlow whenever it is installed, and TensorFlow's
    native (absl) logging writes to the process's stderr directly, ignoring
    `TF_CPP_MIN_LOG_LEVEL`, under `KERAS_BACKEND=torch` or `jax` too. Native
    stderr is captured while Keras and the models are imported; every other
    line is written back.
    """
    if chosen_backend() == "tensorflow":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if not line.startswith(TENSORFLOW_START_UP_LINES):
                    print(line, file=sys.stderr)


def main(argv=None):
    try:
        args = parse_args(build_parser(), argv)
    except CLIError as error:  # a bad --config file
        print(f"ca2st: {error}", file=sys.stderr)
        return 2
    if args.command not in LIGHT_COMMANDS:
        import keras_ca2st

        with quiet_unchosen_backends():
            keras_ca2st.load_all()  # Keras classes and the preset resolver
    try:
        return args.handler(args)
    except CLIError as error:
        print(f"ca2st {args.command}: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file the user named cannot be read or written
        where = f"{error.filename}: " if error.filename else ""
        print(
            f"ca2st {args.command}: {where}{error.strerror or error}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
