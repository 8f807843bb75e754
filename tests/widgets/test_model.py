"""EthogramModel: frames decoded on demand from a real video, edits, undo, saving with backups."""
from __future__ import annotations

import numpy as np
import pytest

from deg.data import video as video_io
from deg.data.labels import read_deg_labels, write_deg_labels
from deg.widgets.model import Bout, EthogramError, EthogramModel

BEHAVIOURS = ["background", "walk", "groom"]
T = 40


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A real H.264 file whose frame i shows its index as the grey level (so seeks are checkable)."""
    path = tmp_path_factory.mktemp("widget") / "clip.mp4"
    frames = np.repeat(np.repeat((np.arange(T, dtype=np.uint8) * 6)[:, None, None, None], 32, 1), 32, 2)
    video_io.write_video(path, np.repeat(frames, 3, 3), fps=10.0)
    return path


def _labels(walk=((5, 12),), groom=((20, 30),)) -> np.ndarray:
    m = np.zeros((T, 3), dtype=np.int8)
    for a, b in walk:
        m[a:b, 1] = 1
    for a, b in groom:
        m[a:b, 2] = 1
    m[:, 0] = m[:, 1:].sum(1) == 0
    return m


def test_frames_on_demand_and_cursor(video):
    model = EthogramModel(video, BEHAVIOURS)
    assert model.n_frames == T and model.fps == 10.0
    assert model.seek(25) == 25 and abs(int(model.frame().mean()) - 150) <= 4
    assert abs(int(model.frame(3).mean()) - 18) <= 4               # a backwards seek
    assert model.step(100) == T - 1 and model.step(-1000) == 0      # clamped
    with pytest.raises(EthogramError, match="outside"):
        model.frame(T)


def test_bouts_listed_and_jumpable(video):
    model = EthogramModel(video, BEHAVIOURS, {"alice": _labels()}, editing="alice")
    assert model.bouts() == [Bout("walk", 5, 12), Bout("groom", 20, 30)]
    assert model.jump_to(model.bouts()[1]) == 20
    rasters = model.rasters()
    assert list(rasters) == ["labels: alice"] and rasters["labels: alice"].shape == (3, T)


def test_toggle_stretch_delete_and_undo(video):
    model = EthogramModel(video, BEHAVIOURS, {"alice": _labels()}, editing="alice")
    before = model.labels["alice"].copy()
    model.seek(33)
    assert model.toggle("walk") is None                              # opens a bout at 33
    model.seek(36)
    assert model.toggle("walk") == Bout("walk", 33, 37)
    assert Bout("walk", 33, 37) in model.bouts()
    assert (model.labels["alice"][33:37, 0] == 0).all()              # background follows
    model.stretch("walk", 6, 2, 15)
    assert Bout("walk", 2, 15) in model.bouts() and Bout("walk", 5, 12) not in model.bouts()
    model.delete("groom", 25)
    assert all(b.behaviour != "groom" for b in model.bouts())
    assert (model.labels["alice"][20:30, 0] == 1).all()
    for _ in range(4):
        assert model.undo()
    assert not model.undo()
    np.testing.assert_array_equal(model.labels["alice"], before)
    with pytest.raises(EthogramError, match="no 'groom' bout at frame 3"):
        model.delete("groom", 3)
    with pytest.raises(EthogramError, match="unknown behaviour"):
        model.toggle("fly")


def test_new_annotator_starts_unlabelled(video):
    model = EthogramModel(video, BEHAVIOURS, {"alice": _labels()}, editing="bob")
    assert (model.labels["bob"] == -1).all()
    model.seek(4)
    model.toggle("groom")
    model.seek(6)
    model.toggle("groom")
    bob = model.labels["bob"]
    assert (bob[4:7] == [0, 0, 1]).all() and (bob[:4] == -1).all() and (bob[7:] == -1).all()


def test_save_is_atomic_with_a_backup_and_reopens(video, tmp_path):
    path = tmp_path / "clip_labels.csv"
    write_deg_labels(path, _labels(), BEHAVIOURS)
    original = path.read_bytes()
    model = EthogramModel.open_labels(video, path, editing="alice")
    model.seek(35)
    model.toggle("groom")
    model.seek(38)
    model.toggle("groom")
    assert model.dirty
    model.save()
    assert model.last_backup.read_bytes() == original              # the annotator's file, kept
    assert not model.dirty and not list(tmp_path.glob(".tmp-*"))
    model.delete("walk", 5)
    model.save()                                                     # one backup per session
    assert len(list(tmp_path.glob("clip_labels.backup-*.csv"))) == 1
    reopened = EthogramModel.open_labels(video, path, editing="alice")
    np.testing.assert_array_equal(reopened.labels["alice"], model.labels["alice"])
    assert Bout("groom", 35, 39) in reopened.bouts()
    assert read_deg_labels(path)[1] == BEHAVIOURS


def test_wrong_lengths_are_refused(video, tmp_path):
    with pytest.raises(EthogramError, match="39 frames, the video .*clip.mp4 has 40"):
        EthogramModel(video, BEHAVIOURS, {"alice": _labels()[:-1]})
    with pytest.raises(EthogramError, match="expected \\(T, 3\\)"):
        EthogramModel(video, BEHAVIOURS, probabilities=np.zeros((T, 2)))


def test_open_prediction_output(video, tmp_path):
    probs = np.random.default_rng(0).random((T, 3)).astype(np.float32)
    np.savez(tmp_path / "clip_probabilities.npz", probs=probs, thresholds=np.full(3, 0.5, np.float32),
             min_bout=np.ones(3), behaviours=np.array(BEHAVIOURS), video="clip.mp4", run="r")
    model = EthogramModel.open_prediction(video, tmp_path / "clip_probabilities.npz", tmp_path / "me.csv")
    assert model.behaviours == BEHAVIOURS and (model.labels["me"] == -1).all()
    np.testing.assert_array_equal(model.predictions, (probs > 0.5).astype(np.int8))
    assert list(model.rasters()) == ["labels: me", "predictions", "probabilities"]


def test_open_run_reviews_predictions_against_labels(isolated):
    """A real tiny run folder: the tiny pipeline on synthetic_tiny (same run the pipeline tests make)."""
    import json

    from deg.data import synthetic

    ds = synthetic.generate("synthetic_tiny", progress=False)
    run_dir = isolated / "results" / "tiny" / "synthetic_tiny" / "DEG_f" / "split0"
    (run_dir / "predictions").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"dataset": "synthetic_tiny"}))
    video = ds.videos[0]
    truth = ds.labels(video, "truth")
    probs = np.clip(truth + 0.2, 0, 1).astype(np.float32)
    np.savez(run_dir / "predictions" / f"{video}.npz", probs=probs, preds=(probs > 0.5).astype(np.uint8),
             fe_probs=probs, fe_preds=(probs > 0.5).astype(np.uint8))
    model = EthogramModel.open_run(run_dir, video)
    assert set(model.labels) == {"truth", "human2", "human3"} and model.editing == "truth"
    assert model.label_path == ds.label_path(video, "truth")
    np.testing.assert_array_equal(model.predictions, truth)
    with pytest.raises(EthogramError, match="not in dataset"):
        EthogramModel.open_run(run_dir, "nope")
