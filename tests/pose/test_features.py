"""Keypoint features: the paper's 44 x 31 = 1364 inputs, geometry, interpolation, real skeletons."""
from __future__ import annotations

import numpy as np
import pytest

from deg.data import synthetic
from deg.pose import features as F


def _paper_pose(T: int = 12) -> tuple[np.ndarray, list[str]]:
    """A mouse of the paper's 7 points, nose at +x, moving right; likelihood 1."""
    points = list(F.SKELETONS["mouse_openfield"].points)
    # nose, lf, rf, lh, rh, tailbase, tailtip (x, y) in pixels
    base = np.array([[40, 0], [20, 10], [20, -10], [-20, 10], [-20, -10], [-40, 0], [-70, 0]], float) + 100
    xy = np.repeat(base[None], T, 0) + np.arange(T)[:, None, None] * np.array([1.0, 0.0])
    pose = np.concatenate([xy, np.ones((T, 7, 1))], axis=-1)[:, None].astype(np.float32)
    return pose, points


def test_paper_skeleton_gives_44_features_and_1364_inputs():
    sk = F.SKELETONS["mouse_openfield"]
    pose, points = _paper_pose()
    x = F.pose_features(pose, points, sk, 0.9, arena_px=(200, 200))
    assert x.shape == (12, 44) and len(sk.feature_names()) == 44
    assert F.windows(x, 15, 15).shape == (12, 1364)
    names = sk.feature_names()
    # distances and area in arena units (arena 200 px): nose-tailbase 80 px, lf-rf 20 px, body polygon
    assert x[0, names.index("dist_nose-tailbase")] == pytest.approx(80 / 200)
    assert x[0, names.index("dist_left_forepaw-right_forepaw")] == pytest.approx(20 / 200)
    area = (40 * 20 + 2 * 0.5 * 20 * 20) / 200 ** 2   # hexagon: paw rectangle 40x20 + two triangles (base 20, height 20)
    assert x[0, names.index("area")] == pytest.approx(area, rel=1e-5)
    # the tail lies on the body axis: angle 180 degrees
    assert abs(x[0, names.index("angle_tailtip_tailbase_nose")]) == pytest.approx(np.pi, abs=1e-5)


def test_body_aligned_coordinates_do_not_change_when_the_animal_turns():
    sk = F.SKELETONS["mouse_openfield"]
    pose, points = _paper_pose(3)
    theta = 0.7
    c, s = np.cos(theta), np.sin(theta)
    turned = pose.copy()
    xy = pose[..., :2] - 100
    turned[..., 0], turned[..., 1] = c * xy[..., 0] - s * xy[..., 1] + 100, s * xy[..., 0] + c * xy[..., 1] + 100
    a = F.pose_features(pose, points, sk, 0.9, arena_px=(200, 200))
    b = F.pose_features(turned, points, sk, 0.9, arena_px=(200, 200))
    aligned = [i for i, n in enumerate(sk.feature_names()) if "_aligned_" in n]
    invariant = [i for i, n in enumerate(sk.feature_names()) if n.startswith(("dist_", "angle_", "area"))]
    np.testing.assert_allclose(a[:, aligned], b[:, aligned], atol=1e-5)
    np.testing.assert_allclose(a[:, invariant], b[:, invariant], atol=1e-5)
    assert not np.allclose(a[:, :16], b[:, :16])     # arena coordinates do change


def test_low_confidence_points_are_interpolated_linearly():
    pose, points = _paper_pose(5)
    pose[2, 0, 0, :2] = [0.0, 0.0]          # a wild nose detection ...
    pose[2, 0, 0, 2] = 0.3                  # ... with low likelihood
    xy = F.interpolate(pose, points, 0.9)
    np.testing.assert_allclose(xy[2, 0, 0], (pose[1, 0, 0, :2] + pose[3, 0, 0, :2]) / 2)


def test_unknown_points_are_named():
    pose, points = _paper_pose(2)
    with pytest.raises(F.SkeletonError, match="tail_base"):
        F.pose_features(pose, points, F.SKELETONS["synthetic_mouse5"], 0.9, source="my.csv")
    with pytest.raises(F.SkeletonError, match="not in its points"):
        F.Skeleton("bad", points=("a", "b"), front="a", back="b", centroid=("a",), angles=(("a", "b", "z"),))


def test_synthetic_skeleton_matches_the_generator():
    sk = F.SKELETONS[synthetic.POSE_SKELETON]
    assert list(sk.points) == synthetic.POSE_POINTS


@pytest.mark.parametrize("skeleton, relative, animals", [
    ("sturman", "sturman_pose_oft/12_01_A_190507144429DeepCut_resnet50_Blockcourse1May9shuffle1_1030000.csv", 1),
    ("rat_social", "rat_social/dlc_csv/10DLC_dlcrnetms5_DLC_ratJan24shuffle1_5000_el_filtered.csv.gz", 2),
    ("behaviordepot", "behaviordepot/demo1/demo1_tracking.csv", 1),
    ("behaviordepot", "behaviordepot/demo2/demo2_tracking.csv", 1),
    ("ethome", "ethome/e3v813a-20210610T122332-122642DLC_dlcrnetms5_pilot_studySep24shuffle1_100000_el_filtered.csv", 2),
])
def test_real_pose_files_fit_their_skeletons(shared_data, skeleton, relative, animals):
    """Each real pose dataset's DeepLabCut file has the points its skeleton names; features are finite."""
    from deg.data.pose import read_pose

    path = shared_data / relative
    if not path.exists():
        pytest.skip(f"{path} is absent")
    pose = read_pose(path)
    mid = pose.n_frames // 2                     # rats enter the arena after the first frames
    pose.xy = pose.xy[mid:mid + 300]
    sk = F.SKELETONS[skeleton]
    x = F.pose_features(pose.xy, pose.points, sk, 0.9, source=str(path))
    assert x.shape == (300, len(sk.feature_names(len(pose.animals)))) and len(pose.animals) == animals
    assert np.isfinite(x).all() and x.std(axis=0).max() > 0
