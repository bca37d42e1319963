"""`ca2st train`: the reference recipe on `model.fit`, from flags or a config file.

The model is a registered preset (`--preset`, pretrained through
`from_preset`, or `--random-init`) or a saved `.keras` model (`--model`). The
clip geometry comes from the model's inputs; sampling, flips, views and the
mixup probability from the dataset recipe (`--dataset`). Optimizer, loss,
metrics, checkpoints, resumable state and distribution are the package's own
(`keras_ca2st.training`). The output directory ends up with `model.keras`,
`run.json` (what `ca2st evaluate` and `ca2st predict` need), `log.csv`,
per-epoch checkpoints and the training state; the same command again resumes
from the last finished epoch.
"""

import argparse
import os

from keras_ca2st.cli import options, runs
from keras_ca2st.cli.config import CLIError
from keras_ca2st.cli.options import CommandFlags
from keras_ca2st.data import RECIPE_NAMES, dataset_recipe
from keras_ca2st.presets import load_preset_spec
from keras_ca2st.training import DISTRIBUTION_KINDS, Recipe

# The values of `CrossExpertEncoder(gradient_checkpointing=...)`, mirrored
# (a test keeps them equal): the flags are declared without importing Keras.
GRADIENT_CHECKPOINTING = ("none", "frozen", "all")
# The optimizer flags: (flag, `Recipe` field, type, metavar, help).
RECIPE_FLAGS = (
    (
        "--lr",
        "base_learning_rate",
        float,
        "LR",
        "base learning rate per 256 samples (peak: LR × global batch / 256)",
    ),
    ("--warmup-epochs", "warmup_epochs", float, "N", None),
    ("--weight-decay", "weight_decay", float, "WD", None),
    (
        "--layer-decay",
        "layer_decay",
        float,
        "LD",
        "per-block learning-rate decay (0.75 video, 0.8 audio-visual)",
    ),
    (
        "--accumulation-steps",
        "accumulation_steps",
        int,
        "N",
        "batches per optimizer update",
    ),
    ("--label-smoothing", "label_smoothing", float, "S", None),
)


def parse_num_classes(value):
    """`N`, or `HEAD=N,HEAD=N` (EPIC-KITCHENS-100: `verb=97,noun=300`)."""
    if isinstance(value, dict):
        return {str(head): int(count) for head, count in value.items()}
    if isinstance(value, int):
        return value
    text = str(value)
    if "=" not in text:
        return int(text)
    heads = {}
    for part in text.split(","):
        head, _, count = part.partition("=")
        heads[head.strip()] = int(count)
    return heads


def add_parser(commands):
    flags = CommandFlags(
        commands.add_parser(
            "train",
            help="train or fine-tune a model on annotated videos",
            description="Train a CAST / CAVA / CA²ST / LAVISH classifier with the "
            "reference recipe (layer-decayed AdamW, warm-up + cosine, label "
            "smoothing, mixup per the dataset recipe). Running the same command "
            "again resumes from the last finished epoch.",
        )
    )
    model = flags.group("model (one of --preset, --model)")
    flags.add(
        "--preset",
        group=model,
        metavar="NAME",
        help="registered preset (`ca2st presets`) or preset directory; "
        "pretrained weights unless --random-init",
    )
    flags.add_shared(
        options.MODEL,
        group=model,
        metavar="FILE.keras",
        help="a saved keras_ca2st model (loaded in safe mode), e.g. one you built",
    )
    flags.add(
        "--num-classes",
        group=model,
        type=parse_num_classes,
        metavar="N|HEAD=N,...",
        help="classes of a preset's new head(s), e.g. 309 or verb=97,noun=300 "
        "(default: the recipe's, else one per --class-names line)",
    )
    flags.add(
        "--gradient-checkpointing",
        group=model,
        choices=GRADIENT_CHECKPOINTING,
        default="none",
        help="recompute in the backward pass instead of keeping: the frozen "
        "experts' attention and MLP (frozen), or whole blocks (all); gradients "
        "are unchanged, memory drops, steps take longer (CAST / CAVA / CA2ST)",
    )
    flags.add(
        "--random-init",
        group=model,
        action=argparse.BooleanOptionalAction,
        default=False,
        help="build --preset with random weights (nothing downloaded)",
    )
    data = flags.group("data")
    flags.add("--train-annotations", group=data, metavar="FILE", help="required")
    flags.add("--val-annotations", group=data, metavar="FILE")
    flags.add_shared(
        options.DATA_ROOT, group=data, default="", help="prefix of the video paths"
    )
    flags.add_shared(
        options.CLASS_NAMES,
        group=data,
        help="class names, saved in run.json for `ca2st predict`",
    )
    flags.add_shared(
        options.DATASET,
        group=data,
        help="data recipe (annotation format, sampling, flips, test views, "
        f"mixup): {', '.join(RECIPE_NAMES)}; default: VideoDataset's defaults, "
        "CSV annotations for .csv files, else 'path label' lines",
    )
    flags.add_shared(
        options.MISSING_AUDIO,
        group=data,
        help="a video without audio track (audio models): skip it as a bad "
        "sample, or feed silence",
    )
    flags.add_shared(options.WORKERS, group=data)
    recipe = flags.group("recipe")
    defaults = Recipe()
    flags.add("--epochs", group=recipe, type=int, default=defaults.epochs, metavar="N")
    flags.add_shared(
        options.BATCH_SIZE,
        group=recipe,
        default=defaults.batch_size,
        help="global batch (all replicas)",
    )
    for flag, field, kind, metavar, text in RECIPE_FLAGS:
        flags.add(
            flag,
            group=recipe,
            type=kind,
            default=getattr(defaults, field),
            metavar=metavar,
            help=text,
        )
    flags.add(
        "--mixed-precision",
        group=recipe,
        choices=("fp32", "bf16", "fp16"),
        default=defaults.mixed_precision,
        help="bf16 or fp16 (with loss scaling) compute; variables stay float32",
    )
    flags.add("--seed", group=recipe, type=int, default=defaults.seed, metavar="N")
    run = flags.group("run")
    flags.add("--output-dir", group=run, metavar="DIR", default="ca2st_run")
    flags.add(
        "--distribution",
        group=run,
        choices=DISTRIBUTION_KINDS,
        default="none",
        help="data-parallel engine: 'data-parallel' picks the backend's (JAX "
        "DataParallel over all devices, torch DDP under torchrun, TF "
        "MirroredStrategy)",
    )
    return flags.finish(handler=run_training)


def recipe_from_args(args):
    """The `Recipe` the flags describe; a bad value is a `CLIError`."""
    try:
        return Recipe(
            epochs=args.epochs,
            batch_size=args.batch_size,
            mixed_precision=args.mixed_precision,
            seed=args.seed,
            **{
                field: getattr(args, flag[2:].replace("-", "_"))
                for flag, field, *_ in RECIPE_FLAGS
            },
        )
    except ValueError as error:
        raise CLIError(str(error)) from None


def run_training(args):
    # Keras loads here, not when the flags are declared.
    import keras

    from keras_ca2st.data import Mixup, VideoDataset, pad_batches
    from keras_ca2st.training import (
        fit_with_recipe,
        read_training_state,
        setup_distribution,
    )

    training = recipe_from_args(args)  # flag values first: they need no files
    if bool(args.preset) == bool(args.model):
        raise CLIError("give the model with --preset NAME or --model FILE.keras.")
    if not args.train_annotations:
        raise CLIError("give --train-annotations FILE (flag or config key).")
    for path in (args.train_annotations, args.val_annotations):
        if path and os.path.isdir(path):
            raise CLIError(
                f"{path}: is a directory; give the annotation file inside it."
            )
        if path and not os.path.isfile(path):
            raise CLIError(f"{path}: annotation file not found.")
    data_recipe = dataset_recipe(args.dataset) if args.dataset else None
    try:
        dist = setup_distribution(args.distribution)
        per_process_batch = dist.per_process_batch_size(args.batch_size)
    except ValueError as error:
        raise CLIError(str(error)) from None
    say = print if dist.is_chief else _quiet
    policy = training.dtype_policy
    class_names = (
        runs.read_class_names_argument(args.class_names) if args.class_names else None
    )
    keras.utils.set_random_seed(args.seed)
    with dist.scope():
        model = build_model(args, data_recipe, class_names, policy)
    num_classes = model.num_classes
    if class_names is not None:
        runs.check_class_names(class_names, num_classes, args.class_names)
    spec = model.backbone.clip_spec  # what the batches must hold
    geometry = runs.clip_geometry(model)
    data_settings = {**(data_recipe["dataset"] if data_recipe else {}), **geometry}
    annotation_format = runs.annotation_format(args.dataset, args.train_annotations)

    def dataset(path, mode, **kwargs):
        records = runs.read_records(path, annotation_format, args.data_root)
        runs.check_labels(records, num_classes)
        try:
            return VideoDataset(
                records,
                per_process_batch,
                mode=mode,
                seed=args.seed,
                missing_audio=args.missing_audio,
                workers=args.workers,
                num_shards=dist.data_shards,
                shard_index=dist.data_shard_index,
                spec=spec,
                **data_settings,
                **kwargs,
            )
        except ValueError as error:  # e.g. fewer samples than one batch
            raise CLIError(f"{path}: {error}") from None

    mixup_prob = data_recipe["mixup_prob"] if data_recipe else 0.0
    mixup = (
        Mixup(num_classes, prob=mixup_prob, label_smoothing=args.label_smoothing)
        if mixup_prob > 0
        else None
    )
    train = dataset(args.train_annotations, "train", mixup=mixup)
    val = dataset(args.val_annotations, "val") if args.val_annotations else None
    val_data = None
    if val is not None:
        # A process feeding several devices (JAX DataParallel) splits every
        # batch evenly over them: a last, smaller validation batch is padded.
        devices = dist.num_replicas // dist.num_processes
        val_data = pad_batches(val, multiple_of=devices)

    say(
        f"training {type(model).__name__} ({', '.join(model.backbone.expert_names)}) "
        f"on {len(train.records)} videos, {len(train)} steps per epoch"
        + (
            f" per process ({dist.num_processes} processes)"
            if dist.num_processes > 1
            else ""
        )
        + f", backend {keras.config.backend()}, distribution {dist.kind}"
    )
    state = read_training_state(os.path.join(args.output_dir, "state"))
    if state is not None:
        done = int(state["epoch"])
        if done >= args.epochs:
            say(
                f"{args.output_dir}: already trained for {done} epochs (--epochs "
                f"{args.epochs}); nothing to resume."
            )
        else:
            say(f"resuming {args.output_dir} after epoch {done} of {args.epochs}")
    fit_with_recipe(
        model,
        train,
        training,
        validation=val_data,
        output_dir=args.output_dir,
        distribution=dist,
        datasets=[d for d in (train, val) if d is not None],
    )
    if dist.is_chief:
        model_path = os.path.join(args.output_dir, runs.MODEL_FILE)
        model.save(model_path)
        run_path = os.path.join(args.output_dir, runs.RUN_FILE)
        runs.write_run_info(
            run_path,
            run_info(args, model, class_names, data_settings, annotation_format, dist),
        )
        say(f"wrote {model_path} and {run_path}")
    _finish(dist)
    return 0


def expected_classes(args, data_recipe, class_names):
    """The classes the flags ask for and the flag that says so, or `(None, None)`."""
    if args.num_classes is not None:
        return args.num_classes, "--num-classes"
    if data_recipe is not None and data_recipe.get("num_classes") is not None:
        return data_recipe["num_classes"], f"the recipe {args.dataset!r}"
    if class_names is not None:
        return runs.class_counts(class_names), f"--class-names {args.class_names}"
    return None, None


def build_model(args, data_recipe, class_names, policy):
    """The model to train: a preset with new heads, or a saved model."""
    from keras_ca2st.models import LAVISH, VideoClassifier

    wanted, source = expected_classes(args, data_recipe, class_names)
    if args.model:
        if args.random_init:
            raise CLIError("--random-init applies to --preset, not --model.")
        model = runs.load_model(args.model)
        if wanted is not None and wanted != model.num_classes:
            raise CLIError(
                f"{args.model} has {model.num_classes} classes, but {source} says "
                f"{wanted}."
            )
        return _with_backbone_settings(model, args, policy)
    try:
        is_directory = os.path.isdir(args.preset)
        spec = None if is_directory else load_preset_spec(args.preset)
        model_class = (
            LAVISH if spec and spec["model_class"] == "LAVISH" else VideoClassifier
        )
        kwargs = {} if wanted is None else {"num_classes": wanted}
        if policy != "float32":
            kwargs["dtype"] = policy
        if args.gradient_checkpointing != "none":
            if model_class is LAVISH:
                raise CLIError(
                    "--gradient-checkpointing is available for CAST, CAVA and "
                    "CA2ST models, not LAVISH."
                )
            kwargs["gradient_checkpointing"] = args.gradient_checkpointing
        return model_class.from_preset(
            args.preset, load_weights=not args.random_init, **kwargs
        )
    except ValueError as error:  # unknown preset, no num_classes, no weights
        raise CLIError(str(error)) from None


def _with_backbone_settings(model, args, policy):
    """The saved model, rebuilt (same weights) with the flags' dtype policy and
    gradient checkpointing when they differ from its own."""
    changes = {}
    if policy != "float32":
        changes["dtype"] = policy
    if args.gradient_checkpointing != "none":
        if not hasattr(model.backbone, "gradient_checkpointing"):
            raise CLIError(
                "--gradient-checkpointing is available for CAST, CAVA and CA2ST "
                "models, not LAVISH."
            )
        changes["gradient_checkpointing"] = args.gradient_checkpointing
    if not changes:
        return model
    config = model.get_config()
    config["backbone"]["config"].update(changes)
    rebuilt = type(model).from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def run_info(args, model, class_names, data_settings, annotation_format, dist):
    """The `run.json` of a finished run."""
    import keras

    return {
        "model": runs.MODEL_FILE,
        "model_class": type(model).__name__,
        "preset": args.preset,
        "initial_model": os.path.abspath(args.model) if args.model else None,
        "random_init": bool(args.random_init) if args.preset else None,
        "num_classes": model.num_classes,
        "class_names": class_names,
        "dataset": args.dataset,
        "annotation_format": annotation_format,
        "data_root": os.path.abspath(args.data_root) if args.data_root else "",
        "data": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in data_settings.items()
        },
        "inputs": {
            name: list(shape) for name, shape in model.backbone.input_shapes().items()
        },
        "clip_spec": model.backbone.clip_spec.to_dict(),
        "training": {
            key: getattr(args, key)
            for key in (
                "train_annotations",
                "val_annotations",
                "epochs",
                "batch_size",
                "lr",
                "warmup_epochs",
                "weight_decay",
                "layer_decay",
                "accumulation_steps",
                "mixed_precision",
                "label_smoothing",
                "seed",
            )
        },
        "backend": keras.config.backend(),
        "distribution": dist.kind,
        "replicas": dist.num_replicas,
    }


def _finish(dist):
    if dist.kind == "torch-ddp" and dist.num_processes > 1:
        import torch.distributed

        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _quiet(*args, **kwargs):
    return None
