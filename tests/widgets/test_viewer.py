"""EthogramWidget's Python side: the commands its keys send, the rasters it draws (no browser)."""
from __future__ import annotations

import numpy as np

from deg.data.labels import write_deg_labels
from deg.widgets.viewer import COL_W, ROW_H, WINDOW, EthogramWidget

from .test_model import BEHAVIOURS, _labels, video  # noqa: F401  (the module's real video fixture)


def test_commands_edit_the_model_and_report(video, tmp_path):
    others = tmp_path / "alice.csv"
    write_deg_labels(others, _labels(), BEHAVIOURS)
    w = EthogramWidget.for_labels(video, tmp_path / "me.csv", editing="me", others={"alice": others})
    assert w.key_map == {"1": "walk", "2": "groom"} and w.frame_png and w.raster_png
    w.cursor = 3
    w.command("toggle", behaviour="walk")
    assert "from frame 3" in w.status
    w.cursor = 8
    w.command("toggle", behaviour="walk")
    assert w.bouts == [{"behaviour": "walk", "start": 3, "stop": 9}]
    w.command("select", index=0)
    assert w.cursor == 3 and w.selected == 0
    w.cursor = 1
    w.command("stretch", side="start")
    w.cursor = 12
    w.command("stretch", side="stop")
    assert w.bouts == [{"behaviour": "walk", "start": 1, "stop": 13}] and w.status == "walk now 1-12"
    w.command("delete")
    assert w.bouts == [] and w.status.startswith("deleted walk 1-12")
    w.command("undo")
    assert w.bouts == [{"behaviour": "walk", "start": 1, "stop": 13}]
    w.command("save")
    assert w.status.startswith("saved") and (tmp_path / "me.csv").exists()
    w.selected = -1
    w.cursor = 30
    w.command("delete")                                       # nothing selected, nothing under the cursor
    assert w.status == "error: no bout selected or under the cursor"
    w.command("fly")
    assert w.status.startswith("error: unknown command")


def test_raster_window_follows_the_cursor(video, tmp_path):
    probs = np.random.default_rng(1).random((40, 3)).astype(np.float32)
    npz = tmp_path / "clip_probabilities.npz"
    np.savez(npz, probs=probs, thresholds=np.full(3, 0.5, np.float32), min_bout=np.ones(3),
             behaviours=np.array(BEHAVIOURS), video="clip.mp4", run="r")
    w = EthogramWidget.for_prediction(video, npz, tmp_path / "me.csv")
    image = w.raster_image()
    rows = 3                                                  # me, predictions, probabilities
    assert image.shape == (rows * 2 * ROW_H + (rows - 1) * 2, WINDOW * COL_W, 3)
    w.cursor = 20
    image = w.raster_image()
    red = np.where((image[0] == (220, 30, 30)).all(1))[0]
    assert list(red) == [20 * COL_W, 20 * COL_W + 1]          # the cursor line at frame 20
    assert w.raster_rows[0].startswith("frames 0-39")


def test_an_edit_uses_the_frame_on_screen_not_a_late_cursor_sync(video, tmp_path):
    """A key's edit carries the frame the browser shows (``at``): the cursor's own sync may arrive later."""
    others = tmp_path / "alice.csv"
    write_deg_labels(others, _labels(), BEHAVIOURS)
    w = EthogramWidget.for_labels(video, tmp_path / "me.csv", editing="me", others={"alice": others})
    w.cursor = 2                                              # the kernel has seen frames up to 2 so far
    w.command("toggle", behaviour="walk", at=5)               # the user pressed the key on frame 5
    assert w.cursor == 5 and "from frame 5" in w.status
    w.command("toggle", behaviour="walk", at=9)
    assert w.bouts == [{"behaviour": "walk", "start": 5, "stop": 10}]
