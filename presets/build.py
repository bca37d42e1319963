"""Pretrained weights of registered presets: resolve, convert once, cache, verify.

`pretrained_preset_dir(name)` serves a registered preset from the cache of
converted weights (see `store.py`). On a miss, an expert preset (CAST, CAVA,
CA²ST on pretrained CLIP / VideoMAE / AST; LAVISH on its one shared expert)
fetches its sources through
`huggingface_hub` (honouring `HF_HOME`, the HF cache and `HF_HUB_OFFLINE`),
converts them and caches the result; a fine-tuned preset (the authors' CAST
checkpoints) has no hub source and must be converted once with
`ca2st convert official-cast`. Either way a miss that cannot be filled raises
one `PresetWeightsUnavailableError` naming the missing sources and the command
that builds the preset from local files.
"""

import logging
import os
import re

from keras_ca2st.conversion import (
    ConversionError,
    convert_official_cast,
    load_expert_weights,
    read_checkpoint,
)
from keras_ca2st.conversion.convert_cast import official_cast_num_classes
from keras_ca2st.models import CA2STBackbone, LAVISHBackbone
from keras_ca2st.presets.errors import (
    CorruptPresetError,
    PresetWeightsUnavailableError,
)
from keras_ca2st.presets.hub import DEFAULT_WEIGHT_FILES, HubSession, SourceUnavailable
from keras_ca2st.presets.registry import load_preset_spec
from keras_ca2st.presets.store import cached_preset_dir, save_preset, verify_preset_dir

logger = logging.getLogger("keras_ca2st.presets")

HUB_ID = re.compile(r"(?:hf://)?([\w.-]+/[\w.-]+)(?:@([\w./-]+))?")
SERVED_MODEL_CLASSES = ("CAST", "CAVA", "CA2ST", "LAVISH")
# LAVISH's one shared expert goes by the role its class plays in CA²ST, so its
# source and the `ca2st convert preset` flag read as they do for CAST:
# `--spatial` for CLIP, `--temporal` for VideoMAE, `--audio` for AST.
SHARED_EXPERT_ROLES = {
    "CLIPVisionEncoder": "spatial",
    "VideoMAEEncoder": "temporal",
    "ASTEncoder": "audio",
}


def _check_served(name, spec):
    if spec["model_class"] not in SERVED_MODEL_CLASSES:
        raise ConversionError(
            f"Preset {name!r} is a {spec['model_class']} preset; converted weights "
            f"are available for {', '.join(SERVED_MODEL_CLASSES)} presets."
        )


def preset_experts(spec):
    """Dict expert name → expert config of a preset spec, in backbone order."""
    if spec["model_class"] != "LAVISH":
        return dict(spec["backbone"]["experts"])
    encoder = spec["backbone"]["encoder"]
    class_name = encoder.get("class_name", "").rpartition(">")[2]
    if class_name not in SHARED_EXPERT_ROLES:
        raise ConversionError(
            f"No converter for a LAVISH encoder of type {class_name!r}; expected "
            f"one of {', '.join(SHARED_EXPERT_ROLES)}."
        )
    return {SHARED_EXPERT_ROLES[class_name]: encoder}


def _backbone_with_experts(spec):
    """A random-weight backbone of `spec` and dict expert name → its expert layer."""
    if spec["model_class"] == "LAVISH":
        backbone = LAVISHBackbone(**spec["backbone"])
        (name,) = preset_experts(spec)
        return backbone, {name: backbone.lavish_encoder.encoder}
    backbone = CA2STBackbone(**spec["backbone"])
    return backbone, dict(backbone.encoder.experts)


def weights_kind(spec):
    """`"experts"` (pretrained experts, fresh fusion) or `"fine_tuned"` (a task)."""
    return spec.get("weights", {}).get("kind", "experts")


def parse_source(text):
    """A local checkpoint path, or a hub repo id `org/name[@revision]`."""
    text = os.fspath(text)
    if os.path.exists(text):
        return {"kind": "local", "path": os.path.abspath(text)}
    match = HUB_ID.fullmatch(text)
    if match and not text.startswith((".", "/", "~")):
        return {"kind": "hub", "repo_id": match[1], "revision": match[2] or "main"}
    raise ConversionError(
        f"{text!r} is neither an existing checkpoint file or directory nor a "
        "Hugging Face repo id (org/name[@revision])."
    )


def describe_source(source):
    if source["kind"] == "local":
        return source["path"]
    files = " or ".join(source.get("files") or DEFAULT_WEIGHT_FILES)
    return (
        f"Hugging Face {source['repo_id']} (revision {source.get('revision', 'main')}"
        f"; {files})"
    )


def _registered_source(spec, expert_name):
    sources = spec.get("weights", {}).get("sources", {})
    if expert_name not in sources:
        raise ConversionError(f"The preset names no weight source for {expert_name}.")
    source = dict(sources[expert_name])
    source["kind"] = "hub"
    return source


def _open_source(source, session, allow_torchscript):
    if source["kind"] == "local":
        checkpoint = read_checkpoint(
            source["path"], allow_torchscript=allow_torchscript
        )
        return checkpoint, {"kind": "local", "path": source["path"]}
    resolved = session.fetch(
        source["repo_id"],
        revision=source.get("revision", "main"),
        files=tuple(source.get("files") or DEFAULT_WEIGHT_FILES),
        config=source.get("config", "config.json"),
    )
    checkpoint = read_checkpoint(resolved["weights"], config=resolved["config"])
    record = {
        "kind": "hub",
        "repo_id": source["repo_id"],
        "revision": source.get("revision", "main"),
        "commit": resolved["commit"],
        "files": resolved["files"],
    }
    return checkpoint, record


def build_preset(name, sources=None, output_dir=None, allow_torchscript=False):
    """Convert the experts of registered preset `name` and save the preset.

    Args:
        name: a registered expert preset, e.g. `"ca2st_base"` or
            `"lavish_clip_base"`.
        sources: optional dict expert name → checkpoint file, Hugging Face
            directory or hub id (`org/name[@revision]`); experts left out use
            the preset's registered hub source.
        output_dir: where to write the preset; by default the preset cache, so
            that `from_preset(name)` finds it.
        allow_torchscript: read TorchScript archives (OpenAI's `ViT-B-16.pt`);
            this runs code stored in them.

    Returns:
        The preset directory.
    """
    spec = load_preset_spec(name)
    _check_served(name, spec)
    if weights_kind(spec) != "experts":
        raise ConversionError(
            f"Preset {name!r} is a fine-tuned checkpoint; convert it with "
            f"`ca2st convert official-cast CHECKPOINT.pth --preset {name}`."
        )
    experts = list(preset_experts(spec))
    sources = dict(sources or {})
    unknown = sorted(set(sources) - set(experts))
    if unknown:
        raise ConversionError(
            f"Preset {name!r} has no expert {unknown}; its experts are {experts}."
        )
    directory = os.path.abspath(output_dir or cached_preset_dir(name))
    session = HubSession()
    checkpoints, records, missing = {}, {}, []
    for expert_name in experts:
        source = (
            parse_source(sources[expert_name])
            if expert_name in sources
            else _registered_source(spec, expert_name)
        )
        try:
            checkpoints[expert_name], records[expert_name] = _open_source(
                source, session, allow_torchscript
            )
        except SourceUnavailable as error:
            missing.append((expert_name, source, str(error)))
    if missing:
        raise PresetWeightsUnavailableError(
            unavailable_message(name, spec, missing, directory)
        )
    logger.warning(
        "Converting the weights of preset %r (%s) into %s.",
        name,
        ", ".join(f"{k}: {describe_source(v)}" for k, v in records.items()),
        directory,
    )
    backbone, expert_layers = _backbone_with_experts(spec)
    for expert_name, expert in expert_layers.items():
        load_expert_weights(expert, checkpoints[expert_name])
    return save_preset(backbone, directory, name, spec, records)


def convert_official_cast_preset(
    checkpoint_path, name=None, output_dir=None, num_heads=None
):
    """Convert an official CAST checkpoint into a verified preset directory.

    Args:
        checkpoint_path: the authors' fine-tuned checkpoint (`.pth`/`.pt`).
        name: a registered fine-tuned preset (e.g. `"cast_base_k400"`): its
            architecture and classes are used and checked, and the result goes
            to the preset cache (so `CAST.from_preset(name)` finds it) unless
            `output_dir` is given. `None`: the architecture is read off the
            checkpoint and `output_dir` is required.
        output_dir: where to write the preset.
        num_heads: attention heads when `name` is `None` (not stored in the
            checkpoint; default 64 channels per head).

    Returns:
        The preset directory (`CAST.from_preset(directory)` loads it).
    """
    record = {
        "checkpoint": {
            "kind": "local",
            "format": "official_cast",
            "path": os.path.abspath(os.fspath(checkpoint_path)),
        }
    }
    if name is None:
        if output_dir is None:
            raise ConversionError(
                "Give output_dir (or a registered preset name) for the converted "
                "CAST checkpoint."
            )
        model = convert_official_cast(checkpoint_path, num_heads=num_heads)
        return save_preset(model, os.path.abspath(output_dir), None, None, record)
    spec = load_preset_spec(name)
    if weights_kind(spec) != "fine_tuned":
        raise ConversionError(
            f"Preset {name!r} is not a fine-tuned CAST preset; build it with "
            f"`ca2st convert preset {name}`."
        )
    checkpoint = read_checkpoint(checkpoint_path)
    classes = official_cast_num_classes(checkpoint)
    expected = spec.get("task", {}).get("num_classes")
    if expected is not None and classes != expected:
        raise ConversionError(
            f"{checkpoint_path} has heads for {classes} classes; preset {name!r} "
            f"expects {expected}."
        )
    model = convert_official_cast(checkpoint, backbone_config=spec["backbone"])
    directory = os.path.abspath(output_dir or cached_preset_dir(name))
    return save_preset(model, directory, name, spec, record)


def pretrained_preset_dir(name, spec=None):
    """The verified directory of converted weights of registered preset `name`.

    Builds and caches it on a miss (expert presets) or when the cached copy fails
    verification; raises `PresetWeightsUnavailableError` when that is impossible.
    """
    spec = spec or load_preset_spec(name)
    _check_served(name, spec)
    directory = cached_preset_dir(name)
    problem = None
    if os.path.isdir(directory):
        try:
            verify_preset_dir(directory, spec)
            return directory
        except CorruptPresetError as error:
            problem = error
            logger.warning("%s Rebuilding it.", error)
    try:
        if weights_kind(spec) != "experts":
            raise PresetWeightsUnavailableError(
                fine_tuned_message(name, spec, directory)
            )
        return build_preset(name)
    except PresetWeightsUnavailableError as error:
        if problem is None:
            raise
        raise PresetWeightsUnavailableError(f"{problem}\n{error}") from error


def unavailable_message(name, spec, missing, directory):
    lines = [
        f"Pretrained weights of preset {name!r} are not in the converted-preset "
        f"cache ({directory}) and cannot be built from their sources:"
    ]
    for expert_name, source, reason in missing:
        lines.append(f"  - {expert_name}: {describe_source(source)}: {reason}")
    flags = " ".join(f"--{expert_name} PATH" for expert_name, _, _ in missing)
    lines.append(
        "Build the preset from local checkpoint files (a checkpoint file or a "
        f"save_pretrained directory per expert) with:\n  ca2st convert preset {name} "
        f"{flags}"
    )
    official = [
        f"  {expert_name}: {source['official']['url']}"
        + (
            " (TorchScript: add --trust-torchscript)"
            if "torchscript" in source["official"].get("format", "")
            else ""
        )
        for expert_name, source, _ in missing
        if source.get("official", {}).get("url")
    ]
    if official:
        lines.append("The original releases also convert:\n" + "\n".join(official))
    lines.append(
        "Or connect to the Hub (unset HF_HUB_OFFLINE) to download the sources. "
        "from_preset(..., load_weights=False) builds the architecture with random "
        "weights."
    )
    return "\n".join(lines)


def fine_tuned_message(name, spec, directory):
    source = spec.get("weights", {}).get("sources", {}).get("checkpoint", {})
    where = source.get("url", "the authors' release")
    return (
        f"Preset {name!r} holds the authors' fine-tuned CAST checkpoint, which is "
        f"not in the converted-preset cache ({directory}). Download it from "
        f"{where} and convert it once with:\n  ca2st convert official-cast "
        f"CHECKPOINT.pth --preset {name}\nfrom_preset(..., load_weights=False) "
        "builds the architecture with random weights."
    )
