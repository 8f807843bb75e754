"""BehaviorDEPOT hB_*.mat annotations: MATLAB v7.3 (h5py) and v5 (scipy), real files and broken copies."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from deg.data.behaviordepot import is_behaviordepot, read_behaviordepot
from deg.data.labels import LabelFormatError, LabelWarning

DEMO1 = "behaviordepot/demo1/hB_demo1_manual_annotations.mat.mat"
DEMO2 = "behaviordepot/demo2/hB_demo2_manual_annotations.mat"


@pytest.mark.parametrize("relative, version, frames, freezing", [
    (DEMO1, "7.3", 6000, 1368), (DEMO2, "5", 3600, 1353)])
def test_real_files(shared_data, relative, version, frames, freezing):
    path = shared_data / relative
    assert is_behaviordepot(path)
    result = read_behaviordepot(path)
    assert result.mat_version == version and result.behaviours == ["background", "Freezing"]
    assert result.labels.shape == (frames, 2) and int(result.labels[:, 1].sum()) == freezing
    assert (result.labels.sum(axis=1) == 1).all()
    assert result.video == relative.split("/hB_")[1].split(".mat")[0]


def test_bouts_are_one_indexed_inclusive(shared_data):
    """demo2's first bout is frames 189..217 (MATLAB): 0-indexed 188..216 are freezing."""
    labels = read_behaviordepot(shared_data / DEMO2).labels[:, 1]
    assert labels[187] == 0 and labels[188:217].all() and labels[217] == 0


def _v5(path, vector, bouts, total):
    scipy.io.savemat(path, {"hBehavior": {"TotalFrames": total,
                                          "Freezing": {"Vector": vector, "Bouts": bouts}}})
    return path


def test_broken_files(shared_data, tmp_path):
    vector = np.zeros(50)
    vector[10:20] = 1
    bouts = np.array([[11, 20]], dtype=float)
    ok = read_behaviordepot(_v5(tmp_path / "hB_ok.mat", vector, bouts, 50))
    assert ok.video == "ok" and ok.labels[10:20, 1].all() and ok.labels[:, 1].sum() == 10
    cases = [
        (_v5(tmp_path / "short.mat", vector, bouts, 60), "Freezing.Vector has 50 frames but TotalFrames is 60"),
        (_v5(tmp_path / "values.mat", vector * 2, bouts, 50), "values other than 0/1"),
    ]
    scipy.io.savemat(tmp_path / "nostruct.mat", {"other": np.ones(3)})
    cases.append((tmp_path / "nostruct.mat", "no 'hBehavior' struct"))
    truncated = tmp_path / "cut.mat"
    truncated.write_bytes((shared_data / DEMO1).read_bytes()[:3000])
    cases.append((truncated, "unreadable MATLAB v7.3"))
    (tmp_path / "text.mat").write_text("hello")
    cases.append((tmp_path / "text.mat", "not a MATLAB .mat file"))
    with h5py.File(tmp_path / "empty73.mat", "w", userblock_size=512) as fh:
        fh.create_group("hBehavior").create_dataset("TotalFrames", data=[[5.0]])
    cases.append((tmp_path / "empty73.mat", "holds no behaviour"))
    for path, match in cases:
        with pytest.raises(LabelFormatError, match=match) as info:
            read_behaviordepot(path)
        assert str(path) in str(info.value)
    with pytest.warns(LabelWarning, match="disagree on 2 frame"):
        read_behaviordepot(_v5(tmp_path / "bouts.mat", vector, np.array([[11, 22]], dtype=float), 50))
