"""``python -m deg.data.labels convert``: every supported format -> DeepEthogram label CSVs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deg.data import convert as C
from deg.data.behaviordepot import read_behaviordepot
from deg.data.boris import observation_labels, read_boris
from deg.data.labels import LabelFormatError, LabelWarning, read_caltech, read_deg_labels, write_deg_labels

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("relative, fmt", [
    ("ethome/boris/e3v813a-20210610T122332-122642_reencode.csv", "boris_export"),
    ("ethome/boris/test-multi-behaviors.boris", "boris_project"),
    ("behaviordepot/demo1/hB_demo1_manual_annotations.mat.mat", "behaviordepot"),
    ("behaviordepot/demo2/hB_demo2_manual_annotations.mat", "behaviordepot"),
    ("rat_social/annotations/1_annot.txt", "caltech"),
    ("sturman/EPM/AllEPMLables.csv", "sturman"),
])
def test_detects_every_format(shared_data, relative, fmt):
    assert C.detect_format(shared_data / relative) == fmt


def test_boris_export_via_command_line(shared_data, tmp_path):
    """The real command, as a user types it; the CSV equals the reader's matrix."""
    src = shared_data / "ethome/boris/e3v813a-20210610T122332-122642_reencode.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "deg.data.labels", "convert", str(src), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(boris_export): wrote 1 label file(s)" in done.stdout
    matrix, names = read_deg_labels(tmp_path / "out" / "e3v813a-20210610T122332-122642_reencode.csv")
    (obs,) = read_boris(src)
    expected, expected_names = observation_labels(obs)["adult"]
    assert names == expected_names == ["background", "interact"]
    np.testing.assert_array_equal(matrix, expected)


def test_bad_input_exits_with_the_file_named(tmp_path, capsys):
    junk = tmp_path / "junk.txt"
    junk.write_text("nothing to see\n")
    with pytest.raises(SystemExit) as info:
        C.main([str(junk), str(tmp_path / "out")])
    assert info.value.code == 2 and "junk.txt: unknown label format" in capsys.readouterr().err


def test_several_subjects_one_file_each(tmp_path):
    src = tmp_path / "two.csv"
    src.write_text("Time,Media file path,Total length,FPS,Subject,Behavior,Status\n"
                   "0.1,/x/vid.avi,1.0,10,A,walk,START\n0.3,/x/vid.avi,1.0,10,A,walk,STOP\n"
                   "0.5,/x/vid.avi,1.0,10,B,walk,START\n0.9,/x/vid.avi,1.0,10,B,walk,STOP\n")
    written = C.convert(src, tmp_path / "out")
    assert sorted(p.name for p in written) == ["vid_A.csv", "vid_B.csv"]
    b, _ = read_deg_labels(tmp_path / "out" / "vid_B.csv")
    assert np.flatnonzero(b[:, 1]).tolist() == [5, 6, 7, 8]


def test_fps_and_n_frames_options(shared_data, tmp_path):
    src = shared_data / "ethome/boris/e3v813a-20210610T122332-122642_reencode.csv"
    with pytest.warns(LabelWarning, match="past the 1000 frames"):
        (path,) = C.convert(src, tmp_path / "a", fps=15.0, n_frames=1000)
    matrix, _ = read_deg_labels(path)
    assert matrix.shape == (1000, 2) and matrix[int(30 * 15), 1] == 1 and matrix[int(29 * 15), 1] == 0
    (path,) = C.convert(shared_data / "behaviordepot/demo2/hB_demo2_manual_annotations.mat", tmp_path / "b",
                        n_frames=4000)
    matrix, names = read_deg_labels(path)
    assert names == ["background", "Freezing"] and matrix.shape == (4000, 2)
    assert (matrix[3600:] == -1).all()                                      # padded as unlabelled
    direct = read_behaviordepot(shared_data / "behaviordepot/demo2/hB_demo2_manual_annotations.mat").labels
    np.testing.assert_array_equal(matrix[:3600], direct)


def test_caltech_streams_merged(shared_data, tmp_path):
    src = shared_data / "rat_social/annotations/1_annot.txt"
    (path,) = C.convert(src, tmp_path)
    matrix, names = read_deg_labels(path)
    streams = read_caltech(src)
    assert path.name == "1.csv" and names == streams["S1"][1]
    for stream in ("S1", "S2"):                                 # every stream's behaviour is kept
        m = streams[stream][0]
        assert ((m[:, 1:] == 1) <= (matrix[:, 1:] == 1)).all()
    assert ((matrix[:, 1:] == 1).sum(axis=1) >= 2).any()        # an S2 act during an S1 behaviour
    assert (matrix != -1).all()                                 # both streams cover every frame here


def test_sturman_annotator_folders_and_deg_round_trip(shared_data, tmp_path):
    written = C.convert(shared_data / "sturman/EPM/AllEPMLables.csv", tmp_path / "s", n_frames=1500)
    assert {p.parent.name for p in written} == {"Jin", "Oliver", "Sian"} and len(written) == 15
    assert read_deg_labels(written[0])[0].shape[0] == 1500                   # the first 60 s at 25 fps
    again = C.convert(written[0], tmp_path / "d", format="deg")
    np.testing.assert_array_equal(read_deg_labels(again[0])[0], read_deg_labels(written[0])[0])


def test_deg_csv_named_like_deepethogram(tmp_path):
    src = tmp_path / "mouse1_labels.csv"
    write_deg_labels(src, np.array([[1, 0], [0, 1], [-1, -1]]), ["background", "groom"])
    with pytest.warns(LabelWarning, match="3 label rows cut to 2 frames"):
        (path,) = C.convert(src, tmp_path / "out", n_frames=2)
    assert path.name == "mouse1.csv" and read_deg_labels(path)[0].shape == (2, 2)
    bad = tmp_path / "nobg.csv"
    bad.write_text(",groom\n0,1\n")
    with pytest.raises(LabelFormatError, match="nobg.csv: no 'background' column"):
        C.convert(bad, tmp_path / "bad", format="deg")


def test_import_labels_makes_a_dataset_with_videos_and_pose(shared_data, tmp_path):
    """BORIS labels + a video + a DeepLabCut file -> a dataset in the standard layout."""
    from deg.data.datasets import open_dataset
    from deg.data.pose import iter_pose_labels
    from deg.data.video import write_video

    boris_file = shared_data / "ethome/boris/e3v813a-20210610T122332-122642_reencode.csv"
    video = "e3v813a-20210610T122332-122642_reencode"
    frames = np.full((40, 16, 16, 3), 128, dtype=np.uint8)
    write_video(tmp_path / "videos" / f"{video}.mp4", frames, fps=30.0)
    (tmp_path / "pose").mkdir()
    dlc = next((shared_data / "ethome").glob("*DLC*.csv"))
    (tmp_path / "pose" / f"{video}DLC.csv").write_bytes(dlc.read_bytes())
    multi = shared_data / "ethome/boris/e3v813a-20210610T120637-121213_reencode_multiple_behaviors.csv"
    with pytest.warns(LabelWarning) as caught:
        ds = C.import_labels([boris_file, multi], tmp_path / "data", "my_lab", videos_dir=tmp_path / "videos",
                             pose_dir=tmp_path / "pose")
    messages = " ".join(str(w.message) for w in caught)
    assert "5700 label rows cut to 40 frames" in messages and "no e3v813a-20210610T120637-121213_reencode.mp4" in messages
    ds = open_dataset(tmp_path / "data" / "my_lab")
    assert ds.behaviours == ["background", "interact", "mount"] and ds.fps == 30.0 and ds.annotators == ["labeler"]
    assert ds.video_path(video) is not None and ds.labels(video).shape == (40, 3)
    assert ds.labels(video)[:, 2].sum() == 0                               # never mentions mount: absent
    (item,) = list(iter_pose_labels(ds))
    assert item.n_frames == 40 and item.trimmed == {"pose": 5700 - 40} and item.pose.animals == ["adult", "juvenile"]
    with pytest.raises(LabelFormatError, match="several subjects"):
        two = tmp_path / "two.csv"
        two.write_text("Time,FPS,Subject,Behavior,Status\n0.1,10,A,walk,START\n0.3,10,A,walk,STOP\n"
                       "0.5,10,B,walk,START\n0.9,10,B,walk,STOP\n")
        C.import_labels([two], tmp_path / "data", "two")
    assert C.import_labels([two], tmp_path / "data", "two", subject="B").fps == 10.0
