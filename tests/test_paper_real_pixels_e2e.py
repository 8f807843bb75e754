"""The `paper` profile's own code path on real pixels, through Snakemake, to the figures.

There is no labelled real video offline, but there is real video: the MABe 2022 sample
(``../shared/data/mabe22``: 512x512, 30 fps, three mice, DeepLabCut-style pose). From it this test
builds what a user brings for one of the paper's datasets: a DeepEthogram project folder
(``project_config.yaml``, ``DATA/<video>/<video>.mp4`` + ``<video>_labels.csv``), zipped as an author
archive would be. The video is cut into six 40-frame videos (downscaled to 64x64 so the test
stays fast); the labels are derived automatically from the pose, not by a human: ``moving`` where
mouse1's centroid speed (5-frame mean) is above its median over the whole video, background where
it is still. The project's description says so.

The archive is served over HTTP on 127.0.0.1 as ``<DEG_DATA_MIRROR>/mouse_ventral1/mouse_ventral1.zip``
and ``make figures PROFILE=paper DATASETS=mouse_ventral1`` runs with overrides that shrink only
how much is computed (step counts, image size, batch sizes, splits, DEG_f only, a one-size Figure 6
sweep): the registry record's resize, flips and split rules, all three stages, evaluation and every
figure run as they would for the paper. The figure index names the data the figures come from.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from deg import paths
from deg.data import registry
from deg.data import video as video_io
from deg.data.labels import write_deg_labels
from deg.workflow import FIGURES, NO_OVERRIDE_FIGURES

pytestmark = pytest.mark.slow

N_VIDEOS, N_FRAMES, SIZE = 6, 40, (64, 64)
DESCRIPTION = ("POSE-DERIVED labels, not human: 'moving' where mouse1's centroid speed (DeepLabCut-style "
               "pose, 5-frame mean) exceeds its median; pixels: real MABe 2022 video EGS8X2MN4SSUGFWAV976 "
               "(three mice), cut into 40-frame videos. A test fixture, not the authors' Mouse-Ventral1.")
# Only how much is computed: steps, image size, batch sizes, splits, presets, the Figure 6 sweep.
OVERRIDES = {"flow_steps": 2, "feature_steps": 4, "sequence_steps": 4, "lr_patience_steps": 2, "val_every": 4,
             "val_batches": 1, "image_size": [16, 16], "flow_batch": 2, "feature_batch": 4, "sequence_batch": 2,
             "sequence_length": 30, "infer_batch": 16, "n_splits": 1, "presets": ["DEG_f"],
             "subsample_videos": [1], "subsample_draws": 1, "shuffle_repeats": 5}


def pose_labels(h5: Path) -> np.ndarray:
    """(T,) bool: mouse1 moving (smoothed centroid speed above its median) per pose frame."""
    import pandas as pd

    pose = pd.read_hdf(h5).xs("mouse1", level="individuals", axis=1)
    x = pose.xs("x", level="coords", axis=1).to_numpy(float)
    y = pose.xs("y", level="coords", axis=1).to_numpy(float)
    cx, cy = np.nanmean(x, axis=1), np.nanmean(y, axis=1)
    speed = np.r_[0.0, np.hypot(np.diff(cx), np.diff(cy))]
    speed = np.convolve(np.nan_to_num(speed), np.ones(5) / 5, mode="same")
    return speed > np.median(speed)


def build_project(shared: Path, root: Path) -> Path:
    """A DeepEthogram project from the MABe video, as a user brings it; returns its folder."""
    mp4, h5 = shared / "mabe22" / "EGS8X2MN4SSUGFWAV976.mp4", shared / "mabe22" / "EGS8X2MN4SSUGFWAV976.h5"
    moving = pose_labels(h5)
    # windows with both moving and still frames (every behaviour must reach every split), spread out
    starts = [s for s in range(0, len(moving) - N_FRAMES + 1, N_FRAMES)
              if 0.15 < moving[s:s + N_FRAMES].mean() < 0.85]
    starts = starts[:: len(starts) // N_VIDEOS][:N_VIDEOS]
    assert len(starts) == N_VIDEOS
    project = root / "Mouse-Ventral1_pose_derived"
    config = {"project": {"name": "mabe22_pose_derived", "class_names": ["background", "moving"],
                          "path": str(project), "data_path": "DATA", "model_path": "models",
                          "labeler": "automatic (pose-derived)", "description": DESCRIPTION}}
    (project / "DATA").mkdir(parents=True)
    (project / "project_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for i, start in enumerate(starts):
        name = f"mabe22_{start:04d}"
        folder = project / "DATA" / name
        folder.mkdir()
        frames = video_io.read_video(mp4, size=SIZE, start=start, stop=start + N_FRAMES)
        video_io.write_video(folder / f"{name}.mp4", frames, fps=30.0, preset="veryfast")
        on = moving[start:start + N_FRAMES].astype(np.int8)
        write_deg_labels(folder / f"{name}_labels.csv", np.stack([1 - on, on], axis=1), ["background", "moving"])
    return project


def zip_project(project: Path, archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(project.rglob("*")):
            zf.write(path, Path(project.name) / path.relative_to(project))
    return archive


@pytest.fixture
def mirror(tmp_path, shared_data):
    project = build_project(shared_data, tmp_path / "user")
    zip_project(project, tmp_path / "mirror" / "mouse_ventral1" / "mouse_ventral1.zip")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_paper_profile_on_real_pixels(isolated, mirror):
    from deg.presets import get_profile

    env = {**os.environ, "DEG_DATA_MIRROR": mirror, "PYTHONPATH": str(paths.REPO)}
    overrides = json.dumps(OVERRIDES)
    proc = subprocess.run(["make", "figures", "PROFILE=paper", "DATASETS=mouse_ventral1", "CORES=2",
                           f"OVERRIDES={overrides}"], cwd=paths.REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]

    record = registry.get("mouse_ventral1")
    dataset = json.loads((isolated / "data" / "mouse_ventral1" / "dataset.json").read_text())
    assert dataset["synthetic"] is False and DESCRIPTION in dataset["description"]
    assert tuple(dataset["image_size"]) == record.resize and dataset["fps"] == record.fps
    assert dataset["extra"]["obtained"] == "archive fetched from a mirror" and len(dataset["videos"]) == N_VIDEOS

    tag = get_profile("paper", **OVERRIDES).results_name
    run = isolated / "results" / tag / "mouse_ventral1" / "DEG_f" / "split0"
    info = json.loads((run / "run.json").read_text())
    assert info["profile"]["name"] == "paper" and info["overrides"] == OVERRIDES
    assert all(info["stages"][s].get("cached") is False for s in ("flow", "feature", "sequence")), info["stages"]
    assert (run / "metrics.csv").stat().st_size > 0

    figures = isolated / "figures" / tag
    # the self-supervised and pose parts take no overrides (deg.workflow.plan): their figures are not made
    assert not any((figures / f).exists() for f in NO_OVERRIDE_FIGURES)
    for figure in (f for f in FIGURES if f not in NO_OVERRIDE_FIGURES):
        manifest = json.loads((figures / figure / "manifest.json").read_text())   # the notebook reached its end
        # Figure 5 compares annotators: one labeller (pose-derived) leaves it rightly empty.
        assert bool(manifest["panels"]) == (figure != "fig5"), f"{figure}: panels {list(manifest['panels'])}"
        for panel, entry in manifest["panels"].items():
            assert all((figures / figure / name).stat().st_size > 0 for name in entry["files"].values()), panel
    index = (figures / "README.md").read_text()
    assert "POSE-DERIVED labels, not human" in index and "MABe 2022" in index
    assert "(synthetic data)" not in index
    # the index names a command a user can type (not the folder's "paper+<digest>")
    command = re.search(r"Regenerated by `make figures PROFILE=paper OVERRIDES='([^']*)'`", index)
    assert command and json.loads(command.group(1)) == OVERRIDES, index[:400]
