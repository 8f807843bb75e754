"""Readers at their boundary: encodings, values that must not pass, messages that say what is wrong.

Each case is a small file written to ``tmp_path`` (or a copy of a real file from ``../shared/data``)
and checks that the reader either refuses it with the file's name and the cause, or reads it
correctly and warns about what it did.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml

from deg import io
from deg.data.datasets import Dataset, DatasetError
from deg.data.keypoints import KeypointFormatError, KeypointWarning, read_dlc
from deg.data.labels import (LabelFormatError, LabelOverrunWarning, read_caltech, read_deg_labels,
                             read_deg_project, read_sturman, write_deg_labels)

STURMAN = "file;Experimenter;from;to;type;ID\n"
CALTECH_HEAD = "Caltech Behavior Annotator - Annotation File\n\nConfiguration file:\nbase\tz\nwalk\tw\n\n"


def _refused(reader, path, *match, error=ValueError):
    with pytest.raises(error) as info:
        reader(path)
    message = str(info.value)
    assert str(path) in message, message
    for part in match:
        assert part in message, message
    return message


# ----------------------------------------------------------------------------- encodings (item 7)
def test_sturman_latin1_behaviour_is_read_with_a_warning_not_replaced(tmp_path):
    path = tmp_path / "intervals.csv"
    path.write_bytes((STURMAN + "OFT_1_FA.csv;Furkan;1;2;Sch\u00e4rfen;1\n").encode("cp1252"))
    with pytest.warns(io.TextEncodingWarning, match=str(path)):
        parsed = read_sturman(path, n_frames=100)
    assert parsed.behaviours == ["background", "Sch\u00e4rfen"]      # not "Sch\ufffdrfen"


def test_sturman_and_caltech_refuse_undecodable_bytes_with_the_offset(tmp_path):
    raw = (STURMAN + "OFT_1_FA.csv;Furkan;1;2;Sup\x81ported;1\n").encode("latin-1")
    path = tmp_path / "intervals.csv"
    path.write_bytes(raw)
    offset = raw.index(b"\x81")
    _refused(read_sturman, path, f"byte offset {offset}", "0x81", error=LabelFormatError)
    cal = tmp_path / "c_annot.txt"
    body = (CALTECH_HEAD + "S1:\tstart\tend\ttype\n---\n \t1\t5\tbase\n \t6\t9\twalk\x00\n").encode()
    cal.write_bytes(body)
    offset = body.index(b"\x00")
    _refused(read_caltech, cal, f"byte offset {offset}", error=LabelFormatError)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_byte_order_marks_are_honoured(tmp_path, encoding):
    text = CALTECH_HEAD + "S1:\tstart\tend\ttype\n---\n \t1\t5\tbase\n \t6\t9\twalk\n"
    plain, marked = tmp_path / "a_annot.txt", tmp_path / "b_annot.txt"
    plain.write_text(text)
    marked.write_bytes(text.encode(encoding))
    (m1, n1), (m2, n2) = read_caltech(plain)["S1"], read_caltech(marked)["S1"]
    assert n1 == n2 and np.array_equal(m1, m2)


def test_latin1_project_config_is_read(tmp_path):
    root = tmp_path / "proj"
    (root / "DATA").mkdir(parents=True)
    text = yaml.safe_dump({"project": {"name": "caf\u00e9", "class_names": ["background", "walk"]}},
                          allow_unicode=True)
    (root / "project_config.yaml").write_bytes(text.encode("latin-1"))
    with pytest.warns(io.TextEncodingWarning, match="project_config.yaml"):
        assert read_deg_project(root).name == "caf\u00e9"
    (root / "project_config.yaml").write_bytes(b"project:\n  name: \x81\x8d\n")
    _refused(read_deg_project, root, "project_config.yaml", "byte offset 17", error=LabelFormatError)


# ----------------------------------------------------------------------------- values (item 8)
def test_all_unlabelled_label_file_is_refused(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text(",background,walk\n0,-1,-1\n1,-1,-1\n")
    _refused(read_deg_labels, path, "every one of its 2 frames is unlabelled", error=LabelFormatError)


def test_all_unlabelled_training_file_stops_a_run_before_training(isolated):
    from deg import pipeline
    from deg.data import synthetic

    ds = synthetic.generate("synthetic_tiny", progress=False)
    victim = ds.label_path(ds.videos[0])
    matrix = np.full_like(ds.labels(ds.videos[0]), -1)
    header = ",".join([""] + ds.behaviours)
    victim.write_text(header + "\n" + "".join(f"{i}," + ",".join(map(str, row)) + "\n" for i, row in enumerate(matrix)))
    with pytest.raises(LabelFormatError, match="unlabelled") as info:
        pipeline.run("synthetic_tiny", "DEG_f", 0, profile="tiny", progress=False)
    assert str(victim) in str(info.value)
    assert not (isolated / "results" / "tiny" / "synthetic_tiny" / "DEG_f" / "split0" / "flow").exists()


def test_sturman_negative_times_are_refused(tmp_path):
    path = tmp_path / "intervals.csv"
    path.write_text(STURMAN + "OFT_1_FA.csv;Furkan;-3;2;Supported;1\n")
    _refused(read_sturman, path, "line 2", "negative time", error=LabelFormatError)


def test_sturman_intervals_past_the_video_are_reported(tmp_path):
    path = tmp_path / "intervals.csv"
    path.write_text(STURMAN + "OFT_1_FA.csv;Furkan;1;2;Supported;1\nOFT_1_FA.csv;Furkan;3;5;Supported;1\n"
                    "OFT_1_FA.csv;Furkan;900;901;Supported;1\n")
    with pytest.warns(LabelOverrunWarning, match=r"2 interval\(s\) run past the 4 s window.*1 of them start after"):
        parsed = read_sturman(path, n_frames=100)
    matrix = parsed.matrices[("OFT_1", "FA")]
    assert matrix[75:, 1].all() and matrix[99, 1] == 1       # 3..5 s cut at frame 99


def _dlc(rows: list[str]) -> str:
    return ("scorer,s,s,s,s,s,s\nbodyparts,nose,nose,nose,tail,tail,tail\ncoords,x,y,likelihood,x,y,likelihood\n"
            + "".join(r + "\n" for r in rows))


def test_dlc_non_increasing_frames_are_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(_dlc(["0,1,1,0.9,2,2,0.9", "1,1,1,0.9,2,2,0.9", "1,1,1,0.9,2,2,0.9"]))
    _refused(read_dlc, path, "line 6", "repeats 1", error=KeypointFormatError)
    path.write_text(_dlc(["0,1,1,0.9,2,2,0.9", "2,1,1,0.9,2,2,0.9", "1,1,1,0.9,2,2,0.9"]))
    _refused(read_dlc, path, "line 6", "goes back to 1", error=KeypointFormatError)


def test_dlc_likelihood_outside_unit_interval_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(_dlc(["0,1,1,0.9,2,2,0.9", "1,1,1,0.9,2,2,17.5"]))
    _refused(read_dlc, path, "line 5", "likelihood 17.5 of single/tail", error=KeypointFormatError)


def test_dlc_empty_tracks_warn_and_all_empty_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(_dlc(["0,1,1,0.9,,,", "1,1,1,0.9,,,"]))
    with pytest.warns(KeypointWarning, match="single/tail"):
        kp = read_dlc(path)
    assert np.isnan(kp.xy[:, 0, 1]).all() and np.isfinite(kp.xy[:, 0, 0]).all()
    path.write_text(_dlc(["0,,,,,,", "1,,,,,,"]))
    _refused(read_dlc, path, "no body part was found", error=KeypointFormatError)


def test_cut_dlc_file_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(_dlc(["0,1,1,0.9,2,2,0.9", "1,1,1,0.9,2,2,0.9"])[:-3])     # "0.9\n" -> "0"
    _refused(read_dlc, path, "cut short", error=KeypointFormatError)


def test_shuffled_deg_label_rows_are_refused(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text(",background,walk\n0,1,0\n2,0,1\n1,1,0\n")
    _refused(read_deg_labels, path, "line 3", "frame index", error=LabelFormatError)


# ----------------------------------------------------------------------------- messages (item 11)
def test_dropped_behaviour_column_is_named_as_such(tmp_path):
    path = tmp_path / "v.csv"
    write_deg_labels(path, np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.int8), ["background", "walk", "rear"])
    lines = path.read_text().splitlines()
    path.write_text("\n".join(",".join(line.split(",")[:3]) for line in lines) + "\n")   # drop "rear"
    message = _refused(read_deg_labels, path, "a behaviour column seems to be missing", error=LabelFormatError)
    assert "disagrees" not in message


def test_dataset_label_file_missing_a_column_says_which(tmp_path):
    root = tmp_path / "ds"
    write_deg_labels(root / "labels" / "a" / "v.csv", np.array([[1, 0], [0, 1]], np.int8), ["background", "walk"])
    (root / "videos").mkdir()
    Dataset(id="ds", fps=25.0, behaviours=["background", "walk", "rear"], annotators=["a"], train_annotator="a",
            videos=["v"], root=root).save()
    ds = Dataset.load(root)
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['rear'\]"):
        ds.labels("v")


def test_multi_animal_dlc_without_individuals_row(shared_data, tmp_path):
    import gzip

    (source,) = (shared_data / "rat_social" / "dlc_csv").glob("12DLC_*.csv.gz")
    lines = gzip.decompress(source.read_bytes()).decode().splitlines(keepends=True)
    path = tmp_path / "12DLC_no_individuals.csv"
    path.write_text(lines[0] + "".join(lines[2:]))
    _refused(read_dlc, path, "'individuals' header row is missing", error=KeypointFormatError)


def test_second_annotator_of_wrong_length_is_named(tmp_path):
    from deg.evaluate import EvaluationError, evaluate_humans

    root = tmp_path / "ds"
    good = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.int8)
    write_deg_labels(root / "labels" / "a" / "v.csv", good, ["background", "walk"])
    write_deg_labels(root / "labels" / "b" / "v.csv", good[:3], ["background", "walk"])
    Dataset(id="ds", fps=25.0, behaviours=["background", "walk"], annotators=["a", "b"], train_annotator="a",
            videos=["v"], root=root).save()
    with pytest.raises(EvaluationError) as info:
        evaluate_humans(Dataset.load(root), tmp_path / "out", "tiny")
    message = str(info.value)
    assert str(root / "labels" / "b" / "v.csv") in message and "3 label rows" in message and "has 4" in message


def test_real_files_still_read_without_encoding_warnings(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)              # the known overrun / untyped rows
        warnings.simplefilter("error", io.TextEncodingWarning)     # but the files are plain ASCII
        read_sturman(shared_data / "sturman" / "EPM" / "AllEPMLables.csv")
        read_caltech(shared_data / "rat_social" / "annotations" / "1_annot.txt")
