"""The guides: every source runs top to bottom in a real Jupyter kernel, and
the committed notebooks are its executed versions.

Guides that are not tied to a backend run on the backend of this pytest pass
(so on all three over `tests/run_backends.py`); the backend-specific ones
(`BACKEND_SPECIFIC` in `guides/make_guides.py`) run once, in the pass named in
`RUNS_IN`, which spreads them over the three passes.
"""

import importlib.util
import json
import os

import numpy as np
import pytest

from tests.test_case import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    "make_guides", os.path.join(ROOT, "guides", "make_guides.py")
)
make_guides = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_guides)

NAMES = make_guides.guide_names()
RUNS_IN = {
    "04_switching_backends": "tensorflow",
    "05_distributed_training": "torch",
    "06_fused_kernels": "torch",
}
ON_EVERY_BACKEND = [n for n in NAMES if n not in make_guides.BACKEND_SPECIFIC]
# Guides whose test checks what they computed, beyond running.
CHECKED_FURTHER = {"04_switching_backends", "05_distributed_training"}


def test_every_guide_is_listed_and_backend_specific_ones_have_a_pass():
    assert len(NAMES) == 7, NAMES
    assert set(RUNS_IN) == set(make_guides.BACKEND_SPECIFIC)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    with open(os.path.join(ROOT, "guides", "README.md"), encoding="utf-8") as handle:
        guides_readme = handle.read()
    for name in NAMES:
        assert f"guides/{name}.ipynb" in readme, f"README does not list {name}"
        assert f"({name}.ipynb)" in guides_readme, f"guides/README misses {name}"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_the_executed_source(name):
    import nbformat

    path = make_guides.notebook_path(name)
    assert os.path.exists(path), (
        f"{path} is missing: run `python guides/make_guides.py {name}`"
    )
    committed = nbformat.read(path, as_version=4)
    expected = make_guides.read_cells(make_guides.source_path(name))
    found = [(cell.cell_type, cell.source) for cell in committed.cells]
    assert found == expected, (
        f"{name}.ipynb differs from guides/source/{name}.py: rebuild it with "
        f"`python guides/make_guides.py {name}`"
    )
    code = [cell for cell in committed.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{name}.ipynb was not executed top to bottom in one kernel"
    )
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    outputs = [o for cell in code for o in cell.outputs]
    assert len(outputs) >= len(code) // 2, f"{name}.ipynb has too few outputs"
    assert any("image/png" in o.get("data", {}) for o in outputs), (
        f"{name}.ipynb shows no picture"
    )
    first, last = committed.cells[0], committed.cells[-1]
    assert first.cell_type == "markdown" and "need" in first.source.lower()
    assert last.cell_type == "markdown" and "next" in last.source.lower()
    assert any("── Settings" in cell.source for cell in code), (
        f"{name} has no settings cell"
    )


def execute(name, workdir):
    return make_guides.execute(name, str(workdir))


@pytest.mark.slow
@pytest.mark.parametrize("name", ON_EVERY_BACKEND)
def test_guide_runs_on_this_backend(name, tmp_path):
    notebook = execute(name, tmp_path)
    assert notebook.metadata["keras_ca2st"]["executed_with_backend"] == BACKEND


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [n for n in NAMES if RUNS_IN.get(n) == BACKEND and n not in CHECKED_FURTHER],
)
def test_backend_specific_guide_runs(name, tmp_path):
    execute(name, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != RUNS_IN["04_switching_backends"], reason="runs once")
def test_a_model_saved_under_torch_gives_the_same_logits_under_jax_and_tensorflow(
    tmp_path,
):
    """Guide 04 saves a tiny CA²ST under torch, loads it under JAX (which saves
    it again) and under TensorFlow (which also reads JAX's file), each in its
    own process; every process writes the logits it computed."""
    execute("04_switching_backends", tmp_path)
    torch = np.load(tmp_path / "logits_torch_tiny_torch.npy")
    for other in ("logits_jax_tiny_torch.npy", "logits_tensorflow_tiny_torch.npy"):
        np.testing.assert_allclose(np.load(tmp_path / other), torch, atol=1e-5)
    assert np.std(torch) > 1e-3  # not a constant the backends could agree on
    tensorflow = json.loads((tmp_path / "timing_tensorflow.json").read_text())
    assert tensorflow["weights"] == {"tiny_jax": 0.0}  # bit for bit


def _weights(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _max_difference(a, b):
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != RUNS_IN["05_distributed_training"], reason="runs once")
def test_two_hosts_end_with_the_weights_of_one_process_on_every_engine(tmp_path):
    """Guide 5 runs each engine as two processes acting as two hosts (JAX
    `jax.distributed` through `KERAS_DISTRIBUTION_*`, `torchrun --nnodes 2`
    with a localhost rendezvous, `MultiWorkerMirroredStrategy` with
    `TF_CONFIG`) and as one process on the same global batches; every process
    saves its weights."""
    execute("05_distributed_training", tmp_path)
    for engine in ("jax", "torch", "tensorflow"):
        runs = tmp_path / "runs" / engine
        single = _weights(runs / "one_process" / "weights_process0.npz")
        initial = _weights(runs / "one_process" / "weights_initial.npz")
        host0 = _weights(runs / "two_hosts" / "weights_process0.npz")
        host1 = _weights(runs / "two_hosts" / "weights_process1.npz")
        assert _max_difference(host0, host1) == 0.0, engine
        assert _max_difference(host0, single) <= 1e-5, engine
        # Training moved the weights, so the agreement is not trivial.
        assert _max_difference(single, initial) > 1e-3, engine
