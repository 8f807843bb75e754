"""A toy regression the Fabric tests train: batches from a seeded numpy generator, L2-SP penalty.

Shared by ``test_distributed.py`` (one process, in pytest) and ``ddp_worker.py`` (DDP processes).
"""
from __future__ import annotations

import numpy as np
import torch

from deg.train.distributed import shard, take
from deg.train.loop import LoopConfig, WeightPenalty

GLOBAL_BATCH = 16
CFG = LoopConfig(max_steps=12, val_every=4, patience_steps=100, lr=1e-2, lr_factor=0.1, lr_min=5e-7, mode="min",
                 checkpoint_min_interval_s=0.0)
W_TRUE = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


def problem(fabric, seed: int = 0, dropout: float = 0.0):
    """(net, train_step, validate, generators, regulariser) set up on ``fabric``."""
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(4, 8), torch.nn.Tanh()] + ([torch.nn.Dropout(dropout)] if dropout else [])
    model = torch.nn.Sequential(*layers, torch.nn.Linear(8, 1))
    reference = {k: v.detach().clone() for k, v in model.named_parameters()}
    reg = WeightPenalty(model, alpha=1e-2, beta=0.0, reference=reference)
    rng = np.random.default_rng(seed)
    net = fabric.setup_module(model) if fabric is not None else model
    rows = shard(fabric, GLOBAL_BATCH)
    x_val = torch.linspace(-1, 1, 40).reshape(10, 4)

    def train_step(step: int) -> torch.Tensor:
        x = torch.from_numpy(rng.normal(size=(GLOBAL_BATCH, 4)).astype(np.float32))
        (x,) = take(rows, x)
        return torch.nn.functional.mse_loss(net(x), x @ W_TRUE)

    def validate() -> float:
        return float(torch.nn.functional.mse_loss(model(x_val), x_val @ W_TRUE))

    return net, train_step, validate, {"rng": rng}, reg
