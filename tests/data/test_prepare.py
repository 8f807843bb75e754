"""deg.data.prepare: real label files through a mirror served on 127.0.0.1 -> the standard layout."""
from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest

from deg.data import download, prepare
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
    name = prepare.STURMAN_LABEL_FILES[dataset_id]
    direct = read_sturman(next(shared_data.rglob(name)))
    for video in ds.videos[:3]:
        for annotator in annotators:
            expected, names = select_behaviours(direct.matrices[(video, annotator)], direct.behaviours, ds.behaviours[1:])
            assert names == ds.behaviours
            np.testing.assert_array_equal(ds.labels(video, annotator), expected)
    # A second call reuses the prepared folder.
    assert prepare.prepare(dataset_id, progress=False).root == ds.root


def test_offline_without_mirror_names_the_variable(isolated):
    with pytest.raises(download.DownloadError, match="DEG_DATA_MIRROR"):
        prepare.prepare("sturman_fst", progress=False)
