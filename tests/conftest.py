"""Session-wide test settings, applied before any test module imports Keras.

- Triton reads `TRITON_INTERPRET` once, when first imported (Keras's torch
  backend imports it); the kernel tests run the Triton kernels on the CPU
  through the interpreter.
- TensorFlow, JAX and Triton each bundle LLVM. Triton's copy must load first: it
  aborts the process ("LLVM ERROR: inconsistency in registered CommandLine
  options") when loaded after TensorFlow's or jaxlib's, which happens whenever a
  test imports torch (transformers, the kernels) under the jax or tensorflow
  backend.
- XLA compiles on the CPU with its cheaper LLVM settings. The tests' programs
  are tiny: compiling dominates their time, and the full optimisation pipeline
  made the jax pass about 30% slower without changing what any test checks
  (the same assertions and tolerances hold either way). Users' runs keep XLA's
  defaults; a test that sets its own `XLA_FLAGS` for a subprocess replaces these.
"""

import importlib.util
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ["XLA_FLAGS"] = " ".join(
    filter(
        None,
        (
            os.environ.get("XLA_FLAGS"),
            "--xla_backend_optimization_level=0",
            "--xla_llvm_disable_expensive_passes=true",
        ),
    )
)

if importlib.util.find_spec("torch") is not None:
    import torch._dynamo  # noqa: F401  (loads Triton, and its LLVM, first)
