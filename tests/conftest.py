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
- Test workers (pytest-xdist) split the cores between them: torch computes on
  its share (`OMP_NUM_THREADS`, inherited by the tests' subprocesses). With
  every worker's torch using every core, threads waiting on each other made the
  torch pass about 25% slower. TensorFlow and XLA measured no different either
  way and keep their defaults.
- Modules with long tests (`slow`) are collected first: with xdist's
  `worksteal` (tests/run_backends.py) they start early, and a pass ends on
  short tests instead of one worker idling while the other finishes a long one.
"""

import importlib.util
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # set in workers only
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    share = (cores or os.cpu_count() or 1) // int(
        os.environ["PYTEST_XDIST_WORKER_COUNT"]
    )
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, share)))
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


def pytest_collection_modifyitems(items):
    slow_modules = {
        item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")
    }
    # A stable sort: each module keeps its order, and its items stay together so
    # that its module-scoped fixtures are set up once per worker.
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_modules)
