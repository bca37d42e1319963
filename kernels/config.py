"""The switch that picks the fused attention path (pure Python, no backend imports).

Modes:

- `"auto"` (default): fused paths where they apply: on torch the Triton kernels for
  the `"time"` / `"space"` windows when the tensors are CUDA tensors and Triton is
  installed, `scaled_dot_product_attention` for `"space_time"` / `"global"`; on JAX
  `jax.nn.dot_product_attention`; the plain `keras.ops` path everywhere else.
- `"triton"`: like `"auto"`, but the torch `"time"` / `"space"` windows always use
  the Triton kernels, on any device, and raise if they cannot. On CPU this needs
  `TRITON_INTERPRET=1` in the environment before Triton is first imported; it is how
  the tests check a B-CA layer with the kernels against the plain path.
- `"off"`: never fused; always the plain `keras.ops` path.

The mode comes from `set_fused_attention(mode)` when set, else from the environment
variable `KERAS_CA2ST_FUSED_ATTENTION`, else `"auto"`.
"""

import contextlib
import os

MODES = ("auto", "triton", "off")
ENV_VAR = "KERAS_CA2ST_FUSED_ATTENTION"

_override = None


def fused_attention_mode():
    """The active mode: `"auto"`, `"triton"` or `"off"`."""
    mode = _override if _override is not None else os.environ.get(ENV_VAR, "auto")
    mode = mode.strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENV_VAR}={mode!r}; expected one of {MODES}.")
    return mode


def set_fused_attention(mode):
    """Set the fused-attention mode for this process; `None` returns to the default.

    Args:
        mode: `"auto"`, `"triton"`, `"off"`, or `None` (use `KERAS_CA2ST_FUSED_ATTENTION`
            or `"auto"`).

    Returns:
        The previous override (`None` if there was none), so callers can restore it.

    Example:

    >>> from keras_ca2st.kernels import set_fused_attention
    >>> previous = set_fused_attention("off")
    >>> _ = set_fused_attention(previous)
    """
    global _override
    if mode is not None and mode not in MODES:
        raise ValueError(f"Unknown fused-attention mode {mode!r}; expected {MODES}.")
    previous, _override = _override, mode
    return previous


@contextlib.contextmanager
def fused_attention(mode):
    """Context manager form of `set_fused_attention`."""
    previous = set_fused_attention(mode)
    try:
        yield
    finally:
        set_fused_attention(previous)
