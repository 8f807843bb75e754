"""deg.data.prepare: real label files through a mirror served on 127.0.0.1 -> the standard layout."""
from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest

from deg.data import download, prepare, registry
from deg.data.datasets import open_dataset
from deg.data.labels import read_sturman, select_behaviours


@pytest.fixture
def http_mirror(tmp_path, shared_data):
    root = download.build_local_mirror(tmp_path / "mirror", ["sturman_oft", "sturman_epm"], shared=shared_data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("dataset_id, n_videos, annotators", [
    ("sturman_oft", 20, ["FA", "Jin", "OS"]),
    ("sturman_epm", 5, ["Jin", "Oliver", "Sian"]),
])
@pytest.mark.filterwarnings("ignore:.*without a behaviour type")
def test_sturman_labels_via_http_mirror(isolated, http_mirror, monkeypatch, shared_data, dataset_id, n_videos, annotators):
    monkeypatch.setenv("DEG_DATA_MIRROR", http_mirror)
    ds = prepare.prepare(dataset_id, progress=False)
    assert prepare.is_prepared(dataset_id)
    ds = open_dataset(dataset_id)
    assert len(ds.videos) == n_videos and ds.annotators == annotators and ds.train_annotator == "Jin"
    assert not ds.has_videos and ds.extra["label_only"]
    assert (isolated / "data" / dataset_id / "raw").is_dir()
    # The per-frame CSVs written to disk equal a direct parse of the shared file.
    name = registry.get(dataset_id).file_names("labels")[0]
    direct = read_sturman(next(shared_data.rglob(name)))
    for video in ds.videos[:3]:
        for annotator in annotators:
            expected, names = select_behaviours(direct.matrices[(video, annotator)], direct.behaviours, ds.behaviours[1:])
            assert names == ds.behaviours
            np.testing.assert_array_equal(ds.labels(video, annotator), expected)
    # A second call reuses the prepared folder.
    assert prepare.prepare(dataset_id, progress=False).root == ds.root


def test_offline_without_mirror_names_the_variable_and_the_manual_route(isolated):
    with pytest.raises(download.UnavailableError, match="DEG_DATA_MIRROR.*make data DATASET=mouse_ventral1 FROM="):
        prepare.prepare("mouse_ventral1", progress=False)
    assert not (isolated / "data" / "mouse_ventral1" / "COMPLETE").exists()


# --------------------------------------------------------------------------------------
# Sturman: the recording window of each record; videos into videos/ when they come
# --------------------------------------------------------------------------------------
import dataclasses  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

from deg import paths  # noqa: E402
from deg.data import video as video_io  # noqa: E402
from deg.data.registry import RemoteFile  # noqa: E402

from tests.data.test_import import make_project  # noqa: E402

FST_INTERVALS = """file;Experimenter;from;to;type;ID
FST_1_Jin.csv;Jin;0;0;Start/End;FST_1
FST_1_Jin.csv;Jin;100.0;120.0;Floating;FST_1
FST_1_Jin.csv;Jin;350.0;400.0;Floating;FST_1
FST_1_Oliver.csv;Oliver;101.0;121.0;Floating;FST_1
FST_2_Jin.csv;Jin;10.0;30.0;Floating;FST_2
FST_2_Oliver.csv;Oliver;12.0;31.0;Floating;FST_2
"""


def _tiny_video(path: Path, n_frames: int) -> Path:
    frames = np.random.default_rng(n_frames).integers(0, 255, (n_frames, 16, 16, 3), dtype=np.uint8)
    return video_io.write_video(path, frames, fps=25.0, preset="ultrafast")


def _serve(root) -> str:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_sturman_fst_gets_its_own_360_s_window(isolated, tmp_path):
    (tmp_path / "origin").mkdir()
    (tmp_path / "origin" / "AllFSTLables.csv").write_text(FST_INTERVALS)
    url = _serve(tmp_path / "origin")
    fst = registry.get("sturman_fst")
    assert fst.recording_s == 360.0 and registry.get("sturman_oft").recording_s == 600.0
    labels = dataclasses.replace(fst.file("AllFSTLables.csv"), url=f"{url}/AllFSTLables.csv", sha256=None, size=None)
    record = dataclasses.replace(fst, files=(labels, fst.file("sturman_fst.zip")))
    with pytest.warns(UserWarning, match="could not fetch the placeholder.*sturman_fst.zip"):
        ds = prepare.prepare_sturman(record, progress=False)
    assert ds.videos == ["FST_1", "FST_2"] and ds.annotators == ["Jin", "Oliver"]
    assert ds.extra["window_frames"] == 9000 and ds.extra["label_only"]
    jin = ds.labels("FST_1", "Jin")
    assert jin.shape == (9000, 2)                                  # 360 s x 25 fps, not 600 s
    assert jin[2500:3001, 1].all() and jin[8750:, 1].all()          # 100-120 s; 350 s to the window's end
    assert jin[3002:8749, 1].sum() == 0


def test_sturman_videos_from_a_mirror_and_by_hand(isolated, tmp_path, shared_data, monkeypatch):
    mirror = download.build_local_mirror(tmp_path / "mirror", ["sturman_epm"], shared=shared_data)
    videos = tmp_path / "zenodo"
    videos.mkdir()
    _tiny_video(videos / "EPM_11.mp4", 30)
    _tiny_video(videos / "EPM_13.mp4", 40)
    with zipfile.ZipFile(mirror / "sturman_epm" / "sturman_epm.zip", "w") as zf:
        for p in videos.iterdir():
            zf.write(p, f"videos/{p.name}")
    monkeypatch.setenv("DEG_DATA_MIRROR", _serve(mirror))
    ds = prepare.prepare("sturman_epm", progress=False)
    assert sorted(p.name for p in (ds.root / "videos").iterdir()) == ["EPM_11.mp4", "EPM_13.mp4"]
    assert ds.extra["video_frames"] == {"EPM_11": 30, "EPM_13": 40} and not ds.extra["label_only"]
    assert ds.labels("EPM_11", "Jin").shape[0] == 30 and ds.labels("EPM_16", "Jin").shape[0] == 15000
    assert sorted(ds.extra["videos_missing"]) == sorted(set(ds.videos) - {"EPM_11", "EPM_13"})
    # By hand (make data DATASET=sturman_epm FROM=folder): rebuilt and swapped in; raw/ downloads kept.
    (videos / "EPM_13.mp4").unlink()
    ds = prepare.prepare("sturman_epm", progress=False, source=videos)
    assert sorted(p.name for p in (ds.root / "videos").iterdir()) == ["EPM_11.mp4"]
    assert (ds.root / "raw" / "AllEPMLables.csv").is_file()


def test_sturman_videos_match_by_name_or_by_deeplabcut_file(tmp_path):
    _tiny_video(tmp_path / "OFT_11.mp4", 4)
    _tiny_video(tmp_path / "sub" / "12_01_A_190507144429.mp4", 4)
    (tmp_path / "OFT_12.avi").write_bytes(b"")
    dlc = {"OFT_44": "12_01_A_190507144429DeepCut_resnet50_Blockcourse1May9shuffle1_1030000.csv"}
    found = prepare.match_sturman_videos(["OFT_11", "OFT_44", "OFT_13"], dlc, tmp_path)
    assert found == {"OFT_11": tmp_path / "OFT_11.mp4", "OFT_44": tmp_path / "sub" / "12_01_A_190507144429.mp4"}
    with pytest.raises(ValueError, match=r"OFT_12.avi: only .mp4 videos are imported"):
        prepare.match_sturman_videos(["OFT_12"], {}, tmp_path)


# --------------------------------------------------------------------------------------
# The authors' datasets: FROM a project folder or archive, or an archive from a mirror
# --------------------------------------------------------------------------------------
def _zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, Path(folder.name) / p.relative_to(folder))
    return archive


def test_authors_dataset_by_hand_and_from_a_mirror(isolated, tmp_path, monkeypatch, capsys):
    make_project(tmp_path / "Mouse-Ventral1", {"v1": 12, "v2": 10, "v3": 8})
    record = registry.get("mouse_ventral1")
    ds = prepare.prepare("mouse_ventral1", progress=False, source=tmp_path / "Mouse-Ventral1")
    assert ds.videos == ["v1", "v2", "v3"] and ds.fps == record.fps and ds.image_size == record.resize
    assert ds.flips == {"horizontal": True, "vertical": True} and ds.extra["n_splits"] == record.n_splits
    assert prepare.is_prepared("mouse_ventral1")
    # An archive: verified, unpacked aside, imported; nothing unpacked is left behind.
    archive = _zip_folder(tmp_path / "Mouse-Ventral1", tmp_path / "mv1.zip")
    assert prepare.main(["mouse_ventral1", "--from", str(archive)]) == 0
    assert sorted(p.name for p in paths.data_dir().iterdir() if p.name.startswith(".tmp")) == []
    # A login page saved as the archive: refused with the reason, the dataset left as it was.
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"<!DOCTYPE html><html><head><title>Dropbox - Sign in</title></head></html>")
    assert prepare.main(["mouse_ventral1", "--from", str(bad)]) == 1
    assert "got an HTML page" in capsys.readouterr().err
    assert prepare.is_prepared("mouse_ventral1")
    # Over HTTP through DEG_DATA_MIRROR: <mirror>/mouse_ventral1/mouse_ventral1.zip.
    (tmp_path / "mirror" / "mouse_ventral1").mkdir(parents=True)
    archive.rename(tmp_path / "mirror" / "mouse_ventral1" / "mouse_ventral1.zip")
    monkeypatch.setenv("DEG_DATA_MIRROR", _serve(tmp_path / "mirror"))
    ds = prepare.prepare("mouse_ventral1", progress=False, force=True)
    assert ds.videos == ["v1", "v2", "v3"] and ds.extra["obtained"] == "archive fetched from a mirror"


# --------------------------------------------------------------------------------------
# One prepare at a time per dataset (two real processes)
# --------------------------------------------------------------------------------------
def test_concurrent_prepare_waits_or_says_who_holds_the_lock(isolated, tmp_path):
    """This process holds the lock (as a running prepare does); a second real process waits for it."""
    make_project(tmp_path / "proj", {"v1": 12, "v2": 10})
    env = {**os.environ, "PYTHONPATH": str(paths.REPO)}
    command = [sys.executable, "-m", "deg.data.prepare", "mouse_ventral1", "--from", str(tmp_path / "proj")]
    with prepare.prepare_lock("mouse_ventral1"):
        waiter = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with pytest.raises(prepare.PrepareBusyError, match=f"another process \\(pid {os.getpid()}\\) holds the lock"):
            with prepare.prepare_lock("mouse_ventral1", timeout=0):
                pass
        line = waiter.stderr.readline()                      # blocks until the waiter reports
        assert "waiting for another process" in line and f"pid {os.getpid()}" in line
        assert waiter.poll() is None and not prepare.is_prepared("mouse_ventral1")
    out, err = waiter.communicate(timeout=120)                 # released: it goes ahead
    assert waiter.returncode == 0, err
    assert "ready in" in out and prepare.is_prepared("mouse_ventral1")


# --------------------------------------------------------------------------------------
# The other registry records: a video without labels (dlc_openfield)
# --------------------------------------------------------------------------------------
def test_dlc_openfield_ends_in_the_standard_layout(isolated, tmp_path, shared_data, monkeypatch):
    """A video without labels: videos/ only, no annotators (the pose datasets: tests/data/test_prepare_pose.py)."""
    mirror = tmp_path / "mirror"
    download.build_local_mirror(mirror, ["dlc_openfield"], shared=shared_data, link=True)
    monkeypatch.setenv("DEG_DATA_MIRROR", str(mirror))
    video = prepare.prepare("dlc_openfield", progress=False)
    assert video.videos == ["m3v1mp4"] and video.annotators == [] and video.fps == 30.0
    assert video_io.video_info(video.video_path("m3v1mp4")).n_frames == 2330
