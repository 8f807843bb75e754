"""Shared fixtures: isolated data/results/figures folders and the real public data in ../shared."""
from __future__ import annotations

import pytest

from deg import paths


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
