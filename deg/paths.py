"""Where data, results and figures live.

Defaults are the repository's own ``data/``, ``results/`` and ``figures/`` folders; the
environment variables ``DEG_DATA``, ``DEG_RESULTS`` and ``DEG_FIGURES`` override them (tests
point them at temporary folders). ``DEG_SHARED`` names the folder of real public data used by
tests and benchmarks (default ``../shared/data`` beside the checkout).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    return _env_path("DEG_DATA", REPO / "data")


def results_dir() -> Path:
    return _env_path("DEG_RESULTS", REPO / "results")


def figures_dir() -> Path:
    return _env_path("DEG_FIGURES", REPO / "figures")


def shared_data_dir() -> Path:
    return _env_path("DEG_SHARED", REPO.parent / "shared" / "data")


def dataset_dir(dataset: str) -> Path:
    return data_dir() / dataset


def run_dir(profile: str, dataset: str, preset: str, split: int | str) -> Path:
    split_name = split if isinstance(split, str) else f"split{split}"
    return results_dir() / profile / dataset / preset / split_name
