"""Shared helpers for the model tests: tiny sizes, one instance per heavy model."""
from __future__ import annotations

import pytest
import torch

from deg.presets import PRESETS

# K behaviours used for parameter counts: Sturman-OFT (background, supported, unsupported, grooming),
# one of the paper's datasets.
K_PAPER = 4
PAPER_PARAMS = {  # component -> paper Table 2 count (from PRESETS, in parameters)
    **{p.flow_generator: p.paper_params_m[0] * 1e6 for p in PRESETS.values()},
    **{p.feature_extractor: p.paper_params_m[1] * 1e6 for p in PRESETS.values()},
}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float32."""
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def assert_all_grads(module: torch.nn.Module) -> None:
    """Every trainable parameter received a finite, not-all-zero gradient."""
    bad = [n for n, p in module.named_parameters()
           if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0)]
    assert not bad, f"parameters without gradient: {bad[:10]}"


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, single-threaded: on these tiny tensors OpenMP threads cost more than they give, and
    on a shared 2-core machine they thrash (measured 5-10x slower with 2 threads under load)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
