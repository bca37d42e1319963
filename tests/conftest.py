"""Session-wide test settings.

Triton reads `TRITON_INTERPRET` once, when it is first imported, and Keras's torch
backend imports it; the kernel tests run the Triton kernels on the CPU through
the interpreter, so the variable is set before anything imports Keras.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
