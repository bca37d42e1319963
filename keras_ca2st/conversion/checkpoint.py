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
        if self.buffer is None:  # every tensor of the file is empty
            return np.zeros(self.shape, SAFETENSORS_DTYPES[self.dtype])
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
    """Name → lazy tensor of a `.safetensors` file, parsed without `safetensors`.

    Every header entry is checked against the file before anything is read:
    a dtype this reader knows, a shape of non-negative integers, and data
    offsets inside the file spanning exactly `shape × itemsize` bytes.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        head = file.read(8)
        if len(head) < 8:
            raise ConversionError(
                f"{path} is too short to be a safetensors file ({size} bytes); "
                "it is empty or truncated: download it again."
            )
        (header_size,) = struct.unpack("<Q", head)
        if header_size > size - 8:
            raise ConversionError(
                f"{path} is not a valid safetensors file: its header claims "
                f"{header_size} bytes, the file has {size - 8} after the length. "
                "It is truncated or not a safetensors file; download it again."
            )
        try:
            header = json.loads(file.read(header_size))
        except ValueError as error:
            raise ConversionError(
                f"{path} has a corrupt safetensors header ({error}); download it again."
            ) from error
    if not isinstance(header, dict):
        raise ConversionError(
            f"{path}: the safetensors header is a JSON {type(header).__name__}, "
            "not a table of tensors; the file is not a safetensors checkpoint."
        )
    data_size = size - 8 - header_size
    buffer = None
    if data_size:
        buffer = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_size)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (start, stop) = _safetensors_entry_info(path, name, info)
        expected = int(np.prod(shape, dtype=np.int64)) * _itemsize(dtype)
        if stop - start != expected:
            raise ConversionError(
                f"{path}: tensor {name!r} of shape {list(shape)} and dtype {dtype} "
                f"needs {expected} bytes but its data offsets span {stop - start}; "
                "the file is corrupt: download it again."
            )
        if not 0 <= start <= stop <= data_size:
            raise ConversionError(
                f"{path}: tensor {name!r} lies outside the file (bytes {start} to "
                f"{stop} of {data_size}); the file is truncated: download it again."
            )
        tensors[name] = _SafetensorsEntry(buffer, dtype, shape, start, stop)
    return tensors


def _itemsize(dtype):
    return np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize


def _safetensors_entry_info(path, name, info):
    """`(dtype, shape, (start, stop))` of one header entry, checked."""

    def bad(what):
        return ConversionError(
            f"{path}: the safetensors header entry of tensor {name!r} {what}; "
            "the file is corrupt or not a safetensors checkpoint."
        )

    if not isinstance(info, dict):
        raise bad(f"is a JSON {type(info).__name__}, not a table")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
    if missing:
        raise bad(f"lacks {', '.join(missing)}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in SAFETENSORS_DTYPES:
        raise ConversionError(
            f"{path}: tensor {name!r} has dtype {dtype!r}, which keras_ca2st does "
            f"not read (known: {', '.join(SAFETENSORS_DTYPES)})."
        )

    def whole(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(shape, list) or not all(whole(d) for d in shape):
        raise bad(f"has shape {shape!r}, not a list of non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(whole(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise bad(f"has data_offsets {offsets!r}, not [start, stop]")
    return dtype, tuple(shape), tuple(offsets)


def is_torchscript_archive(path):
    """Whether `path` is a TorchScript zip archive (it stores code to run)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False  # a damaged zip: `torch.load` reports it with the file
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

    if os.path.getsize(path) == 0:
        raise ConversionError(f"{path} is empty (0 bytes); download it again.")

    def load():
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            # Files in the legacy (pre-zip) format cannot be memory-mapped.
            return torch.load(path, map_location="cpu", weights_only=True)

    try:
        try:
            return load()
        except pickle.UnpicklingError as error:
            allowed = _allowed_globals(path, torch, error)
            if not allowed:  # no global to allow: the pickle itself is damaged
                raise
            with torch.serialization.safe_globals(allowed):
                return load()
    except ConversionError:
        raise
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        AttributeError,
        TypeError,
        IndexError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        struct.error,
    ) as error:
        # torch reports a damaged file in many ways (a zip without its
        # end record, a pickle cut short, a record missing from the archive).
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConversionError(
            f"{path} cannot be read as a PyTorch checkpoint "
            f"({type(error).__name__}{': ' + reason if reason else ''}). The file is "
            "truncated or corrupt, or not a checkpoint: download it again."
        ) from error


def _allowed_globals(path, torch, error):
    """The objects a checkpoint's pickle may build: only `HARMLESS_GLOBALS`.

    Each name the file asks for must be on the allow-list (or be one of
    NumPy's dtype classes, `numpy.dtypes.*DType`) and resolve to exactly
    the object meant; anything else is refused before the file is loaded.
    """
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception as scan_error:  # the pickle itself is damaged
        raise ConversionError(
            f"{path} cannot be read as a PyTorch checkpoint ({scan_error}); the "
            "file is truncated or corrupt: download it again."
        ) from error
    objects, refused = [], []
    for name in sorted(needed):
        resolved = _resolve_harmless_global(name)
        if resolved is None:
            refused.append(name)
        else:
            objects.append(resolved)
    if any(obj is np.dtype for obj in objects):
        # A pickled dtype is rebuilt through its class (`Int64DType`, ...),
        # which the file does not name: allow NumPy's dtype classes with it.
        objects += _numpy_dtype_classes()
    if refused:
        raise ConversionError(
            f"{path} stores Python objects that loading would have to construct "
            f"({', '.join(refused)}). keras_ca2st reads checkpoints with "
            "torch.load(weights_only=True) and never runs code from them; save "
            "the state dict alone (torch.save(checkpoint['model'], path)) and "
            "convert that file."
        ) from error
    return objects


def _numpy_dtype_classes():
    import numpy.dtypes

    return [
        value
        for name, value in vars(numpy.dtypes).items()
        if name.endswith("DType")
        and isinstance(value, type)
        and issubclass(value, np.dtype)
    ]


def _resolve_harmless_global(name):
    """The object behind an allowed global's name, or `None` if not allowed."""
    import importlib

    module_name, _, attribute = name.rpartition(".")
    numpy_dtype_class = (
        module_name == "numpy.dtypes"
        and attribute.endswith("DType")
        and attribute.isidentifier()
        and not attribute.startswith("_")
    )
    if name not in HARMLESS_GLOBALS and not numpy_dtype_class:
        return None
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return None
    if numpy_dtype_class and not (
        isinstance(value, type) and issubclass(value, np.dtype)
    ):
        return None
    return value


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
    index = read_json_file(path, "sharded checkpoint index")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(
        isinstance(shard, str) for shard in weight_map.values()
    ):
        raise ConversionError(
            f'{path} is not a sharded checkpoint index: it needs a "weight_map" '
            "table of tensor name → shard file."
        )
    folder = os.path.dirname(path)
    tensors = {}
    for shard in sorted(set(weight_map.values())):
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
        try:
            module = torch.jit.load(path, map_location="cpu")
        except (RuntimeError, OSError, ValueError) as error:
            raise ConversionError(
                f"{path} cannot be read as a TorchScript archive ({error}); the "
                "file is truncated or corrupt: download it again."
            ) from error
        return dict(module.state_dict())
    return unwrap_state_dict(_torch_load(path), path)


def read_json_file(path, what):
    """A JSON object (dict) from `path`; a `ConversionError` naming it otherwise."""
    try:
        with open(path, encoding="utf-8") as file:
            content = json.load(file)
    except (OSError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path}: cannot read the {what} ({error}).") from error
    except ValueError as error:
        raise ConversionError(
            f"{path}: the {what} is not valid JSON ({error})."
        ) from error
    if not isinstance(content, dict):
        raise ConversionError(
            f"{path}: the {what} is a JSON {type(content).__name__}, expected an "
            "object ({...})."
        )
    return content


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
        config = read_json_file(os.fspath(config), "model config")
    tensors = _read_file(source, allow_torchscript)
    return Checkpoint(tensors, source, config=config)


def as_checkpoint(source, allow_torchscript=False):
    """`source` itself if it is a `Checkpoint`, else `read_checkpoint(source)`."""
    if isinstance(source, Checkpoint):
        return source
    return read_checkpoint(source, allow_torchscript=allow_torchscript)
