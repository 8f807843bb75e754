"""Synthetic pose: tracked keypoints on the very videos the pixel models see, without changing them."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from deg.data import synthetic as S
from deg.data.pose import read_pose
from deg.data.video import read_video, write_video


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return S.generate("synthetic_tiny", root=tmp_path_factory.mktemp("tiny") / "synthetic_tiny", progress=False)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pose_files_layout_and_determinism(tiny, tmp_path):
    spec = S.VARIANTS["synthetic_tiny"]
    assert tiny.has_pose and tiny.pose_info["points"] == S.POSE_POINTS
    assert tiny.pose_info["arena_px"] == [spec.height, spec.width] and tiny.pose_info["skeleton"] == S.POSE_SKELETON
    for video in tiny.videos:
        pose = tiny.pose(video)
        assert pose.xy.shape == (spec.n_frames, 1, 5, 3) and pose.animals == ["mouse"] and pose.fps == spec.fps
    again = S.generate("synthetic_tiny", root=tmp_path / "again", progress=False)
    other = S.generate("synthetic_tiny", root=tmp_path / "other", seed=1, progress=False)
    first = tiny.videos[0]
    assert _sha(tiny.pose_path(first)) == _sha(again.pose_path(first))
    assert _sha(tiny.pose_path(first)) != _sha(other.pose_path(first))


def test_videos_and_labels_do_not_depend_on_pose(tiny, tmp_path):
    """The video is the same bytes as one rendered from the video's own generator alone."""
    spec = S.VARIANTS["synthetic_tiny"]
    frames, labels, _ = S.render_video(spec, S.video_rng("synthetic_tiny", 0, 0))
    out = write_video(tmp_path / "v.mp4", frames, fps=spec.fps, preset="veryfast")
    assert _sha(out) == _sha(tiny.video_path("video00"))
    np.testing.assert_array_equal(tiny.labels("video00"), labels)
    # the tracker's generator is a separate stream: drawing it leaves the video's untouched
    a, b = S.video_rng("synthetic_tiny", 0, 0), S.video_rng("synthetic_tiny", 0, 0)
    S.pose_rng("synthetic_tiny", 0, 0).random(10)
    assert a.random() == b.random()


def test_keypoints_sit_on_the_drawn_subject(tiny):
    """Where the tracker is confident, body centre and head are on dark subject pixels."""
    video = tiny.videos[0]
    frames = read_video(tiny.video_path(video)).mean(axis=-1)           # (T, H, W) grey
    pose = tiny.pose(video)
    T, H, W = frames.shape
    floor = np.median(frames, axis=(1, 2))                              # mostly floor
    for point in ("body_centre", "head"):
        xy = pose.xy[:, 0, S.POSE_POINTS.index(point)]
        ok = xy[:, 2] > 0.9
        col = np.clip(xy[ok, 0].astype(int), 0, W - 1)
        row = np.clip(xy[ok, 1].astype(int), 0, H - 1)
        dark = frames[np.flatnonzero(ok)] < floor[ok, None, None] - 40     # subject (and wall) pixels
        on_subject = dark[np.arange(len(row)), row, col]
        elsewhere = dark[np.arange(len(row)), np.roll(row, 37), np.roll(col, 53)]  # other frames' points
        assert ok.mean() > 0.8 and on_subject.mean() > 0.8, point
        assert on_subject.mean() > elsewhere.mean() + 0.3, point


def test_tracker_noise_dropouts_and_likelihoods():
    """Statistics of the simulated tracker on a long still trajectory (no rendering)."""
    T, body_len = 20000, 10.0
    truth = np.tile(np.array([[30.0, 30.0], [28, 30], [25, 30], [20, 30], [10, 30]]), (T, 1, 1))
    out = S.simulate_tracker(truth, body_len, np.random.default_rng(0))
    assert out.shape == (T, 5, 3) and out.dtype == np.float32
    missing = np.isnan(out[..., 0])
    assert np.array_equal(missing, np.isnan(out[..., 2]))
    rate = missing.mean(axis=0)
    assert 0.001 < rate.mean() < 0.05 and rate[4] > rate[2]            # the tail tip drops out most
    likelihood = out[..., 2]
    good = likelihood > 0.9
    assert np.nanmedian(likelihood) > 0.95 and 0.01 < (~good & ~missing).mean() < 0.1
    error = np.linalg.norm(out[..., :2] - truth, axis=-1)
    assert np.median(error[good]) < 0.1 * body_len                     # jitter: a fraction of the body
    assert np.median(error[~good & ~missing]) > 2 * np.median(error[good])   # low likelihood = off
    again = S.simulate_tracker(truth, body_len, np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)


def test_written_pose_reads_back(tiny):
    pose = read_pose(tiny.pose_path(tiny.videos[1]))
    assert pose.points == S.POSE_POINTS and np.isfinite(pose.xy).mean() > 0.9
