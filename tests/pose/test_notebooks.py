"""The method notebooks run with papermill at tiny sizes, with the knobs a student turns."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from deg import paths
from deg.notebooks import run_notebook

NOTEBOOKS = paths.REPO / "notebooks"
# notebook parameter -> the pose hyperparameter it sets (checked in the run's run.json)
KNOBS = {"window_half": "pose_window_half", "hidden": "mlp_hidden", "max_steps": "mlp_max_steps",
         "min_cluster_fraction": "hdbscan_min_cluster_fraction", "n_neighbors": "umap_n_neighbors",
         "embed_frames": "unsup_embed_frames", "temperature": "cp_temperature", "window": "cp_window",
         "steps": "cp_steps"}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    import os

    from deg.data import synthetic

    root = tmp_path_factory.mktemp("nb")
    saved = {v: os.environ.get(v) for v in ("DEG_DATA", "DEG_RESULTS", "DEG_FIGURES")}
    for var, name in (("DEG_DATA", "data"), ("DEG_RESULTS", "results"), ("DEG_FIGURES", "figures")):
        os.environ[var] = str(root / name)
    synthetic.generate("synthetic_tiny", progress=False)
    yield root
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


@pytest.mark.parametrize("notebook, params, method", [
    ("pose_mlp", {"window_half": 3, "hidden": [32, 16], "max_steps": 10}, "pose_mlp"),
    ("pose_unsup", {"min_cluster_fraction": 0.05, "n_neighbors": 10, "embed_frames": 200}, "pose_unsup"),
    ("contrastive_pose", {"temperature": 0.2, "window": 8, "steps": 5}, "contrastive_pose"),
])
def test_method_notebook_runs_with_changed_parameters(tiny_data, tmp_path, notebook, params, method):
    params = {"dataset": "synthetic_tiny", "profile": "tiny", **params}
    run_notebook(NOTEBOOKS / f"{notebook}.ipynb", tmp_path / f"{notebook}.ipynb", params, log_output=False)
    run_dir = tiny_data / "results" / "notebooks" / "tiny" / "synthetic_tiny" / method / "split0"
    hp = json.loads((run_dir / "run.json").read_text())["hparams"]
    for name, value in params.items():
        if name in KNOBS:
            assert hp[KNOBS[name]] == value, f"{notebook}: {name} did not reach the run"
    m = pd.read_csv(run_dir / "metrics.csv")
    f1 = m[(m.video == "all") & (m.source == "model") & (m.behaviour == "macro_nobg") & (m.metric == "f1")].value
    assert len(f1) == 1 and 0.0 <= f1.item() <= 1.0
    assert not (tiny_data / "results" / "tiny").exists(), "notebooks must not write into the workflow's results"
