"""Shared pieces of the kernel tests: skip conditions, device, random stream layouts."""

import importlib.util
import os

import pytest

KERAS_BACKEND = os.environ.get("KERAS_BACKEND", "torch")


def _torch_kernel_skip_reason():
    if KERAS_BACKEND != "torch":
        return (
            f"torch kernel tests run in the KERAS_BACKEND=torch job "
            f"(this is {KERAS_BACKEND})"
        )
    for name in ("torch", "triton"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
    from keras_ca2st.kernels import interpreted

    if not interpreted():
        import torch

        if not torch.cuda.is_available():
            return "TRITON_INTERPRET is off and there is no CUDA device"
    return None


_REASON = _torch_kernel_skip_reason()
requires_torch_kernels = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))


def device():
    from keras_ca2st.kernels import interpreted

    return "cpu" if interpreted() else "cuda"


# Absolute / relative tolerances against the fp32 reference on the same inputs.
TOLERANCE = {"float32": (2e-5, 2e-5), "float16": (4e-3, 4e-3), "bfloat16": (3e-2, 3e-2)}


def stream_query(batch, frames, patches, channels, dtype, seed):
    """A query shaped like the CLIP stream: `(B·T, 1+N, C)` viewed as
    `(B, T, 1+N, C)` and sliced `[:, :, 1:]`, i.e. a strided view; with its base."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(
        batch * frames, 1 + patches, channels, generator=generator, dtype=torch.float32
    ).to(device=device(), dtype=dtype)
    view = base.view(batch, frames, 1 + patches, channels)[:, :, 1:]
    return base, view


def random_tensor(shape, dtype, seed):
    import torch

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=generator, dtype=torch.float32)
    return x.to(device=device(), dtype=dtype)
