"""`ca2st bench`: the package's benchmarks behind one command.

Each room measures its own speed and prints ratios against a baseline timed
in the same run, plus the environment:

- `ca2st bench kernels [...]`: the B-CA attention core (fused Triton kernels
  vs the reference regrouping with einsum or SDPA) and whole-model training
  steps (torch with and without the kernels, JAX);
  `keras_ca2st.benchmarks.attention` and `keras_ca2st.benchmarks.training_step`.
- `ca2st bench data [...]`: decoding, augmentation and fbank throughput of
  the data pipeline, and how many loader workers keep a GPU step fed;
  `keras_ca2st.benchmarks.data`.
- `ca2st bench memory [...]`: peak training memory per clip of a preset, per
  gradient-checkpointing mode, and the largest batch that fits a budget,
  found by running it; `keras_ca2st.benchmarks.memory`.

Arguments after the target go to that benchmark (`ca2st bench data --help`).
"""

import argparse

TARGETS = {
    "kernels": "keras_ca2st.benchmarks.attention",
    "data": "keras_ca2st.benchmarks.data",
    "memory": "keras_ca2st.benchmarks.memory",
}


def _bench(args):
    import importlib

    module = importlib.import_module(TARGETS[args.target])
    return module.main(args.arguments)


def add_bench_parser(commands):
    bench = commands.add_parser(
        "bench",
        help="benchmarks: fused attention kernels and training steps, data loading, "
        "memory per clip",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("target", choices=sorted(TARGETS))
    bench.add_argument(
        "arguments",
        nargs=argparse.REMAINDER,
        help="passed to the benchmark (see `ca2st bench TARGET --help`)",
    )
    bench.set_defaults(handler=_bench)
