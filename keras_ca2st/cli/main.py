"""`ca2st`: command-line entry point.

Commands:
    ca2st presets            list the registered presets
    ca2st info PRESET        build a preset (random weights, no download), print
                             its parameter counts and run one random clip
"""

import argparse
import sys
import time


def _presets(args):
    from keras_ca2st.models.ca2st.ca2st_presets import (
        available_presets,
        load_preset_spec,
    )

    for name in available_presets():
        spec = load_preset_spec(name)
        print(f"{name:<14} {spec['model_class']:<6} {spec['description']}")
    return 0


def _info(args):
    import keras
    import numpy as np

    from keras_ca2st.models.ca2st.ca2st_presets import load_preset_spec
    from keras_ca2st.models.ca2st.ca2st_video_classifier import MODEL_CLASSES

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
        shapes = model.backbone.encoder.input_shapes()
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
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
