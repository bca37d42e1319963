"""Converted presets on disk: the cache location, writing, and verification.

A converted preset is a keras-hub preset directory (`config.json`,
`model.weights.h5`, `metadata.json`, and for fine-tuned tasks `task.json`,
`task.weights.h5`) plus `ca2st_manifest.json`, which records the sha256 of every
file at write time, the architecture it was built for and where its weights
came from. A preset is written to a temporary directory and moved into place, so
readers never see a half-written one; before use its files are hashed again.

The cache lives in `$KERAS_CA2ST_CACHE`, else `$XDG_CACHE_HOME/keras_ca2st`, else
`~/.cache/keras_ca2st`; converted registered presets sit in `presets/<name>/`.
"""

import datetime
import hashlib
import json
import os
import shutil
import uuid

from keras_ca2st.conversion.errors import ConversionError
from keras_ca2st.presets.errors import CorruptPresetError
from keras_ca2st.version import __version__

CACHE_ENV = "KERAS_CA2ST_CACHE"
MANIFEST_FILE = "ca2st_manifest.json"
MANIFEST_FORMAT = 1


def cache_root():
    """The root of the converted-preset cache (read from the environment now)."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache"
        )
        root = os.path.join(base, "keras_ca2st")
    return os.path.abspath(os.path.expanduser(root))


def cached_preset_dir(name):
    """Where the converted weights of registered preset `name` are cached."""
    return os.path.join(cache_root(), "presets", name)


def architecture_digest(spec):
    """A sha256 of what fixes a preset's weight layout (class, backbone, task)."""
    fields = {k: spec.get(k) for k in ("model_class", "backbone", "task")}
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(directory):
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as file:
            return json.load(file)
    except ValueError as error:
        raise CorruptPresetError(f"{path} is not valid JSON.") from error


def verify_preset_dir(directory, spec=None):
    """Check a converted preset against its manifest; return the manifest.

    Raises `CorruptPresetError` when the manifest is missing or unreadable, a
    file is missing or its sha256 differs from the recorded one, or (with
    `spec`) the preset was built for another architecture.
    """
    manifest = read_manifest(directory)
    if manifest is None:
        raise CorruptPresetError(f"{directory} has no {MANIFEST_FILE}.")
    problems = []
    for name, expected in sorted(manifest.get("files", {}).items()):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            problems.append(f"{name} is missing")
        elif file_sha256(path) != expected:
            problems.append(f"{name} does not match its recorded sha256 {expected}")
    if not manifest.get("files"):
        problems.append("the manifest lists no files")
    if spec is not None and manifest.get("architecture_sha256") != architecture_digest(
        spec
    ):
        problems.append("it was built for a different architecture of the preset")
    if problems:
        raise CorruptPresetError(
            f"The converted preset in {directory} cannot be used: "
            + "; ".join(problems)
            + "."
        )
    return manifest


def save_preset(model, directory, preset_name, architecture, sources):
    """Write `model` (a backbone or task) as a verified preset directory.

    Args:
        model: a `CA2STBackbone` or `VideoClassifier`.
        directory: the preset directory. An existing one is replaced only if it
            is empty or a converted preset (has a manifest).
        preset_name: registered preset name or `None`.
        architecture: the preset spec whose architecture the files hold, or
            `None` for a preset not built from a registered spec.
        sources: JSON-serialisable description of where the weights came from.
    """
    directory = os.path.abspath(directory)
    if os.path.isdir(directory) and os.listdir(directory):
        if not os.path.exists(os.path.join(directory, MANIFEST_FILE)):
            raise ConversionError(
                f"{directory} exists and is not a converted preset; choose a new "
                "or empty directory."
            )
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(directory)
    staging = os.path.join(parent, f".{base}.partial-{uuid.uuid4().hex[:8]}")
    try:
        model.save_to_preset(staging)
        files = {
            name: file_sha256(os.path.join(staging, name))
            for name in sorted(os.listdir(staging))
            if os.path.isfile(os.path.join(staging, name))
        }
        manifest = {
            "format": MANIFEST_FORMAT,
            "preset": preset_name,
            "model_class": type(model).__name__,
            "architecture_sha256": architecture_digest(architecture)
            if architecture is not None
            else None,
            "files": files,
            "sources": sources,
            "created": datetime.datetime.now(datetime.UTC).isoformat(),
            "keras_ca2st_version": __version__,
        }
        with open(os.path.join(staging, MANIFEST_FILE), "w") as file:
            json.dump(manifest, file, indent=2)
        _replace_directory(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _replace_directory(source, target):
    if os.path.exists(target):
        if not os.path.isdir(target):
            raise ConversionError(f"{target} exists and is not a directory.")
        trash = f"{target}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, trash)
        try:
            os.rename(source, target)
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(source, target)


def preset_status(name):
    """`"cached"`, `"not cached"` or `"corrupt"` (reads the manifest, no hashing)."""
    try:
        manifest = read_manifest(cached_preset_dir(name))
    except CorruptPresetError:
        return "corrupt"
    return "cached" if manifest else "not cached"
