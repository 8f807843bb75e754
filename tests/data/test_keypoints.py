"""DeepLabCut keypoint reader and low-confidence interpolation.

Real files come from ``deg.paths.shared_data_dir()`` (skipped when absent); malformed inputs are
copies written to ``tmp_path``.
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from deg import paths
from deg.data.keypoints import (
    KeypointFormatError,
    Keypoints,
    interpolate_low_confidence,
    line_field_counts,
    read_dlc,
)
from deg.presets import HPARAMS


def _shared() -> Path:
    root = paths.shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent (it lies beside the checkout in CI only)")
    return root


@pytest.fixture(scope="module")
def sturman_files() -> list[Path]:
    files = sorted((_shared() / "sturman_pose_oft").glob("*.csv"))
    assert len(files) == 2
    return files


@pytest.fixture(scope="module")
def rat_file() -> Path:
    (path,) = (_shared() / "rat_social" / "dlc_csv").glob("12DLC_*.csv.gz")
    return path


@pytest.fixture(scope="module")
def rat(rat_file) -> Keypoints:
    return read_dlc(rat_file)


def _rows(path: Path) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        return list(csv.reader(fh))


def _expect_error(path: Path, match: str):
    with pytest.raises(KeypointFormatError, match=match) as info:
        read_dlc(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- real files
def test_sturman_single_animal(sturman_files):
    for path in sturman_files:
        rows = _rows(path)
        kp = read_dlc(path)
        # The file holds 3 header rows (after a pandas index column) then one row per frame; the
        # README's "first 2,000 frames" counts the two header rows pandas had turned into data.
        assert kp.xy.shape == (len(rows) - 3, 1, 18, 2) == (1998, 1, 18, 2)
        assert kp.likelihood.shape == (1998, 1, 18) and kp.xy.dtype == np.float32
        assert kp.animals == ["single"]
        assert kp.bodyparts == list(dict.fromkeys(rows[1][2:]))           # the header's order
        assert kp.bodyparts[:5] == ["tl", "tr", "bl", "br", "centre"] and kp.bodyparts[-1] == "tailtip"
        assert kp.scorer == "DeepCut_resnet50_Blockcourse1May9shuffle1_1030000"   # ".1" suffixes undone
        np.testing.assert_array_equal(kp.frame_index, np.arange(1998))
        assert np.isfinite(kp.likelihood).all()
        assert kp.likelihood.min() >= 0 and kp.likelihood.max() <= 1
        last = rows[-1]                                                    # spot-check the last frame
        np.testing.assert_allclose(kp.xy[-1, 0, 0], [float(last[2]), float(last[3])], rtol=1e-6)
        np.testing.assert_allclose(kp.likelihood[-1, 0, -1], float(last[-1]), rtol=1e-6)


def test_rat_multi_animal(rat, rat_file):
    rows = _rows(rat_file)
    assert rat.animals == ["individual1", "individual2"]
    assert rat.bodyparts == ["top", "body", "tail", "tail-m", "tail-e"]
    assert rat.xy.shape == (len(rows) - 4, 2, 5, 2) == (12987, 2, 5, 2)
    # NaN exactly where the file's cell is empty (column order: animal, part, x/y/likelihood)
    empty = np.array([[cell == "" for cell in row[1:]] for row in rows[4:]])      # (T, 30)
    as_file = np.concatenate([rat.xy, rat.likelihood[..., None]], axis=-1).reshape(len(empty), -1)
    np.testing.assert_array_equal(np.isnan(as_file), empty)
    assert empty.any() and (~empty).any()
    finite = rat.likelihood[np.isfinite(rat.likelihood)]
    assert finite.min() >= 0 and finite.max() <= 1


def test_gzip_and_plain_agree(sturman_files, tmp_path):
    packed = tmp_path / (sturman_files[0].name + ".gz")
    packed.write_bytes(gzip.compress(sturman_files[0].read_bytes()))
    a, b = read_dlc(sturman_files[0]), read_dlc(packed)
    np.testing.assert_array_equal(a.xy, b.xy)
    np.testing.assert_array_equal(a.likelihood, b.likelihood)


def test_interpolation_on_real_tracks(sturman_files):
    kp = read_dlc(sturman_files[1])
    out = interpolate_low_confidence(kp, threshold=0.9)
    good = kp.likelihood >= 0.9
    np.testing.assert_array_equal(out.xy[good], kp.xy[good])               # confident points untouched
    assert (~good).any() and np.isfinite(out.xy).all()
    np.testing.assert_array_equal(out.likelihood, kp.likelihood)
    # one low-confidence point lies on the line between its confident neighbours
    seen_before = np.maximum.accumulate(good, axis=0)
    seen_after = np.maximum.accumulate(good[::-1], axis=0)[::-1]
    t, a, p = map(int, np.argwhere(~good & seen_before & seen_after)[0])
    series = good[:, a, p]
    before = np.flatnonzero(series[:t])[-1]
    after = t + np.flatnonzero(series[t:])[0]
    assert after - before >= 2
    w = (t - before) / (after - before)
    np.testing.assert_allclose(out.xy[t, a, p], (1 - w) * kp.xy[before, a, p] + w * kp.xy[after, a, p], rtol=1e-5)


# ----------------------------------------------------------------------------- interpolation
def test_interpolation_exact_values():
    n = 7
    xy = np.zeros((n, 1, 3, 2), dtype=np.float32)
    xy[:, 0, 0, 0] = np.arange(n) * 10
    xy[:, 0, 1] = np.arange(n)[:, None]
    xy[:, 0, 2] = 3.0
    likelihood = np.ones((n, 1, 3), dtype=np.float32)
    likelihood[1:4, 0, 0] = 0.2                    # interior gap: interpolated
    xy[2, 0, 0] = np.nan                           # a missing point inside the gap as well
    likelihood[0, 0, 1], likelihood[6, 0, 1] = 0.5, np.nan    # edges: nearest confident value held
    likelihood[:, 0, 2] = 0.1                      # never confident: stays NaN
    kp = Keypoints(xy, likelihood, ["single"], ["a", "b", "c"], "s", np.arange(n))
    out = interpolate_low_confidence(kp)
    np.testing.assert_allclose(out.xy[:, 0, 0, 0], np.arange(n) * 10)
    np.testing.assert_allclose(out.xy[:, 0, 0, 1], 0)
    np.testing.assert_allclose(out.xy[:, 0, 1, 0], [1, 1, 2, 3, 4, 5, 5])
    assert np.isnan(out.xy[:, 0, 2]).all()
    assert np.isnan(kp.xy[2, 0, 0, 0])                          # input left as it was


def test_interpolation_threshold_default_from_presets():
    assert HPARAMS["keypoint_min_likelihood"] == 0.9
    xy = np.array([0.0, 5.0, 10.0], dtype=np.float32).reshape(3, 1, 1, 1).repeat(2, axis=-1)
    likelihood = np.array([1.0, 0.89, 1.0], dtype=np.float32).reshape(3, 1, 1)
    kp = Keypoints(xy.copy(), likelihood, ["single"], ["a"], "s", np.arange(3))
    kp.xy[1] = 100.0
    assert interpolate_low_confidence(kp).xy[1, 0, 0, 0] == pytest.approx(5.0)
    assert interpolate_low_confidence(kp, threshold=0.8).xy[1, 0, 0, 0] == pytest.approx(100.0)


# ----------------------------------------------------------------------------- malformed copies
def _multi_csv(rows: list[str]) -> str:
    header = ("scorer,s,s,s,s,s,s\nindividuals,r1,r1,r1,r2,r2,r2\nbodyparts,nose,nose,nose,nose,nose,nose\n"
              "coords,x,y,likelihood,x,y,likelihood\n")
    return header + "".join(r + "\n" for r in rows)


def test_small_multi_animal_file(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(_multi_csv(["0,1,2,0.5,,,", "1,3,4,1.0,5,6,0.25"]))
    kp = read_dlc(path)
    assert kp.animals == ["r1", "r2"] and kp.bodyparts == ["nose"] and kp.scorer == "s"
    np.testing.assert_array_equal(kp.xy[:, 0, 0], [[1, 2], [3, 4]])
    assert np.isnan(kp.xy[0, 1, 0]).all() and np.isnan(kp.likelihood[0, 1, 0])
    np.testing.assert_array_equal(kp.xy[1, 1, 0], [5, 6])


@pytest.mark.parametrize("content, match", [
    ("", "empty file"),
    ("scorer,s,s,s\nbodyparts,a,a,a\n0,1,2,0.5\n", r"header rows \['scorer', 'bodyparts'\] are neither"),
    ("scorer,s,s,s\nindividuals,r,r,r\nindividuals,r,r,r\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,2,1\n",
     "header rows .* are neither"),
    ("frame,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,2,0.5\n", "first header row must begin with 'scorer'"),
    ("scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,z\n0,1,2,0.5\n", r"coords \['z'\] found"),
    ("scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,2,0.5\n1,1,oops,0.5\n",
     "line 5, column 3: 'oops' is not a number"),
    ("scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,2,0.5\n1,1,2\n", "ragged rows: non-empty line 5"),
    ("scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,2,0.5,9\n", "ragged rows"),
    ("scorer,s,s,s\nbodyparts,a,a,a\ncoords,x,y,likelihood\n", "header but no frames"),
    ("scorer,s,s,s,s\nbodyparts,a,a,a,a\ncoords,x,y,likelihood,x\n0,1,2,0.5,1\n", "appears twice"),
    ("scorer,s,s\nbodyparts,a,a\ncoords,x,y\n0,1,2\n", r"a lacks coords \['likelihood'\]"),
])
def test_malformed(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    _expect_error(path, match)


def test_malformed_real_copy(sturman_files, tmp_path):
    """A real file with its coords header row removed, and one with a cell corrupted."""
    lines = sturman_files[0].read_text().splitlines(keepends=True)
    path = tmp_path / "no_coords.csv"
    path.write_text(lines[0] + lines[1] + "".join(lines[3:]))
    _expect_error(path, "header rows")
    corrupt = lines[:10] + [lines[10].replace(",", ",abc", 1)] + lines[11:]
    path = tmp_path / "corrupt.csv"
    path.write_text("".join(corrupt))
    _expect_error(path, "line 11, column 2: 'abc7'")


def test_unsupported_and_missing(tmp_path):
    _expect_error(tmp_path / "tracks.h5", "HDF5 DeepLabCut files are not supported")
    _expect_error(tmp_path / "tracks.txt", "expected a DeepLabCut .csv")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_dlc(tmp_path / "nope.csv")
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"not gzip")
    _expect_error(path, "not a valid gzip file")


def test_line_field_counts():
    raw = b"a,b,c\r\n1,2,3\n\n4,5\n6,7,8"
    np.testing.assert_array_equal(line_field_counts(raw), [3, 3, 2, 3])
