"""Session-wide test settings, applied before any test module imports Keras.

- Triton reads `TRITON_INTERPRET` once, when first imported (Keras's torch
  backend imports it); the kernel tests run the Triton kernels on the CPU
  through the interpreter.
- TensorFlow, JAX and Triton each bundle LLVM. Triton's copy must load first: it
  aborts the process ("LLVM ERROR: inconsistency in registered CommandLine
  options") when loaded after TensorFlow's or jaxlib's, which happens whenever a
  test imports torch (transformers, the kernels) under the jax or tensorflow
  backend.
"""

import importlib.util
import os

os.environ.setdefault("TRITON_INTERPRET", "1")

if importlib.util.find_spec("torch") is not None:
    import torch._dynamo  # noqa: F401  (loads Triton, and its LLVM, first)
