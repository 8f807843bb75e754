"""Shared fixtures: isolated data/results/figures folders and the real public data in ../shared."""
from __future__ import annotations

import os

import pytest

from deg import paths

# `make test` runs one pytest-xdist worker per core: each worker (and what it starts without
# setting its own thread count: notebook kernels, command-line runs) computes on one thread, so
# two workers do not put four OpenMP threads on two cores, which wait on each other at every op
# (deg.bench's docstring measures that cost). Set before torch is imported; Snakemake jobs set
# their own OMP_NUM_THREADS.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, "1")


@pytest.fixture
def shared_data():
    """The folder of real public data (../shared/data); tests using it skip on a fresh machine."""
    root = paths.shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent (it lies beside the checkout in CI only)")
    return root


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Point DEG_DATA, DEG_RESULTS and DEG_FIGURES at fresh temporary folders."""
    for var, name in (("DEG_DATA", "data"), ("DEG_RESULTS", "results"), ("DEG_FIGURES", "figures")):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(var, str(tmp_path / name))
    monkeypatch.delenv("DEG_DATA_MIRROR", raising=False)
    return tmp_path


# The longest test files, longest first (seconds measured in one process on the 2-core AVX2 EPYC,
# 2026-12-01). `make test` hands whole files to its pytest-xdist workers in collection order, so
# these go first: a four-minute file handed out last keeps one core busy after the other is done.
# test_demo_quality.py measured in `make test` on the 2-core Intel Xeon, 2026-12-03 (the 800-step
# moving-shapes stage), beside the other worker.
LONGEST_FIRST = ("test_demo_quality.py",          # 598 s: the moving-shapes pretraining + one demo DEG_f run
                 "test_figures_e2e.py",           # 240 s: make figures PROFILE=tiny through Snakemake
                 "test_paper_real_pixels_e2e.py", # 138 s
                 "course/test_course.py",         # 60 s
                 "reliability/test_runs.py",      # 57 s
                 "test_pipeline.py",              # 30 s
                 "test_workflow.py")              # 30 s


def pytest_collection_modifyitems(config, items):
    """Collect :data:`LONGEST_FIRST` before every other file (the rest in their usual order)."""
    def rank(item) -> int:
        path = item.path.as_posix()
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith("tests/" + name)), len(LONGEST_FIRST))

    items.sort(key=rank)     # stable: the order within a file and among the rest is kept
