"""Data parallelism on each engine. JAX's `DataParallel` over several devices
and hosts, and every engine as two processes acting as two hosts, run in guide
05 (`tests/guides/test_guides.py` checks its weights)."""

import json
import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest

from keras_ca2st.training import DistributionContext, setup_distribution, shard_indices
from tests.test_case import BACKEND
from tests.training.helpers import max_difference
from tests.training.workers import run_torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
OTHER_KIND = {
    "jax": "torch-ddp",
    "torch": "tf-mirrored",
    "tensorflow": "jax-data-parallel",
}


def launch(command, env=None, timeout=300):
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def load(path):
    with np.load(path) as data:
        return dict(data)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_single_process_context_and_kind_checks():
    context = setup_distribution("none")
    assert (context.kind, context.num_replicas, context.is_chief) == ("none", 1, True)
    assert context.callbacks() == []
    assert context.per_process_batch_size(12) == 12
    with pytest.raises(ValueError, match="Unknown distribution"):
        setup_distribution("horovod")
    with pytest.raises(ValueError, match="'data-parallel'"):
        setup_distribution(OTHER_KIND[BACKEND])
    torch_like = DistributionContext("torch-ddp", 4, 4, 3)
    assert torch_like.per_process_batch_size(24) == 6 and not torch_like.is_chief
    with pytest.raises(ValueError, match="does not split"):
        torch_like.per_process_batch_size(10)
    assert DistributionContext("tf-mirrored", 2).jit_compile is False
    # TensorFlow workers feed whole global batches: tf.distribute splits them.
    worker = DistributionContext("tf-mirrored", 2, 2, 1)
    assert (worker.data_shards, worker.data_shard_index) == (1, 0)
    assert worker.per_process_batch_size(8) == 8
    assert worker.shard_indices(6).tolist() == list(range(6))
    assert (torch_like.data_shards, torch_like.data_shard_index) == (4, 3)
    assert torch_like.shard_indices(8).tolist() == [3, 7]


def test_shards_together_make_the_global_batches():
    shards = [shard_indices(22, 4, rank, seed=5, epoch=2) for rank in range(4)]
    assert {len(s) for s in shards} == {5}
    order = np.arange(22)
    np.random.default_rng((5, 2)).shuffle(order)
    per_rank_batch = 2
    for k in range(2):  # batch k of every shard = batch k of the global order
        together = np.concatenate(
            [s[k * per_rank_batch : (k + 1) * per_rank_batch] for s in shards]
        )
        global_batch = order[k * 8 : (k + 1) * 8]
        assert sorted(together) == sorted(global_batch)
    assert not np.array_equal(shards[0], shard_indices(22, 4, 0, seed=5, epoch=3))


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "torch", reason="torch DDP runs on the torch backend")
def test_torch_ddp_two_gloo_ranks_match_one_process(tmp_path):
    launch(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={free_port()}",
            "-m",
            "tests.training.workers",
            "torch-ddp",
            str(tmp_path),
        ],
        env={"KERAS_BACKEND": "torch"},
    )
    rank0 = load(tmp_path / "weights_rank0.npz")
    rank1 = load(tmp_path / "weights_rank1.npz")
    # The ranks started from different weights; broadcast + all-reduce keep
    # them identical.
    assert max_difference(rank0, rank1) == 0.0
    with open(tmp_path / "result_rank0.json") as handle:
        result = json.load(handle)
    assert result["world_size"] == 2 and result["kind"] == "torch-ddp"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_torch(str(tmp_path), single=True)
    single = load(tmp_path / "weights_single.npz")
    assert max_difference(rank0, single) <= 1e-5
    with open(tmp_path / "result_single.json") as handle:
        reference = json.load(handle)
    # Epoch losses are averaged over the ranks: the global figure.
    np.testing.assert_allclose(result["epoch_loss"], reference["epoch_loss"], atol=1e-5)
    # Training moved the weights, so the agreement is not trivial.
    assert max_difference(single, load(tmp_path / "weights_initial.npz")) > 1e-3


@pytest.mark.skipif(BACKEND != "torch", reason="torch DDP runs on the torch backend")
def test_torch_ddp_without_torchrun_trains_in_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.warns(UserWarning, match="torchrun"):
        context = setup_distribution("data-parallel")
    assert context.kind == "torch-ddp" and context.num_replicas == 1
    assert context.callbacks() == []


@pytest.mark.slow
@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="MirroredStrategy runs on the tensorflow backend"
)
def test_tf_mirrored_strategy_on_two_logical_cpus(tmp_path):
    launch(
        [sys.executable, "-m", "tests.training.workers", "tf-mirrored", str(tmp_path)]
    )
    with open(tmp_path / "result.json") as handle:
        result = json.load(handle)
    assert result["strategy"] == "MirroredStrategy" and result["num_replicas"] == 2
    np.testing.assert_allclose(result["mirrored"], result["single"], atol=1e-5)
    single = load(tmp_path / "weights_single.npz")
    mirrored = load(tmp_path / "weights_mirrored.npz")
    assert max_difference(single, mirrored) <= 1e-5
