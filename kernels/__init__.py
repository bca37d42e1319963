"""Fused kernels of keras_ca2st: Triton windowed cross-attention for B-CA.

- `time_window_attention(q, kv, num_heads)`: T2S, window = time (torch, Triton).
- `space_window_attention(q, kv, num_heads)`: S2T, window = space (torch, Triton).
- `available(tensor)` / `unavailable_reason(tensor)`: whether (why not) those
  kernels can run on `tensor`.
- `set_fused_attention(mode)` / `fused_attention(mode)` / `fused_attention_mode()`:
  the switch between fused and plain paths (`"auto"`, `"triton"`, `"off"`; also
  the environment variable `KERAS_CA2ST_FUSED_ATTENTION`); see `config.py`.

Importing this package needs neither torch nor Triton; the kernels, the torch
custom ops (`torch.ops.keras_ca2st.*`) and the references load on first use.

- `windows.py`: the window kinds (`get_window`), which own validation, position
  embeddings, `group` / `ungroup` and the kernel each dispatches to;
- `dispatch.py`: the backend dispatch used by `keras_ca2st.fusion.windowed_attention`;
- `ops.py`: the torch custom ops; `reference.py`: their pure torch references;
- `triton_time_window.py`, `triton_space_window.py`: the Triton kernels of T2S and
  S2T; `triton_launch.py`: their configurations and launches (design notes);
- `compile_check.py`: the offline sm_90 compile check.

The benchmarks are in `keras_ca2st.benchmarks` (`ca2st bench kernels`).
"""

import importlib.util
import os

from .config import (
    ENV_VAR,
    fused_attention,
    fused_attention_mode,
    set_fused_attention,
)

__all__ = [
    "ENV_VAR",
    "available",
    "fused_attention",
    "fused_attention_mode",
    "interpreted",
    "set_fused_attention",
    "space_window_attention",
    "space_window_attention_reference",
    "time_window_attention",
    "time_window_attention_reference",
    "unavailable_reason",
]


def triton_installed():
    """Whether the `triton` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpreted():
    """Whether the kernels run in the Triton interpreter (`TRITON_INTERPRET=1`).

    Decided when the kernel module is first imported, which is when Triton reads the
    variable; before that, the current environment tells.
    """
    import sys

    module = sys.modules.get(__name__ + ".triton_launch")
    if module is not None:
        return module.INTERPRETED
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on")


def unavailable_reason(tensor=None):
    """Why the Triton kernels cannot run on `tensor`, or `None` when they can.

    They can when Triton is installed and either the kernels run in the interpreter
    (any device) or the tensor is a CUDA tensor (or a meta tensor, which only needs
    shapes; with `tensor=None`: CUDA is available). Imports Triton.
    """
    if not triton_installed():
        return "Triton is not installed"
    try:
        from . import triton_launch
    except RuntimeError as error:  # interpreter mode switched after import
        return str(error)
    if triton_launch.INTERPRETED:
        return None
    import torch

    if tensor is None:
        return None if torch.cuda.is_available() else "no CUDA device"
    if tensor.device.type in ("cuda", "meta"):
        return None
    return (
        f"{tensor.device.type} tensors need the Triton interpreter "
        "(TRITON_INTERPRET=1 before Triton is first imported)"
    )


def available(tensor=None):
    """Whether the Triton kernels can run on `tensor`; see `unavailable_reason`."""
    return unavailable_reason(tensor) is None


def time_window_attention(query, key_value, num_heads):
    """Fused T2S attention (window = time); see `ops.time_window_attention`."""
    from . import ops

    return ops.time_window_attention(query, key_value, num_heads)


def space_window_attention(query, key_value, num_heads):
    """Fused S2T attention (window = space); see `ops.space_window_attention`."""
    from . import ops

    return ops.space_window_attention(query, key_value, num_heads)


def time_window_attention_reference(query, key_value, num_heads):
    """Pure torch T2S reference returning `(out, lse)`; see `reference.py`."""
    from . import reference

    return reference.time_window_attention_reference(query, key_value, num_heads)


def space_window_attention_reference(query, key_value, num_heads):
    """Pure torch S2T reference returning `(out, lse)`; see `reference.py`."""
    from . import reference

    return reference.space_window_attention_reference(query, key_value, num_heads)
