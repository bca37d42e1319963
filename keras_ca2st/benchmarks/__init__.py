"""Benchmarks of the package, above every room they measure (`ca2st bench`).

- `attention.py`: the B-CA attention core, fused Triton kernels against the
  reference regrouping with einsum or SDPA (`ca2st bench kernels`); by default
  followed by
- `training_step.py`: whole-model training steps of CAST-B and CA²ST-B, torch with
  and without the kernels, and JAX;
- `data.py`: decoding, augmentation and fbank throughput of the data pipeline and
  how many loader workers keep a GPU step fed (`ca2st bench data`).

Each runs as a module, e.g. `python -m keras_ca2st.benchmarks.attention --help`.
"""
