"""Kernel tests run the Triton kernels on the CPU through the Triton interpreter.

Triton reads `TRITON_INTERPRET` when a kernel is decorated, i.e. when
`keras_ca2st.kernels.triton_launch` is first imported, so it is set here, before
any test module of this folder is imported. Set `TRITON_INTERPRET=0` in the
environment to run the same tests on a CUDA device instead.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
