"""Training through Lightning Fabric: bit-identical to plain torch in one process; DDP matches one process.

The DDP test starts real processes (Fabric's launcher, gloo backend on the CPU) and compares them
with one process training on the same global batch.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deg.train.distributed import make_fabric, shard, take
from deg.train.loop import Precision, fit, make_optimizer, optimisation_step
from tests.train.toy import CFG, problem

REPO = Path(__file__).resolve().parents[2]


def test_fit_on_fabric_is_bit_identical_to_a_plain_torch_loop(tmp_path):
    """The loop's guarantee for the README's numbers: one CPU process on Fabric changes no bit."""
    net, train_step, validate, gens, reg = problem(None, seed=3, dropout=0.3)
    optimizer = make_optimizer(net, CFG.lr, reg)
    plain = [optimisation_step(train_step, s, optimizer, Precision(), None, reg) for s in range(1, CFG.max_steps + 1)]
    want = {k: v.clone() for k, v in net.state_dict().items()}

    net, train_step, validate, gens, reg = problem(None, seed=3, dropout=0.3)
    fit(tmp_path, net, train_step, validate, CFG, key="k", generators=gens, regulariser=reg, progress=False)
    for name, value in net.state_dict().items():
        assert torch.equal(value, want[name]), name
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert steps["step"].tolist() == list(range(1, CFG.max_steps + 1))
    assert steps["train_loss"].tolist() == plain            # exact: the same float64 values


def test_shard_splits_a_global_batch_evenly():
    class World:                                              # the two attributes shard() reads
        def __init__(self, rank, size):
            self.global_rank, self.world_size = rank, size

    rows = [shard(World(r, 4), 32) for r in range(4)]
    assert [(s.start, s.stop) for s in rows] == [(0, 8), (8, 16), (16, 24), (24, 32)]
    (part,) = take(rows[1], np.arange(32))
    assert part.tolist() == list(range(8, 16))
    with pytest.raises(ValueError, match="does not split evenly over 3"):
        shard(World(0, 3), 32)


def test_ddp_two_cpu_processes_match_one_process(tmp_path):
    """Two gloo processes, 8 rows each, against one process with the same 16-row global batch.

    Tolerance: 1e-5 on weights and losses. Averaging two half-batch gradients instead of one
    full-batch gradient changes float32 rounding only (~1e-7 relative per step).
    """
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(REPO / "tests/train/ddp_worker.py"), str(tmp_path), "2"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    for name in ranks[0]["model"]:                            # DDP keeps the replicas identical
        assert torch.equal(ranks[0]["model"][name], ranks[1]["model"][name]), name

    fabric = make_fabric("cpu", None)
    net, train_step, validate, gens, reg = problem(fabric)
    one = fit(tmp_path / "one", net, train_step, validate, CFG, key="toy", generators=gens, regulariser=reg,
              fabric=fabric, progress=False)
    for name, value in net.module.state_dict().items():
        np.testing.assert_allclose(ranks[0]["model"][name].numpy(), value.numpy(), atol=1e-5, rtol=0, err_msg=name)
    # process 0 alone wrote the stage folder: logs of the global loss and the validations
    two_steps = pd.read_csv(tmp_path / "stage" / "steps.csv")
    np.testing.assert_allclose(two_steps["train_loss"], pd.read_csv(tmp_path / "one" / "steps.csv")["train_loss"],
                               rtol=1e-5)
    two_log = pd.read_csv(tmp_path / "stage" / "log.csv")
    assert two_log["step"].tolist() == [4, 8, 12]
    np.testing.assert_allclose(two_log["val_metric"], [r["val_metric"] for r in one.log], rtol=1e-5)
    assert (tmp_path / "stage" / "best.pt").exists() and (tmp_path / "stage" / "last.pt").exists()
