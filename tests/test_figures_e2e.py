"""`make figures PROFILE=tiny` end to end: a real Snakemake run of the whole DAG on 2 cores.

Data: the synthetic_tiny dataset plus the real Sturman-OFT labels fetched through a mirror served
on 127.0.0.1 (skipped parts when ../shared is absent). Checks that every panel each figure
notebook lists exists and is non-empty, that the index lists them, and that a second run has
nothing to do (results are cached).
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import threading

import pandas as pd
import pytest

from deg import paths
from deg.data import download
from deg.workflow import FIGURES

pytestmark = pytest.mark.slow


@pytest.fixture
def mirror_url(tmp_path):
    shared = paths.shared_data_dir()
    if not shared.is_dir():
        yield None
        return
    root = download.build_local_mirror(tmp_path / "mirror", ["sturman_oft"], shared=shared)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _make(args, env):
    return subprocess.run(["make", *args], cwd=paths.REPO, env=env, capture_output=True, text=True, timeout=900)


def test_make_figures_tiny(isolated, mirror_url):
    env = dict(os.environ)
    datasets = "synthetic_tiny"
    if mirror_url:
        env["DEG_DATA_MIRROR"] = mirror_url
        datasets += " sturman_oft"
    proc = _make(["figures", "PROFILE=tiny", f"DATASETS={datasets}", "CORES=2"], env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]

    figures = isolated / "figures" / "tiny"
    for figure in FIGURES:
        manifest = json.loads((figures / figure / "manifest.json").read_text())
        assert manifest["panels"], f"{figure}: no panels"
        for panel, info in manifest["panels"].items():
            for name in info["files"].values():
                path = figures / figure / name
                assert path.is_file() and path.stat().st_size > 0, f"{figure}/{panel}: {name} missing or empty"
        assert (figures / figure / f"{figure}.ipynb").exists(), "executed notebook kept as the log"
    index = (figures / "README.md").read_text()
    assert all(f"## {figure}" in index for figure in FIGURES)
    fig2 = json.loads((figures / "fig2" / "manifest.json").read_text())["panels"]
    assert "B_time_spent_synthetic_tiny" in fig2
    # pose methods (deg/pose) on the synthetic videos' pose, next to DEG_f on the same videos
    from deg.pose.plan import METHODS as POSE_METHODS

    results = isolated / "results" / "tiny" / "synthetic_tiny"
    assert all((results / m / "split0" / "metrics.csv").stat().st_size > 0 for m in POSE_METHODS)
    assert {"DEG_f", "pose_mlp"} <= set(pd.read_csv(figures / "fig5_supp1" / "DE_synthetic_tiny.csv").method)
    assert {"DEG_f", *POSE_METHODS} <= set(pd.read_csv(figures / "methods" / "A_table.csv").method)
    assert "skipped rat_social: not in DATASETS" in index     # the index says which pose datasets were left out
    if mirror_url:
        assert "B_time_spent_sturman_oft" in fig2
        assert (isolated / "results" / "tiny" / "sturman_oft" / "humans" / "metrics.csv").stat().st_size > 0

    again = _make(["figures", "PROFILE=tiny", f"DATASETS={datasets}", "CORES=2"], env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
