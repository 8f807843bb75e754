"""deg.data.pose: the one pose form, DeepLabCut CSV/.h5 reading, writing, and alignment with labels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deg.data.datasets import Dataset, open_dataset
from deg.data.labels import background_from, write_deg_labels
from deg.data.pose import (
    Pose,
    PoseFormatError,
    align_pose_labels,
    detect_pose_format,
    iter_pose_labels,
    read_pose,
    write_pose,
)

MABE = "mabe22/EGS8X2MN4SSUGFWAV976.h5"


def _toy_pose(T=12, animals=("a", "b"), points=("nose", "tail"), seed=0) -> Pose:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 500, (T, len(animals), len(points), 3)).astype(np.float32)
    xy[..., 2] = rng.uniform(0, 1, xy.shape[:3])
    xy[3, 0, 1] = np.nan                       # a dropout
    return Pose(xy=xy, animals=list(animals), points=list(points), fps=30.0)


def test_real_h5_multi_animal_without_likelihood(shared_data):
    pose = read_pose(shared_data / MABE)
    assert pose.xy.shape == (1800, 3, 12, 3) and pose.xy.dtype == np.float32
    assert pose.animals == ["mouse1", "mouse2", "mouse3"] and pose.points[0] == "nose"
    raw = pd.read_hdf(shared_data / MABE).to_numpy()
    np.testing.assert_array_equal(np.nan_to_num(pose.xy[0, 0, 0, :2]), raw[0, :2])
    # no likelihood columns: 1 where present; (0, 0) points are missing, with NaN likelihood
    present = np.isfinite(pose.coords).all(-1)
    assert np.all(pose.likelihood[present] == 1) and np.isnan(pose.likelihood[~present]).all()
    assert 0 < (~present).mean() < 0.5


def test_h5_single_animal_and_csv_agree(tmp_path, shared_data):
    csv = shared_data / "sturman_pose_oft" / \
        "12_01_A_190507144429DeepCut_resnet50_Blockcourse1May9shuffle1_1030000.csv"
    pose = read_pose(csv)
    assert pose.xy.shape == (1998, 1, 18, 3) and pose.animals == ["single"]
    # the same tracks as a pandas HDF5 file in DeepLabCut's single-animal layout
    columns = pd.MultiIndex.from_product([["scorer0"], pose.points, ["x", "y", "likelihood"]],
                                         names=["scorer", "bodyparts", "coords"])
    frame = pd.DataFrame(pose.xy[:200, 0].reshape(200, -1).astype(np.float64), columns=columns)
    h5 = tmp_path / "tracks.h5"
    frame.to_hdf(h5, key="df_with_missing", mode="w")
    assert detect_pose_format(h5) == "h5" and detect_pose_format(csv) == "csv"
    back = read_pose(h5, fps=25.0)
    assert back.animals == ["single"] and back.points == pose.points and back.fps == 25.0
    np.testing.assert_array_equal(back.xy, pose.xy[:200])


def test_write_read_round_trip_and_content_detection(tmp_path):
    pose = _toy_pose()
    path = write_pose(tmp_path / "p.csv", pose)
    lines = path.read_text().splitlines()
    assert [line.split(",")[0] for line in lines[:4]] == ["scorer", "individuals", "bodyparts", "coords"]
    assert lines[4 + 3].split(",")[4:7] == ["", "", ""]        # NaN as empty cells, like DeepLabCut
    back = read_pose(path)
    np.testing.assert_allclose(back.xy, pose.xy, rtol=1e-6, equal_nan=True)
    assert back.animals == pose.animals and back.points == pose.points
    misnamed = tmp_path / "p.h5"                               # CSV content under an .h5 name
    misnamed.write_bytes(path.read_bytes())
    np.testing.assert_allclose(read_pose(misnamed).xy, pose.xy, rtol=1e-6, equal_nan=True)
    assert not list(tmp_path.glob(".tmp-*"))                  # the write was atomic
    with pytest.raises(ValueError, match="contain a comma"):
        write_pose(tmp_path / "bad.csv", Pose(xy=pose.xy[:, :1, :1], animals=["a,b"], points=["nose"]))
    assert not (tmp_path / "bad.csv").exists()


def test_broken_files_name_the_file(tmp_path, shared_data):
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes((shared_data / MABE).read_bytes()[:4000])
    with pytest.raises(PoseFormatError, match="cut.h5"):
        read_pose(truncated)
    other = tmp_path / "other.h5"
    pd.DataFrame({"a": [1.0, 2.0]}).to_hdf(other, key="t", mode="w")
    with pytest.raises(PoseFormatError, match=r"other\.h5.*MultiIndex"):
        read_pose(other)
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("hello,world\n1,2\n")
    with pytest.raises(PoseFormatError, match="garbage.csv.*scorer"):
        read_pose(garbage)
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        read_pose(tmp_path / "nothere.csv")


def test_select_and_keypoints_view():
    pose = _toy_pose()
    sub = pose.select(animals=["b"], points=["tail", "nose"])
    np.testing.assert_array_equal(sub.xy[:, 0, 0], pose.xy[:, 1, 1])
    kp = pose.to_keypoints()
    assert kp.xy.shape == (12, 2, 2, 2) and kp.likelihood.shape == (12, 2, 2)
    np.testing.assert_array_equal(Pose.from_keypoints(kp).xy, pose.xy)
    with pytest.raises(KeyError, match="elbow"):
        pose.select(points=["elbow"])


def test_dataset_pose_and_alignment(tmp_path):
    root = tmp_path / "toy"
    behaviours = ["background", "walk"]
    rng = np.random.default_rng(1)
    for annotator, T in (("a1", 12), ("a2", 10)):
        write_deg_labels(root / "labels" / annotator / "v0.csv",
                         background_from(rng.integers(0, 2, (T, 1))), behaviours)
    write_deg_labels(root / "labels" / "a1" / "v1.csv", background_from(np.zeros((5, 1))), behaviours)
    write_pose(root / "pose" / "v0.csv", _toy_pose(T=11))
    info = {"animals": ["a", "b"], "points": ["nose", "tail"], "skeleton": None, "arena_px": None}
    Dataset(id="toy", fps=30.0, behaviours=behaviours, annotators=["a1", "a2"], train_annotator="a1",
            videos=["v0", "v1"], pose_info=info, root=root).save()
    ds = open_dataset(root)
    assert ds.pose_info == info and ds.has_pose and ds.pose("v1") is None
    assert '"pose"' in (root / "dataset.json").read_text()
    items = list(iter_pose_labels(ds))                        # v1 has no pose: skipped
    assert [item.video for item in items] == ["v0"]
    item = items[0]
    assert item.n_frames == 10 and set(item.labels) == {"a1", "a2"}
    assert item.trimmed == {"pose": 1, "labels/a1": 2} and "11 -> 10" in item.note
    np.testing.assert_array_equal(item.labels["a1"], ds.labels("v0", "a1")[:10])
    assert not ds.pose("v0").xy.flags.writeable
    same = align_pose_labels("v", {"x": np.zeros((11, 2), np.int8)}, _toy_pose(T=11))
    assert same.trimmed == {} and same.note == ""
