"""Reading checkpoint files as NumPy arrays, without running code stored in them.

Formats:
- safetensors, parsed here so NumPy alone reads them (float16, bfloat16, float32,
  integer types), including sharded Hugging Face checkpoints (`*.index.json`);
- PyTorch pickles (`.bin`, `.pth`, `.pt`) through `torch.load(weights_only=True)`,
  which refuses to construct arbitrary Python objects; the few harmless ones that
  training scripts store beside the weights (`argparse.Namespace`, NumPy scalars)
  are allowed explicitly;
- Hugging Face model directories (`config.json` plus the weights);
- TorchScript archives (OpenAI CLIP's `ViT-B-16.pt`) only when the caller passes
  `allow_torchscript=True`: `torch.jit.load` runs the code stored in the archive.

Wrappers that training scripts put around a state dict (`{"model": ...}`,
`{"module": ...}`, `{"state_dict": ...}`) are unwrapped.
"""

import json
import os
import struct
import zipfile

import numpy as np

from keras_ca2st.conversion.errors import ConversionError

WEIGHT_FILE_NAMES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
STATE_DICT_WRAPPERS = ("model", "module", "state_dict", "model_state_dict")
# Globals a `weights_only` unpickler may build for training checkpoints: plain
# containers of hyper-parameters and NumPy scalars, none of which runs code.
HARMLESS_GLOBALS = {
    "argparse.Namespace",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.dtype",
    "numpy.ndarray",
}
SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


class Checkpoint:
    """The named tensors of one checkpoint, converted to float32 when read.

    Args:
        tensors: dict name → array-like (NumPy arrays, torch tensors or lazy
            safetensors entries).
        origin: str. Where the tensors come from, for error messages.
        config: dict or None. The Hugging Face `config.json`, when there is one.

    Example:
    ```python
    checkpoint = read_checkpoint("clip-vit-base-patch16/")
    checkpoint.array("vision_model.post_layernorm.weight").shape  # (768,)
    ```
    """

    def __init__(self, tensors, origin, config=None):
        self.tensors = dict(tensors)
        self.origin = origin
        self.config = config

    def __contains__(self, key):
        return key in self.tensors

    def __len__(self):
        return len(self.tensors)

    def keys(self):
        return self.tensors.keys()

    def shape(self, key):
        return tuple(int(d) for d in self._entry(key).shape)

    def array(self, key):
        """The tensor `key` as a float32 NumPy array."""
        return _to_numpy(self._entry(key))

    def find_prefix(self, prefixes, marker, what):
        """The first of `prefixes` for which `prefix + marker` is a key."""
        for prefix in prefixes:
            if prefix + marker in self.tensors:
                return prefix
        sample = ", ".join(sorted(self.tensors)[:8])
        raise ConversionError(
            f"{self.origin} is not a {what} checkpoint: none of "
            f"{[p + marker for p in prefixes]} is among its {len(self)} keys "
            f"({sample}, ...)."
        )

    def _entry(self, key):
        if key not in self.tensors:
            raise ConversionError(f"Key {key!r} is missing from {self.origin}.")
        return self.tensors[key]


class _SafetensorsEntry:
    """One tensor of a memory-mapped safetensors file, read on demand."""

    def __init__(self, buffer, dtype, shape, start, stop):
        self.buffer, self.dtype, self.shape = buffer, dtype, tuple(shape)
        self.start, self.stop = start, stop

    def load(self):
        raw = self.buffer[self.start : self.stop]
        if self.dtype == "BF16":
            bits = raw.view("<u2").astype(np.uint32) << 16
            return bits.view(np.float32).reshape(self.shape)
        return raw.view(SAFETENSORS_DTYPES[self.dtype]).reshape(self.shape)


def _to_numpy(entry):
    if isinstance(entry, _SafetensorsEntry):
        array = entry.load()
    elif isinstance(entry, np.ndarray):
        array = entry
    else:  # a torch tensor
        import torch

        array = entry.detach().to("cpu", torch.float32).numpy()
    return np.array(array, dtype=np.float32)


def read_safetensors(path):
    """Name → lazy tensor of a `.safetensors` file, parsed without `safetensors`."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        head = file.read(8)
        if len(head) < 8:
            raise ConversionError(f"{path} is too short to be a safetensors file.")
        (header_size,) = struct.unpack("<Q", head)
        if header_size > size - 8:
            raise ConversionError(f"{path} is not a valid safetensors file.")
        try:
            header = json.loads(file.read(header_size))
        except ValueError as error:
            raise ConversionError(
                f"{path} has a corrupt safetensors header."
            ) from error
    if not size - 8 - header_size:
        return {}
    buffer = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_size)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in SAFETENSORS_DTYPES:
            raise ConversionError(f"{path}: tensor {name!r} has dtype {dtype}.")
        start, stop = info["data_offsets"]
        if not 0 <= start <= stop <= buffer.shape[0]:
            raise ConversionError(f"{path}: tensor {name!r} lies outside the file.")
        tensors[name] = _SafetensorsEntry(buffer, dtype, info["shape"], start, stop)
    return tensors


def is_torchscript_archive(path):
    """Whether `path` is a TorchScript zip archive (it stores code to run)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.endswith("/constants.pkl") or "/code/" in name for name in names)


def _import_torch(path):
    try:
        import torch
    except ImportError as error:
        raise ConversionError(
            f"Reading the PyTorch checkpoint {path} needs torch "
            "(`pip install torch`); safetensors files need only NumPy."
        ) from error
    return torch


def _torch_load(path):
    torch = _import_torch(path)
    import pickle

    def load():
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            # Files in the legacy (pre-zip) format cannot be memory-mapped.
            return torch.load(path, map_location="cpu", weights_only=True)

    try:
        return load()
    except pickle.UnpicklingError as error:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        refused = sorted(
            g
            for g in needed
            if g not in HARMLESS_GLOBALS and not g.startswith("numpy.dtypes.")
        )
        if refused:
            raise ConversionError(
                f"{path} stores Python objects that loading would have to construct "
                f"({', '.join(refused)}). keras_ca2st reads checkpoints with "
                "torch.load(weights_only=True) and never runs code from them; save "
                "the state dict alone (torch.save(checkpoint['model'], path)) and "
                "convert that file."
            ) from error
        with torch.serialization.safe_globals(_resolve_globals(needed)):
            return load()


def _resolve_globals(names):
    import importlib

    objects = []
    for name in names:
        module_name, _, attribute = name.rpartition(".")
        try:
            objects.append(getattr(importlib.import_module(module_name), attribute))
        except (ImportError, AttributeError):
            continue
    return objects


def _is_tensor_like(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def unwrap_state_dict(obj, origin):
    """The flat name → tensor dict inside a loaded checkpoint object."""
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if _is_tensor_like(v)}
        if tensors and len(tensors) >= len(obj) / 2:
            return tensors
        for wrapper in STATE_DICT_WRAPPERS:
            if isinstance(obj.get(wrapper), dict):
                return unwrap_state_dict(obj[wrapper], f"{origin} [{wrapper!r}]")
    keys = list(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
    raise ConversionError(
        f"{origin} holds no state dict (top level: {keys}); expected tensors or one "
        f"of the entries {list(STATE_DICT_WRAPPERS)}."
    )


def _read_index(path):
    with open(path) as file:
        index = json.load(file)
    folder = os.path.dirname(path)
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        shard_path = os.path.join(folder, shard)
        if not os.path.exists(shard_path):
            raise ConversionError(f"Shard {shard} listed in {path} is missing.")
        tensors.update(_read_file(shard_path, allow_torchscript=False))
    return tensors


def _read_file(path, allow_torchscript):
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    if path.endswith(".index.json"):
        return _read_index(path)
    if is_torchscript_archive(path):
        if not allow_torchscript:
            raise ConversionError(
                f"{path} is a TorchScript archive (such as OpenAI's CLIP ViT-B-16.pt). "
                "Opening it runs the code stored in it, so it is only read when you "
                "ask for it: pass allow_torchscript=True (CLI: --trust-torchscript) "
                "for a file from a source you trust."
            )
        torch = _import_torch(path)
        module = torch.jit.load(path, map_location="cpu")
        return dict(module.state_dict())
    return unwrap_state_dict(_torch_load(path), path)


def find_weight_file(directory):
    """The weights of a Hugging Face model directory (`save_pretrained` layout)."""
    for name in WEIGHT_FILE_NAMES:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    candidates = [
        name
        for name in sorted(os.listdir(directory))
        if name.endswith((".safetensors", ".bin", ".pth", ".pt"))
    ]
    if len(candidates) == 1:
        return os.path.join(directory, candidates[0])
    raise ConversionError(
        f"{directory} holds no single checkpoint: expected one of "
        f"{list(WEIGHT_FILE_NAMES)}, found {candidates or 'none'}."
    )


def read_checkpoint(source, config=None, allow_torchscript=False):
    """Read a checkpoint file or Hugging Face model directory.

    Args:
        source: path of a `.safetensors`, `.bin`, `.pth` or `.pt` file, of a
            sharded checkpoint's `*.index.json`, or of a directory written by
            `save_pretrained` (its `config.json` is read too).
        config: optional path of a `config.json`, or the config as a dict.
        allow_torchscript: bool. TorchScript archives are refused unless `True`;
            opening one runs the code stored in it.

    Returns:
        A `Checkpoint`.
    """
    source = os.fspath(source)
    if not os.path.exists(source):
        raise ConversionError(f"Checkpoint {source} does not exist.")
    if os.path.isdir(source):
        if config is None and os.path.exists(os.path.join(source, "config.json")):
            config = os.path.join(source, "config.json")
        source = find_weight_file(source)
    if isinstance(config, (str, os.PathLike)):
        with open(config) as file:
            config = json.load(file)
    tensors = _read_file(source, allow_torchscript)
    return Checkpoint(tensors, source, config=config)


def as_checkpoint(source, allow_torchscript=False):
    """`source` itself if it is a `Checkpoint`, else `read_checkpoint(source)`."""
    if isinstance(source, Checkpoint):
        return source
    return read_checkpoint(source, allow_torchscript=allow_torchscript)
