"""What the `ca2st` train / evaluate / predict commands share.

- Loading a model from a run directory (`model.keras` + `run.json`, as
  `ca2st train` writes them) or from any `.keras` file of a keras_ca2st model.
- `run.json`: the class names, dataset recipe and data settings a trained
  model needs for evaluation and prediction.
- The data settings of a model: the clip contract (frames, crop, audio
  frames, mel bins, time intervals, which inputs) is the model's own
  `backbone.clip_spec`, so data and model cannot disagree; sampling and views
  come from a recipe, the run, or flags.
"""

import json
import os
import warnings

from keras_ca2st.cli.config import CLIError
from keras_ca2st.data import (
    RECIPE_NAMES,
    SAMPLING_SCHEMES,
    AnnotationError,
    dataset_recipe,
    read_annotations,
    read_class_names,
)

MODEL_FILE = "model.keras"
RUN_FILE = "run.json"
# VideoDataset settings that evaluation and prediction take from a run.
EVALUATION_SETTINGS = ("sampling", "frame_stride", "num_test_clips", "num_test_crops")


def model_files(path):
    """`(model.keras path, run.json path or None)` for a run dir or `.keras` file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        model = os.path.join(path, MODEL_FILE)
        if not os.path.exists(model):
            raise CLIError(
                f"{path}: no {MODEL_FILE} here; is it a finished `ca2st train` run "
                "directory? (An interrupted run continues with the same train "
                "command.)"
            )
    elif not os.path.exists(path):
        raise CLIError(f"{path}: no such model file or run directory.")
    else:
        model = path
    run = os.path.join(os.path.dirname(os.path.abspath(model)), RUN_FILE)
    return model, run if os.path.exists(run) else None


def load_model(path):
    """A keras_ca2st classifier from a `.keras` file (safe mode, not compiled)."""
    # Keras and the models load here, not when the commands' flags are
    # declared (`ca2st --help` answers without a backend).
    import keras

    from keras_ca2st.models import LAVISH, VideoClassifier

    try:
        with warnings.catch_warnings():
            # The classifier compiles itself with a default (unbuilt) optimizer
            # when it is built, which does not match a trained optimizer's
            # saved variables; we do not need them.
            warnings.filterwarnings(
                "ignore", message="Skipping variable loading for optimizer"
            )
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CLIError(
            f"{path}: cannot load it as a Keras model ({type(error).__name__}: "
            f"{reason})"
        ) from None
    if not isinstance(model, (VideoClassifier, LAVISH)):
        raise CLIError(
            f"{path}: a {type(model).__name__}, not a keras_ca2st model (CAST, CAVA, "
            "CA2ST, VideoClassifier or LAVISH)."
        )
    return model


def read_run_info(path):
    """The `run.json` dict (empty without one), its entries checked.

    `ca2st train` writes it; a hand-edited or foreign file is refused with the
    key that is wrong rather than failing later in the command.
    """
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError) as error:
        raise CLIError(f"{path}: unreadable run file ({error}).") from None
    if not isinstance(info, dict):
        raise CLIError(
            f"{path}: a run file holds a JSON object (as `ca2st train` writes it), "
            f"not a {type(info).__name__}; fix or delete it."
        )
    for key, accepted, what in RUN_INFO_ENTRIES:
        value = info.get(key)
        if value is not None and not accepted(value):
            raise CLIError(
                f"{path}: {key!r} must be {what}; got {json.dumps(value)[:80]}. "
                "Fix or delete the run file."
            )
    for key in EVALUATION_SETTINGS:
        value = info.get("data", {}).get(key)
        valid = (
            value in SAMPLING_SCHEMES
            if key == "sampling"
            else isinstance(value, int) and not isinstance(value, bool) and value > 0
        )
        if value is not None and not valid:
            what = (
                f"one of {list(SAMPLING_SCHEMES)}"
                if key == "sampling"
                else ("a positive integer")
            )
            raise CLIError(
                f"{path}: 'data.{key}' must be {what}; got {json.dumps(value)[:80]}. "
                "Fix or delete the run file."
            )
    return info


def _names(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


RUN_INFO_ENTRIES = (
    (
        "class_names",
        lambda v: (
            _names(v)
            or (isinstance(v, dict) and all(_names(names) for names in v.values()))
        ),
        "a list of names or a table head → list of names",
    ),
    ("dataset", lambda v: v in RECIPE_NAMES, f"one of {list(RECIPE_NAMES)}"),
    ("data_root", lambda v: isinstance(v, str), "a directory path"),
    ("data", lambda v: isinstance(v, dict), "a table of data settings"),
)


def write_run_info(path, info):
    """Writes `run.json` atomically."""
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=1)
    os.replace(temporary, path)


def load_run(path):
    """`(model, run info)` from a run directory or a `.keras` file."""
    model_path, run_path = model_files(path)
    return load_model(model_path), read_run_info(run_path)


def clip_geometry(model):
    """The `VideoDataset` geometry arguments of `model`'s clip spec.

    What `run.json` records under `"data"`: `audio_frames` (`None` for
    models without audio) and, for models that see frames, `num_frames` and
    `crop_size`.
    """
    spec = model.backbone.clip_spec
    geometry = {"audio_frames": spec.audio_frames}
    if spec.has_video:
        geometry.update(num_frames=spec.num_frames, crop_size=spec.crop_size)
    return geometry


def annotation_format(recipe_name, path):
    """The recipe's annotation format, else CSV for `.csv` files and else
    `path label` lines."""
    if recipe_name:
        return dataset_recipe(recipe_name)["annotation_format"]
    return "csv" if os.fspath(path).lower().endswith(".csv") else "space"


def evaluation_settings(model, run_info, recipe_name=None, views=None):
    """`VideoDataset` keyword arguments to evaluate or apply `model`.

    `spec` is the model's clip spec. Sampling and views come from
    `recipe_name` if given, else from the run's `run.json`, else
    `VideoDataset`'s defaults; `views` (`(clips, crops)`) overrides the views.
    """
    if recipe_name:
        source = dataset_recipe(recipe_name)["dataset"]
    else:
        source = run_info.get("data", {})
    settings = {k: source[k] for k in EVALUATION_SETTINGS if k in source}
    if views is not None:
        settings["num_test_clips"], settings["num_test_crops"] = views
    return {"spec": model.backbone.clip_spec, **settings}


def read_records(path, format, root):
    """Annotation records; a missing or malformed file is a `CLIError`."""
    try:
        return read_annotations(path, format, root)
    except AnnotationError as error:
        raise CLIError(str(error)) from None


def check_labels(records, num_classes):
    """Every label is a class of the model (per head for dict labels)."""
    for record in records:
        labels = record.label if isinstance(record.label, dict) else None
        if isinstance(num_classes, dict) != isinstance(labels, dict):
            raise CLIError(
                f"{record.source}: label {record.label!r} does not fit a model with "
                f"{num_classes} classes."
            )
        pairs = (
            [(labels[h], num_classes[h], h) for h in num_classes if h in labels]
            if labels is not None
            else [(record.label, num_classes, None)]
        )
        for label, classes, head in pairs:
            if not 0 <= label < classes:
                what = f"{head} label" if head else "label"
                raise CLIError(
                    f"{record.source}: {what} {label} is outside the model's "
                    f"{classes} classes."
                )


def parse_class_names_argument(text):
    """`FILE` or `HEAD=FILE,HEAD=FILE` → a path or a dict of paths."""
    text = str(text)
    if "=" not in text:
        return text
    paths = {}
    for part in text.split(","):
        head, _, path = part.partition("=")
        paths[head.strip()] = path.strip()
    return paths


def read_class_names_argument(argument):
    """Class names of `--class-names FILE` (a list) or `HEAD=FILE,...` (a dict)."""
    paths = parse_class_names_argument(argument)
    try:
        if isinstance(paths, dict):
            return {head: read_class_names(path) for head, path in paths.items()}
        return read_class_names(paths)
    except AnnotationError as error:
        raise CLIError(str(error)) from None


def class_counts(names):
    """Number of classes the names describe (a dict per head)."""
    if isinstance(names, dict):
        return {head: len(value) for head, value in names.items()}
    return len(names)


def check_class_names(names, num_classes, where):
    """The class names describe the model's classes (per head)."""
    if isinstance(names, dict) != isinstance(num_classes, dict) or (
        isinstance(names, dict) and set(names) != set(num_classes)
    ):
        heads = (
            f"the heads {', '.join(num_classes)}"
            if isinstance(num_classes, dict)
            else "one head"
        )
        raise CLIError(
            f"{where}: the model has {heads}; give FILE for one head, "
            "HEAD=FILE,HEAD=FILE for several."
        )
    if isinstance(num_classes, dict):
        for head, classes in num_classes.items():
            check_class_names(names[head], classes, f"{where} ({head})")
    elif len(names) != num_classes:
        raise CLIError(
            f"{where}: {len(names)} class names, but the model has {num_classes} "
            "classes."
        )
