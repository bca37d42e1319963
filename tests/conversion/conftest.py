"""The conversion tests build reference models with transformers and torch.

Triton's LLVM is loaded first by the root `tests/conftest.py`, so transformers
can import `torch._dynamo` under every backend.
"""
