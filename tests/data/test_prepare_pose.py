"""The pose datasets, prepared from a mirror of ../shared/data served over HTTP on 127.0.0.1."""
from __future__ import annotations

import functools
import gzip
import socket
import http.server
import threading
import warnings

import numpy as np
import pytest

from deg.data import download, prepare, prepare_pose, registry
from deg.data.behaviordepot import read_behaviordepot
from deg.data.boris import observation_labels, read_boris_export
from deg.data.convert import combine_streams
from deg.data.datasets import open_dataset
from deg.data.labels import read_caltech, read_sturman, select_behaviours
from deg.data.pose import iter_pose_labels, read_pose

RAT_SESSIONS = (1, 14)             # session14's annotation runs 59 frames past its pose file


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    from deg import paths

    shared = paths.shared_data_dir()
    if not shared.is_dir():
        pytest.skip(f"real data folder {shared} is absent (it lies beside the checkout in CI only)")
    root = download.build_local_mirror(tmp_path_factory.mktemp("mirror"),
                                       ["behaviordepot_freezing", "ethome_social", "sturman_oft_pose"],
                                       shared=shared, link=True)
    rat = registry.get("rat_social")
    for remote in rat.files:            # only the sessions used here: 40 gunzips cost seconds
        number = int(remote.name.split("_")[0] if remote.role == "labels" else remote.name.split("DLC")[0])
        if number in RAT_SESSIONS:
            target = root / "rat_social" / remote.name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = shared / remote.shared
            target.write_bytes(gzip.decompress(source.read_bytes()) if remote.shared.endswith(".gz")
                               else source.read_bytes())
    handler = functools.partial(_Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", shared, root
    server.shutdown()


@pytest.fixture
def served(isolated, mirror, monkeypatch):
    url, shared, root = mirror
    monkeypatch.setenv("DEG_DATA_MIRROR", url)
    return shared, root


def test_behaviordepot_freezing(served):
    shared, _ = served
    ds = prepare.prepare("behaviordepot_freezing", progress=False)
    assert prepare.is_prepared("behaviordepot_freezing")
    ds = open_dataset("behaviordepot_freezing")
    assert ds.videos == ["demo1", "demo2"] and ds.behaviours == ["background", "Freezing"] and not ds.has_videos
    assert ds.pose_info["points"] == prepare_pose.BEHAVIORDEPOT_POINTS
    for video, mat in (("demo1", "hB_demo1_manual_annotations.mat.mat"), ("demo2", "hB_demo2_manual_annotations.mat")):
        np.testing.assert_array_equal(ds.labels(video), read_behaviordepot(shared / "behaviordepot" / video / mat).labels)
    pose = ds.pose("demo2")
    assert pose.fps == 30.0 and ds.pose("demo1").fps == 50.0 and pose.xy.shape == (3600, 1, 8, 3)
    source = read_pose(shared / "behaviordepot/demo2/demo2_tracking.csv")
    assert "LED" in source.points
    np.testing.assert_allclose(pose.xy[:, 0, 0], source.select(points=["nose"]).xy[:, 0, 0], rtol=1e-6)


def test_ethome_social(served):
    shared, _ = served
    ds = prepare.prepare("ethome_social", progress=False)
    (item,) = list(iter_pose_labels(ds))
    assert item.video == "e3v813a-20210610T122332-122642" and item.n_frames == 5700 and item.trimmed == {}
    assert item.pose.animals == ["adult", "juvenile"] and len(item.pose.points) == 7
    (obs,) = read_boris_export(shared / "ethome/boris/e3v813a-20210610T122332-122642_reencode.csv")
    np.testing.assert_array_equal(item.labels["boris"], observation_labels(obs)["adult"][0])
    original = next((shared / "ethome").glob("*DLC*.csv"))
    assert ds.pose_path(item.video).read_bytes() == original.read_bytes()     # copied unchanged


def test_sturman_oft_pose(served):
    shared, _ = served
    ds = prepare.prepare("sturman_oft_pose", progress=False)
    assert ds.videos == ["OFT_38", "OFT_44"] and ds.annotators == ["FA", "Jin", "OS"]
    assert ds.behaviours == ["background", "Supported", "Unsupported"] and "Grooming" in ds.extra["dropped_behaviours"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = read_sturman(shared / "sturman/OFT/AllLabDataOFT_final.csv")
    for item in iter_pose_labels(ds):
        assert item.n_frames == 1998 and item.trimmed == {}
        for annotator, labels in item.labels.items():
            expected, _ = select_behaviours(parsed.matrices[(item.video, annotator)], parsed.behaviours, ds.behaviours[1:])
            np.testing.assert_array_equal(labels, expected[:1998])
    assert ds.extra["trimmed"]["label frames cut to the pose excerpt"]["Jin/OFT_44"] == 15000 - 1998
    height, width = ds.pose_info["arena_px"]
    assert 200 < height < 480 and 200 < width < 640 and "tl" in ds.pose_info["arena_points"]


def test_rat_social_subset_and_reuse(served):
    shared, _ = served
    videos = [f"session{n:02d}" for n in RAT_SESSIONS]
    ds = prepare_pose.prepare("rat_social", progress=False, videos=videos)
    assert ds.videos == videos and ds.extra["subset"] and ds.fps == 30.0
    trimmed = ds.extra["trimmed"]["labels past the pose file's end, frames cut"]
    assert trimmed == {"session14": 59}
    unannotated = ds.extra["trimmed"]["pose frames after the last annotation, unlabelled (-1)"]
    for video in videos:
        assert int((ds.labels(video)[:, 0] == -1).sum()) == unannotated.get(video, 0)
    for n, video in zip(RAT_SESSIONS, videos):
        pose = ds.pose(video)
        assert pose.animals == ["individual1", "individual2"] and pose.points == ["top", "body", "tail", "tail-m", "tail-e"]
        merged, names = combine_streams(read_caltech(shared / f"rat_social/annotations/{n}_annot.txt"))
        assert names == ds.behaviours
        np.testing.assert_array_equal(ds.labels(video), merged[: pose.n_frames])
    before = len(_Handler.requests)
    assert prepare_pose.prepare("rat_social", progress=False, videos=videos).videos == videos   # reused
    assert len(_Handler.requests) == before


def test_tampered_mirror_file_is_refused(served, tmp_path, monkeypatch):
    _, root = served
    copy = tmp_path / "bad_mirror" / "ethome_social"
    copy.mkdir(parents=True)
    for path in (root / "ethome_social").iterdir():
        copy.joinpath(path.name).write_bytes(path.read_bytes())
    label = copy / "e3v813a-20210610T122332-122642_reencode.csv"
    label.write_bytes(label.read_bytes().replace(b"29.850", b"28.850"))
    monkeypatch.setenv("DEG_DATA_MIRROR", str(tmp_path / "bad_mirror"))
    with pytest.raises(download.ChecksumError, match="e3v813a-20210610T122332-122642_reencode.csv.*sha256"):
        prepare.prepare("ethome_social", progress=False)
    assert not prepare.is_prepared("ethome_social")


def test_prepare_or_skip(served, tmp_path, monkeypatch):
    ds, reason = prepare_pose.prepare_or_skip("ethome_social")          # reachable mirror: prepared
    assert reason == "" and ds.videos == ["e3v813a-20210610T122332-122642"]
    assert prepare_pose.prepare_or_skip("ethome_social")[0].root == ds.root   # on disk: reused
    monkeypatch.setenv("DEG_DATA_MIRROR", str(tmp_path / "empty"))
    ds, reason = prepare_pose.prepare_or_skip("behaviordepot_freezing")
    assert ds is None and "behaviordepot_freezing: skipped" in reason and "not in the mirror folder" in reason
    with socket.socket() as sock:                                        # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DEG_DATA_MIRROR", f"http://127.0.0.1:{port}")
    ds, reason = prepare_pose.prepare_or_skip("sturman_oft_pose", timeout=2.0)
    assert ds is None and "mirror not reachable" in reason
