"""Labelled items a run cannot use are recorded, never dropped silently (issue 12, point 3).

A real DeepEthogram project is built from the package's synthetic generator (synthetic_tiny's
videos and labels in ``DATA/<video>/``), with one label file whose video is absent, and imported
with :func:`deg.data.labels.import_deg_project`; then one imported video file is deleted (a video
missing from disk). A whole tiny run must list both, with the reason, in ``split.json``, in
``run.json`` and in its log line, and train on the others.
"""
from __future__ import annotations

import json
import os
import warnings

import pytest
import yaml

pytestmark = pytest.mark.slow

SIZES = dict(flow_steps=2, feature_steps=2, sequence_steps=2, val_every=2, val_batches=1)


def _project_from_synthetic(root, dataset, without_video: str) -> None:
    """``root``: a DeepEthogram project holding ``dataset``'s videos (hard links) and labels."""
    from deg.data.labels import write_deg_labels

    (root / "DATA").mkdir(parents=True)
    (root / "project_config.yaml").write_text(yaml.safe_dump(
        {"project": {"name": "proj", "class_names": dataset.behaviours, "path": str(root)}}))
    for video in dataset.videos:
        folder = root / "DATA" / video
        folder.mkdir()
        write_deg_labels(folder / f"{video}_labels.csv", dataset.labels(video), dataset.behaviours)
        if video != without_video:
            os.link(dataset.video_path(video), folder / f"{video}.mp4")


def test_labels_without_video_and_missing_videos_are_recorded_by_the_run(tmp_path, monkeypatch, capsys):
    import torch

    from deg import describe, figindex, pipeline
    from deg.data import synthetic
    from deg.data.datasets import open_dataset
    from deg.data.labels import LabelWarning, import_deg_project

    for var in ("DEG_DATA", "DEG_RESULTS", "DEG_FIGURES"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    source = synthetic.generate("synthetic_tiny", progress=False)
    videos = list(source.videos)
    orphan, gone = videos[-1], videos[0]
    _project_from_synthetic(tmp_path / "proj", source, without_video=orphan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)       # the import's own warning is tested in tests/data
        ds = import_deg_project(tmp_path / "proj", tmp_path / "deg_data", dataset_id="proj")
    ds.video_path(gone).unlink()                            # a video missing from disk after the import

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_dir = pipeline.run("proj", "DEG_f", 0, profile="tiny", progress=False, **SIZES)
    finally:
        torch.set_num_threads(threads)

    split = json.loads((run_dir / "split.json").read_text())
    record = json.loads((run_dir / "run.json").read_text())
    for left_out in (split["left_out"], record["left_out"]):
        assert sorted(left_out) == sorted([orphan, gone]), left_out
        assert "label file without a video" in left_out[orphan] and str(tmp_path / "proj") in left_out[orphan]
        assert "video file missing" in left_out[gone] and f"{gone}.mp4" in left_out[gone]
    used = split["train"] + split["val"] + split["test"]
    assert sorted(used) == sorted(set(videos) - {orphan, gone})
    log = capsys.readouterr().out
    assert f"left out {orphan}: label file without a video" in log and f"left out {gone}: video file missing" in log
    assert open_dataset("proj").left_out() == split["left_out"]

    # the figure index names them under the data the figures come from
    describe.describe("proj", "tiny")
    index = figindex.build_index("tiny").read_text()
    assert f"left out of every run: `{orphan}`: label file without a video" in index
    assert f"left out of every run: `{gone}`: video file missing" in index
