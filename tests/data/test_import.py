"""Importing a DeepEthogram project: built aside and swapped in, frame counts by decoding, orphan labels reported."""
from __future__ import annotations

import warnings

import av
import numpy as np
import pytest
import yaml

from deg.data import video as video_io
from deg.data.datasets import Dataset
from deg.data.labels import LabelFormatError, LabelWarning, import_deg_project, write_deg_labels

BEHAVIOURS = ["background", "walk", "groom"]


def _labels(n_frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = np.zeros((n_frames, 3), dtype=np.int8)
    matrix[np.arange(n_frames), rng.integers(0, 3, n_frames)] = 1
    return matrix


def _video(path, n_frames: int, seed: int = 0) -> None:
    frames = np.random.default_rng(seed).integers(0, 255, (n_frames, 16, 16, 3), dtype=np.uint8)
    video_io.write_video(path, frames, fps=25.0, preset="ultrafast")


def make_project(root, videos: dict[str, int], description: str = "") -> dict[str, np.ndarray]:
    """A DeepEthogram project folder: ``videos`` maps name -> frames (video and matching labels)."""
    (root / "DATA").mkdir(parents=True)
    project = {"name": "proj", "class_names": BEHAVIOURS, "path": str(root)}
    if description:
        project["description"] = description
    (root / "project_config.yaml").write_text(yaml.safe_dump({"project": project}))
    matrices = {}
    for i, (name, n) in enumerate(videos.items()):
        (root / "DATA" / name).mkdir()
        _video(root / "DATA" / name / f"{name}.mp4", n, seed=i)
        matrices[name] = _labels(n, seed=i)
        write_deg_labels(root / "DATA" / name / f"{name}_labels.csv", matrices[name], BEHAVIOURS)
    return matrices


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_failed_reimport_leaves_the_old_dataset_intact(tmp_path):
    old = make_project(tmp_path / "v1", {"a": 12, "b": 10})
    dest = tmp_path / "data"
    import_deg_project(tmp_path / "v1", dest, dataset_id="ds")
    # The new version's second video disagrees with its labels: found only after the first was written.
    make_project(tmp_path / "v2", {"a": 12, "b": 10})
    write_deg_labels(tmp_path / "v2" / "DATA" / "b" / "b_labels.csv", _labels(14, 5), BEHAVIOURS)
    with pytest.raises(LabelFormatError, match=r"b_labels.csv: 14 label rows but .*b.mp4 has 10 frames"):
        import_deg_project(tmp_path / "v2", dest, dataset_id="ds")
    kept = Dataset.load(dest / "ds")                                      # still complete
    for name, matrix in old.items():
        np.testing.assert_array_equal(kept.labels(name), matrix)
    assert _leftovers(dest) == []                                         # no half-built folder beside it
    # A failed first import leaves nothing at all.
    with pytest.raises(LabelFormatError):
        import_deg_project(tmp_path / "v2", dest, dataset_id="fresh")
    assert not (dest / "fresh").exists() and _leftovers(dest) == []
    # A successful re-import replaces the old one completely.
    new = make_project(tmp_path / "v3", {"a": 8})
    ds = import_deg_project(tmp_path / "v3", dest, dataset_id="ds")
    assert ds.videos == ["a"] and not (dest / "ds" / "labels" / "labeler" / "b.csv").exists()
    np.testing.assert_array_equal(Dataset.load(dest / "ds").labels("a"), new["a"])


def test_cut_video_imports_the_decoded_frames_not_the_header_count(tmp_path):
    make_project(tmp_path / "proj", {"whole": 20, "cut": 90})
    path = tmp_path / "proj" / "DATA" / "cut" / "cut.mp4"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])                        # index first: the header still says 90
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 90
    with pytest.warns(LabelWarning, match=r"cut.mp4 is cut: its header declares 90 frames but only \d+ decode"):
        ds = import_deg_project(tmp_path / "proj", tmp_path / "data")
    record = ds.extra["repaired_videos"]["cut"]
    n = record["decoded_frames"]
    assert 0 < n < 90 and record["header_frames"] == 90 and record["label_rows"] == 90
    assert ds.labels("cut").shape == (n, 3)
    assert video_io.video_info(ds.video_path("cut")).n_frames == n        # the placed video is whole
    assert ds.labels("whole").shape == (20, 3) and "whole" not in ds.extra["repaired_videos"]


def test_labels_without_a_video_are_reported_and_recorded(tmp_path):
    make_project(tmp_path / "proj", {"a": 12, "b": 10})
    (tmp_path / "proj" / "DATA" / "b" / "b.mp4").unlink()
    with pytest.warns(LabelWarning, match=r"label file\(s\) without a video.*b_labels.csv"):
        ds = import_deg_project(tmp_path / "proj", tmp_path / "data", dataset_id="ds")
    assert ds.videos == ["a"] and ds.extra["labels_without_video"] == ["b"]
    assert Dataset.load(tmp_path / "data" / "ds").extra["labels_without_video"] == ["b"]   # in dataset.json


def test_record_settings_and_description_are_kept(tmp_path):
    make_project(tmp_path / "proj", {"a": 12}, description="labels derived from pose, not human")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = import_deg_project(tmp_path / "proj", tmp_path / "data", dataset_id="ds", fps=30.0,
                                behaviours=BEHAVIOURS, image_size=(64, 48), flips=(False, True))
    loaded = Dataset.load(tmp_path / "data" / "ds")
    assert (loaded.fps, loaded.image_size, loaded.flips) == (30.0, (64, 48), {"horizontal": False, "vertical": True})
    assert "labels derived from pose, not human" in loaded.description
    assert loaded.extra["project_description"] == "labels derived from pose, not human" and ds.root == loaded.root
    with pytest.raises(LabelFormatError, match="class_names .* differ from the dataset's behaviours"):
        import_deg_project(tmp_path / "proj", tmp_path / "data", dataset_id="ds", behaviours=["background", "x"])
