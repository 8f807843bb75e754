"""Label readers: DeepEthogram CSVs and projects, Sturman intervals, Caltech annotations.

Real files come from ``deg.paths.shared_data_dir()`` (skipped when absent); malformed inputs are
copies written to ``tmp_path``.
"""
from __future__ import annotations

import csv
import gzip
import re
import warnings
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import yaml

from deg import paths
from deg.data.datasets import Dataset
from deg.data.labels import (
    LabelFormatError,
    LabelOverrunWarning,
    LabelWarning,
    import_deg_project,
    read_caltech,
    read_deg_labels,
    read_deg_project,
    read_sturman,
    select_behaviours,
    write_deg_labels,
)

FPS, N_FRAMES = 25.0, 15000


# ----------------------------------------------------------------------------- fixtures
def _shared() -> Path:
    root = paths.shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent (it lies beside the checkout in CI only)")
    return root


@pytest.fixture(scope="module")
def oft_path() -> Path:
    return _shared() / "sturman" / "OFT" / "AllLabDataOFT_final.csv"


@pytest.fixture(scope="module")
def oft(oft_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)      # the one untyped row; tested below
        return read_sturman(oft_path, fps=FPS, n_frames=N_FRAMES)


@pytest.fixture(scope="module")
def rat_dir() -> Path:
    return _shared() / "rat_social"


def _random_labels(rng, n_frames=50, n_behaviours=3, unlabelled=(5, 9)) -> np.ndarray:
    behaviours = (rng.random((n_frames, n_behaviours)) < 0.3).astype(np.int8)
    matrix = np.concatenate([(behaviours.sum(1) == 0).astype(np.int8)[:, None], behaviours], axis=1)
    matrix[slice(*unlabelled)] = -1
    return matrix


def _expect_error(path: Path, match: str, reader, *args, **kwargs):
    with pytest.raises(LabelFormatError, match=match) as info:
        reader(path, *args, **kwargs)
    assert str(path) in str(info.value)


# ============================================================================ DeepEthogram CSV
def test_deg_labels_round_trip(tmp_path):
    matrix = _random_labels(np.random.default_rng(0))
    names = ["background", "walk", "groom", "rear"]
    path = write_deg_labels(tmp_path / "v_labels.csv", matrix, names)
    assert path.read_text().splitlines()[0] == ",background,walk,groom,rear"   # DeepEthogram's layout
    assert [p.name for p in tmp_path.iterdir()] == ["v_labels.csv"]             # no temporary left
    back, back_names = read_deg_labels(path)
    assert back_names == names and back.dtype == np.int8
    np.testing.assert_array_equal(back, matrix)
    assert (back[5:9] == -1).all() and (back[:5] != -1).all()


def test_deg_labels_without_index_and_background_elsewhere(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("walk,background\n1,0\n0,1\n-1,-1\n")
    matrix, names = read_deg_labels(path)
    assert names == ["background", "walk"]
    np.testing.assert_array_equal(matrix, [[0, 1], [1, 0], [-1, -1]])


@pytest.mark.parametrize("content, match", [
    ("", "empty file"),
    (",walk,groom\n0,1,0\n", "no 'background' column"),
    (",background,walk\n0,0,2\n", "line 2, column 'walk': value '2'"),
    (",background,walk\n0,1,0\n1,x,0\n", "line 3, column 'background': value 'x'"),
    (",background,walk\n0,1,0\n1,1\n", "missing value"),
    (",background,walk\n0,1,0\n1,1,0,1\n", "not a rectangular CSV"),
    (",background,walk\n0,-1,0\n", "mixes -1 with 0/1"),
    (",background,walk\n0,1,1\n1,0,0\n", "disagrees with the behaviour columns on 2 frame"),
    (",background,walk\n", "no label rows"),
])
def test_deg_labels_malformed(tmp_path, content, match):
    path = tmp_path / "bad_labels.csv"
    path.write_text(content)
    _expect_error(path, match, read_deg_labels)


def test_deg_labels_missing_file_and_background_fix(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_deg_labels(missing)
    _expect_error(missing, "not found", read_deg_labels)
    path = tmp_path / "fix.csv"
    path.write_text(",background,walk\n0,1,1\n1,0,0\n2,-1,-1\n")
    matrix, _ = read_deg_labels(path, fix_background=True)
    np.testing.assert_array_equal(matrix, [[0, 1], [1, 0], [-1, -1]])


def test_write_deg_labels_rejects_inconsistent_matrix(tmp_path):
    with pytest.raises(ValueError, match="inconsistent"):
        write_deg_labels(tmp_path / "a.csv", np.array([[1, 1]]), ["background", "walk"])
    with pytest.raises(ValueError, match="start with 'background'"):
        write_deg_labels(tmp_path / "a.csv", np.array([[1, 0]]), ["walk", "background"])
    assert not (tmp_path / "a.csv").exists()


def test_select_behaviours_recomputes_background():
    matrix = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0], [-1, -1, -1]], dtype=np.int8)
    out, names = select_behaviours(matrix, ["background", "a", "b"], ["b"])
    assert names == ["background", "b"]
    np.testing.assert_array_equal(out, [[1, 0], [0, 1], [1, 0], [-1, -1]])


# ============================================================================ DeepEthogram project
def _write_video(path: Path, n_frames: int, codec: str = "mpeg4", rate: int = 15) -> None:
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(n_frames):
            image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _make_project(root: Path, class_names=("background", "walk", "groom"), n_frames=12) -> np.ndarray:
    """A DeepEthogram-style project: config, one labelled and one unlabelled mp4 video."""
    config = {"project": {"name": "my proj", "class_names": list(class_names), "path": str(root)}}
    (root / "DATA" / "vid1").mkdir(parents=True)
    (root / "DATA" / "vid2").mkdir(parents=True)
    (root / "project_config.yaml").write_text(yaml.safe_dump(config))
    _write_video(root / "DATA" / "vid1" / "vid1.mp4", n_frames)
    _write_video(root / "DATA" / "vid2" / "vid2.mp4", 6)
    matrix = _random_labels(np.random.default_rng(2), n_frames, len(class_names) - 1, (3, 5))
    write_deg_labels(root / "DATA" / "vid1" / "vid1_labels.csv", matrix, list(class_names))
    return matrix


def test_read_deg_project(tmp_path):
    _make_project(tmp_path / "proj")
    project = read_deg_project(tmp_path / "proj")
    assert project.name == "my proj"
    assert project.behaviours == ["background", "walk", "groom"]
    assert project.videos == {"vid1": tmp_path / "proj/DATA/vid1/vid1.mp4",
                              "vid2": tmp_path / "proj/DATA/vid2/vid2.mp4"}
    assert project.labels == {"vid1": tmp_path / "proj/DATA/vid1/vid1_labels.csv"}
    assert project.unlabelled == ["vid2"]
    assert project.fps == pytest.approx(15.0)


def test_import_deg_project(tmp_path):
    matrix = _make_project(tmp_path / "proj")
    dataset = import_deg_project(tmp_path / "proj", tmp_path / "data")
    assert dataset.root == tmp_path / "data" / "my_proj"
    loaded = Dataset.load(dataset.root)                        # dataset.json + COMPLETE written
    assert loaded.videos == ["vid1"] and loaded.annotators == ["labeler"]
    assert loaded.behaviours == ["background", "walk", "groom"] and loaded.fps == pytest.approx(15.0)
    assert loaded.extra["unlabelled_videos"] == ["vid2"]
    np.testing.assert_array_equal(loaded.labels("vid1", "labeler"), matrix)
    with av.open(str(loaded.video_path("vid1"))) as container:       # the placed video decodes fully
        assert sum(1 for _ in container.decode(video=0)) == len(matrix)
    assert loaded.video_path("vid2") is not None


def test_deg_project_errors(tmp_path):
    root = tmp_path / "proj"
    _make_project(root)
    config = root / "project_config.yaml"
    good = config.read_text()

    config.write_text(yaml.safe_dump({"project": {"name": "p"}}))
    with pytest.raises(LabelFormatError, match=r"project_config.yaml: 'project: class_names' is missing"):
        read_deg_project(root)
    config.write_text(yaml.safe_dump({"project": {"name": "p", "class_names": ["background", "walk"]}}))
    with pytest.raises(LabelFormatError, match=r"vid1_labels.csv: columns .* differ from class_names"):
        read_deg_project(root)
    config.write_text(good)

    (root / "DATA" / "vid1" / "vid1_labels.csv").unlink()          # unlabelled is not an error
    assert read_deg_project(root).labels == {}
    config.unlink()
    with pytest.raises(LabelFormatError, match="project_config.yaml: DeepEthogram project config not found"):
        read_deg_project(root)


def test_import_rejects_non_mp4_and_frame_mismatch(tmp_path):
    root = tmp_path / "proj"
    _make_project(root)
    (root / "DATA" / "vid2" / "vid2.mp4").unlink()
    _write_video(root / "DATA" / "vid2" / "vid2.avi", 4)
    with pytest.raises(LabelFormatError, match=r"vid2\.avi: only \.mp4 videos are imported"):
        import_deg_project(root, tmp_path / "data")
    (root / "DATA" / "vid2" / "vid2.avi").unlink()
    (root / "DATA" / "vid1" / "vid1.mp4").unlink()
    _write_video(root / "DATA" / "vid1" / "vid1.mp4", 7)
    with pytest.raises(LabelFormatError, match=r"vid1_labels.csv: 12 label rows but .*vid1.mp4 has 7 frames"):
        import_deg_project(root, tmp_path / "data")


# ============================================================================ Sturman intervals
def _bouts(column: np.ndarray) -> int:
    column = column.astype(np.int64)
    return int(column[0] + (np.diff(column) == 1).sum())


def test_sturman_oft_readme_numbers(oft):
    """README: a 0-600 s window gives OS Supported 52,319 frames (17.4%) and 998 bouts."""
    col = oft.behaviours.index("Supported")
    frames = sum(int(oft.matrices[(v, "OS")][:, col].sum()) for v in oft.videos)
    bouts = sum(_bouts(oft.matrices[(v, "OS")][:, col]) for v in oft.videos)
    assert frames == 52319
    assert round(100 * frames / (len(oft.videos) * N_FRAMES), 1) == 17.4
    assert bouts == 998


def test_sturman_oft_structure(oft):
    assert oft.behaviours == ["background", "Grooming", "Jumping", "Supported", "Unsupported"]
    assert oft.annotator_source == "file" and oft.annotators == ["FA", "Jin", "OS"]
    assert len(oft.videos) == 20 and oft.videos[0] == "OFT_5"
    assert set(oft.matrices) == {(v, a) for v in oft.videos for a in ("FA", "Jin", "OS")}
    for matrix in oft.matrices.values():
        assert matrix.shape == (N_FRAMES, 5) and matrix.dtype == np.int8
        np.testing.assert_array_equal(matrix[:, 0], matrix[:, 1:].sum(1) == 0)
    # Jin's two files per video are one annotator: Supported (Jin.csv) and Unsupported (Jin2.json)
    jin = oft.matrices[("OFT_11", "Jin")]
    assert jin[:, 3].sum() > 0 and jin[:, 4].sum() > 0
    assert oft.dlc_files["OFT_44"].startswith("12_01_A_")


def _independent_matrices(path: Path, behaviours: list[str], key) -> dict[tuple[str, str], np.ndarray]:
    """Recompute per-frame masks from the raw file with the csv module, one mask per interval."""
    times = np.arange(N_FRAMES) / FPS
    expected: dict[tuple[str, str], np.ndarray] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            kind = row["type"]
            if kind in ("NA", "Start/End", "Start_End", "StartEnd", "_DEFAULT"):
                continue
            mask = (times >= float(row["from"])) & (times <= float(row["to"]))
            matrix = expected.setdefault(key(row), np.zeros((N_FRAMES, len(behaviours)), dtype=bool))
            matrix[:, behaviours.index(kind)] |= mask
    return expected


def test_sturman_counts_match_independent_parse(oft, oft_path):
    def key(row):
        return re.match(r"(OFT_\d+)_([A-Za-z]+)\d*\.", row["file"]).groups()

    expected = _independent_matrices(oft_path, oft.behaviours, key)
    assert set(expected) == set(oft.matrices)
    for pair, mask in expected.items():
        np.testing.assert_array_equal(oft.matrices[pair][:, 1:], mask[:, 1:], err_msg=str(pair))
    for annotator in ("FA", "Jin", "OS"):      # per-annotator frame counts, as in the README's table
        want = sum(m[:, 1:].sum(0) for (_, a), m in expected.items() if a == annotator)
        got = sum(m[:, 1:].sum(0) for (_, a), m in oft.matrices.items() if a == annotator)
        np.testing.assert_array_equal(got, want)


def test_sturman_untyped_row_warns(oft_path):
    with pytest.warns(LabelWarning, match=r"AllLabDataOFT_final.csv: skipped 1 row\(s\) .* \[5032\]"):
        read_sturman(oft_path, n_frames=100)


def test_sturman_epm_uses_experimenter():
    path = _shared() / "sturman" / "EPM" / "AllEPMLables.csv"
    epm = read_sturman(path)
    assert epm.annotator_source == "experimenter"
    assert epm.annotators == ["Jin", "Oliver", "Sian"]
    assert epm.videos == ["EPM_2", "EPM_6", "EPM_11", "EPM_13", "EPM_16"]
    assert set(epm.matrices) == {(v, a) for v in epm.videos for a in epm.annotators}
    assert epm.behaviours == ["background", "Grooming", "Head Dip", "Protected Stretch", "Rearing",
                              "Unprotected Stretch"]
    expected = _independent_matrices(path, epm.behaviours, lambda row: (row["ID"], row["Experimenter"]))
    for pair, mask in expected.items():
        np.testing.assert_array_equal(epm.matrices[pair][:, 1:], mask[:, 1:], err_msg=str(pair))


def test_sturman_forced_experimenter_on_oft(oft_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)
        parsed = read_sturman(oft_path, n_frames=50, annotator_from="experimenter")
    assert parsed.annotators == ["Furkan", "Jin", "Oliver"]


def test_sturman_variant_layout(oft, oft_path, tmp_path):
    """Reordered/extra/missing columns, ',' separator, BOM, padding, marker spellings: same result."""
    table = pd.read_csv(oft_path, sep=";", dtype=str, keep_default_na=False)
    table = table[table["ID"] == "OFT_11"].copy()
    markers = table["type"].isin(["Start/End", "StartEnd", "_DEFAULT"])
    table.loc[markers, "type"] = np.resize(["start", "End", "_default", " start / end "], markers.sum())
    table = table.drop(columns=["ID", "DLCFile"]).assign(note="x")[["type", "note", "to", "from", "file",
                                                                      "Experimenter"]]
    table["from"] = "  " + table["from"]
    text = "\ufeff" + table.to_csv(index=False)
    path = tmp_path / "variant.csv"
    path.write_text(text, encoding="utf-8")
    parsed = read_sturman(path)
    assert parsed.behaviours == ["background", "Grooming", "Supported", "Unsupported"]
    for annotator in ("FA", "Jin", "OS"):
        original = oft.matrices[("OFT_11", annotator)]
        keep = [oft.behaviours.index(b) for b in parsed.behaviours]
        np.testing.assert_array_equal(parsed.matrices[("OFT_11", annotator)], original[:, keep])


def test_sturman_frame_convention(tmp_path):
    """from <= i / fps <= to, both ends inclusive, exact at float boundaries (4.84 s = frame 121)."""
    path = tmp_path / "tiny.csv"
    path.write_text("file;Experimenter;from;to;type\n"
                    "T_1_A.csv;A;0.04;0.08;walk\nT_1_A.csv;A;4.84;4.88;walk\nT_1_A.csv;A;0.05;0.07;rest\n"
                    "T_1_B.csv;B;0;1;Start/End\n")
    parsed = read_sturman(path, fps=25, n_frames=130)
    walk = parsed.matrices[("T_1", "A")][:, parsed.behaviours.index("walk")]
    assert np.flatnonzero(walk).tolist() == [1, 2, 121, 122]
    rest = parsed.matrices[("T_1", "A")][:, parsed.behaviours.index("rest")]
    assert np.flatnonzero(rest).tolist() == []                   # 0.05..0.07 holds no frame time
    assert (parsed.matrices[("T_1", "B")][:, 0] == 1).all()      # markers only: all background


_HEADER = "file;Experimenter;from;to;type;ID\n"


@pytest.mark.parametrize("content, match", [
    ("file;Experimenter;from;type;ID\nO_1_A.csv;A;1;walk;O_1\n", r"missing column\(s\) \['to'\]"),
    (_HEADER + "O_1_A.csv;A;1;2;walk;O_1\nO_1_A.csv;A;abc;2;walk;O_1\n", "line 3, column 'from': 'abc'"),
    (_HEADER + "O_1_A.csv;A;3;2;walk;O_1\n", r"line 2: interval ends \(2.0\) before it starts"),
    ("file|Experimenter|from|to|type\nO_1_A.csv|A|1|2|walk\n", "cannot detect the separator"),
    ("", "empty file"),
    ("  \n", "empty file"),
    (_HEADER, "header but no intervals"),
    (_HEADER + "O_1_A.csv;A;1;NA;walk;O_1\n", "line 2, column 'to': 'NA'"),
    (_HEADER + "nounderscore.csv;A;1;2;walk;O_1\n", "cannot read a video id from file"),
])
def test_sturman_malformed(tmp_path, content, match):
    path = tmp_path / "bad_sturman.csv"
    path.write_text(content)
    _expect_error(path, match, read_sturman)


# ============================================================================ Caltech annotator
def _caltech_segments(path: Path) -> dict[str, list[tuple[int, int, str]]]:
    """Independent minimal parse of the segment lines, for cross-checks."""
    streams, current = {}, None
    for line in path.read_text().splitlines():
        head = re.match(r"(S\d):", line)
        if head:
            current = streams.setdefault(head.group(1), [])
        elif current is not None and re.match(r"\s+\d+\s+\d+\s+\w+", line):
            start, end, kind = line.split()
            current.append((int(start), int(end), kind))
    return streams


def test_caltech_real_file_layout(rat_dir):
    result = read_caltech(rat_dir / "annotations" / "1_annot.txt")
    assert set(result) == {"S1", "S2"}
    matrix, names = result["S1"]
    assert names == ["background", "aggression", "freezing", "lateralthreat", "keepdown", "chase",
                     "uprightposture", "social", "bite", "nonsocial", "clinch"]
    assert matrix.shape == (14734, 11) and result["S2"][0].shape == (14734, 11)
    assert (matrix[:535, 0] == 1).all() and matrix[535, names.index("social")] == 1 and matrix[535, 0] == 0
    assert matrix[960, names.index("social")] == 1 and matrix[961, names.index("nonsocial")] == 1
    assert (matrix != -1).all() and (matrix.sum(1) == 1).all()     # one behaviour per frame per stream
    assert set(read_caltech(rat_dir / "annotations" / "4_annot.txt")) == {"S1"}   # file without S2


def test_caltech_counts_match_segments_all_files(rat_dir):
    files = sorted((rat_dir / "annotations").glob("*_annot.txt"))
    assert len(files) == 40
    for path in files:
        result = read_caltech(path)
        for stream, segments in _caltech_segments(path).items():
            matrix, names = result[stream]
            for kind in {k for _, _, k in segments}:
                frames = sum(e - s + 1 for s, e, k in segments if k == kind)
                column = 0 if kind == "base" else names.index(kind)
                if column:
                    assert int(matrix[:, column].sum()) == frames, (path.name, stream, kind)
            base = sum(e - s + 1 for s, e, k in segments if k == "base")
            assert int(matrix[:, 0].sum()) == base, (path.name, stream)


def _pose_frames(rat_dir: Path, video: str) -> int:
    (path,) = (rat_dir / "dlc_csv").glob(f"{video}DLC_*.csv.gz")
    with gzip.open(path, "rt") as fh:
        return sum(1 for _ in fh) - 4                    # 4 header rows


def test_caltech_overrun_against_pose_length(rat_dir):
    path = rat_dir / "annotations" / "14_annot.txt"
    n_frames = _pose_frames(rat_dir, "14")
    assert n_frames == 15183
    with pytest.raises(LabelFormatError, match=r"14_annot.txt: annotation runs to frame 15242, 59 frame"):
        read_caltech(path, n_frames=n_frames)
    with pytest.warns(LabelOverrunWarning, match=r"14_annot.txt: trimmed 59 annotated frame"):
        trimmed = read_caltech(path, n_frames=n_frames, on_overrun="trim")
    full = read_caltech(path)
    for stream in full:
        assert trimmed[stream][0].shape == (n_frames, 11)
        np.testing.assert_array_equal(trimmed[stream][0], full[stream][0][:n_frames])


def test_caltech_shorter_annotation_is_unlabelled(rat_dir):
    matrix, _ = read_caltech(rat_dir / "annotations" / "9_annot.txt", n_frames=13400)["S1"]
    assert (matrix[13362:] == -1).all() and (matrix[:13362] != -1).all()


_CALTECH_HEAD = "Caltech Behavior Annotator - Annotation File\r\n\r\nConfiguration file:\r\nbase\tz\r\nwalk\tw\r\n\r\n"


@pytest.mark.parametrize("body, match", [
    ("S1:\tstart\tend\ttype\r\n----\r\n   \t1\t5\tbase\r\n   \t6\t9\tjump\r\n",
     "type 'jump' is not in the configuration"),
    ("S1:\tstart\tend\ttype\r\n----\r\n   \t1\t5\tbase\r\n   \t5\t9\twalk\r\n", "S1: segments overlap at frame 5"),
    ("S1:\tstart\tend\ttype\r\n----\r\n   \t1\tx\tbase\r\n", "line 9: expected '<start> <end> <type>'"),
    ("S1:\tstart\tend\ttype\r\n----\r\n   \t7\t5\tbase\r\n", "bad frame range 7-5"),
    ("S1:\tstart\tend\ttype\r\n----\r\n   \t0\t5\tbase\r\n", "bad frame range 0-5"),
    ("", "no label streams"),
    ("   \t1\t5\tbase\r\n", "before any stream header"),
])
def test_caltech_malformed(tmp_path, body, match):
    path = tmp_path / "bad_annot.txt"
    path.write_bytes((_CALTECH_HEAD + body).encode())
    _expect_error(path, match, read_caltech)


def test_caltech_missing_header_and_empty(tmp_path):
    path = tmp_path / "x_annot.txt"
    path.write_text("S1:\tstart\tend\ttype\n   \t1\t5\tbase\n")
    _expect_error(path, "no 'Configuration file:' header", read_caltech)
    path.write_text("")
    _expect_error(path, "empty file", read_caltech)
    _expect_error(tmp_path / "none.txt", "not found", read_caltech)


def test_caltech_small_file_exact(tmp_path):
    path = tmp_path / "ok_annot.txt"
    path.write_bytes((_CALTECH_HEAD + "S1:\tstart\tend\ttype\r\n----\r\n   \t1\t2\tbase\r\n   \t3\t4\twalk\r\n"
                      "   \t6\t6\tbase\r\n  \r\n").encode())
    matrix, names = read_caltech(path)["S1"]
    assert names == ["background", "walk"]
    np.testing.assert_array_equal(matrix, [[1, 0], [1, 0], [0, 1], [0, 1], [-1, -1], [1, 0]])
