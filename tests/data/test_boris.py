"""BORIS exports and project files on the real ethome files, and on broken copies of them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deg.data.boris import (
    is_boris_export,
    is_boris_project,
    observation_labels,
    read_boris,
    read_boris_export,
    read_boris_project,
)
from deg.data.labels import LabelFormatError, LabelWarning

INTERACT = "e3v813a-20210610T122332-122642_reencode.csv"
MULTI = "e3v813a-20210610T120637-121213_reencode_multiple_behaviors.csv"
SIMULTANEOUS = "test-simultaneous-events.csv"
PROJECT = "test-multi-behaviors.boris"


@pytest.fixture
def boris_dir(shared_data):
    return shared_data / "ethome" / "boris"


def _frames_by_hand(pairs, fps, n):
    """Frames i with start <= i / fps < stop, one interval at a time (the definition, no tricks)."""
    out = np.zeros(n, dtype=np.int8)
    for start, stop in pairs:
        for i in range(n):
            if start <= i / fps < stop:
                out[i] = 1
    return out


def test_export_state_events(boris_dir):
    (obs,) = read_boris_export(boris_dir / INTERACT)
    assert obs.observation == "DLC3" and obs.fps == 30.0 and obs.length_s == 190.0
    assert obs.video == "e3v813a-20210610T122332-122642_reencode" and obs.subjects == ["adult"]
    assert len(obs.events) == 20 and obs.events["line"].iloc[0] == 17
    labels = observation_labels(obs)
    matrix, names = labels["adult"]
    assert names == ["background", "interact"] and matrix.shape == (5700, 2)   # 190 s x 30 fps
    times = obs.events["time_s"].to_numpy()
    np.testing.assert_array_equal(matrix[:, 1], _frames_by_hand(zip(times[0::2], times[1::2]), 30.0, 5700))
    assert (matrix.sum(axis=1) == 1).all()                                    # all frames labelled


def test_export_several_behaviours_overlap(boris_dir):
    (obs,) = read_boris(boris_dir / MULTI)
    assert obs.behaviours == ["interact", "mount"]
    matrix, names = observation_labels(obs)["adult"]
    both = (matrix[:, 1] == 1) & (matrix[:, 2] == 1)
    assert both.sum() > 100 and matrix.shape == (10080, 3)                    # mount inside interact
    assert np.array_equal(matrix[:, 0], (matrix[:, 1:].sum(axis=1) == 0).astype(np.int8))


def test_project_equals_its_export(boris_dir):
    """The project file and the export of the same observation give the same frames."""
    assert is_boris_project(boris_dir / PROJECT) and not is_boris_project(boris_dir / SIMULTANEOUS)
    assert is_boris_export(boris_dir / SIMULTANEOUS) and not is_boris_export(boris_dir / PROJECT)
    (project,) = read_boris_project(boris_dir / PROJECT)
    (export,) = read_boris(boris_dir / SIMULTANEOUS)
    assert project.fps == export.fps == 30.0 and project.behaviours == export.behaviours == ["aa", "mm"]
    a, names = observation_labels(project)["mouse"]
    b, _ = observation_labels(export)["mouse"]
    np.testing.assert_array_equal(a, b)
    # the simultaneous events: aa (28.205-30.630 s) lies inside mm (26.605-31.705 s)
    assert a[int(29 * 30), 1] == 1 and a[int(29 * 30), 2] == 1 and a[int(31.5 * 30), 1:].tolist() == [0, 1]


def test_point_events_and_subjects(tmp_path):
    path = tmp_path / "points.tsv"
    path.write_text("Time\tMedia file path\tTotal length\tFPS\tSubject\tBehavior\tStatus\n"
                    "0.50\tv.mp4\t2.0\t10\tA\tsniff\tPOINT\n"
                    "0.20\tv.mp4\t2.0\t10\tB\twalk\tSTART\n"
                    "0.40\tv.mp4\t2.0\t10\tB\twalk\tSTOP\n"
                    "1.00\tv.mp4\t2.0\t10\t\twalk\tSTART\n"
                    "1.20\tv.mp4\t2.0\t10\t\twalk\tSTOP\n")
    (obs,) = read_boris(path)
    labels = observation_labels(obs)
    assert set(labels) == {"A", "B", "no_subject"}
    a, names = labels["A"]
    assert names == ["background", "sniff", "walk"] and a.shape == (20, 3)
    assert np.flatnonzero(a[:, 1]).tolist() == [5] and a[:, 2].sum() == 0
    assert np.flatnonzero(labels["B"][0][:, 2]).tolist() == [2, 3]          # 0.2 <= t < 0.4
    assert np.flatnonzero(labels["no_subject"][0][:, 2]).tolist() == [10, 11]
    with pytest.warns(LabelWarning, match="past the 8 frames"):
        cut = observation_labels(obs, n_frames=8)["no_subject"][0]
    assert cut.shape == (8, 3) and cut[:, 2].sum() == 0


def _broken(boris_dir, tmp_path, name, edit):
    lines = (boris_dir / name).read_text().splitlines()
    path = tmp_path / f"broken_{name}"
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


@pytest.mark.parametrize("edit, match", [
    (lambda ls: ls[:-1], r"line 35: unpaired START of 'interact'"),                       # STOP removed
    (lambda ls: ls[:16] + [ls[16].replace("START", "BEGIN")] + ls[17:], r"line 17: status 'BEGIN'"),
    (lambda ls: ls[:17] + [ls[17].replace("34.725", "soon")] + ls[18:], r"line 18: time 'soon'"),
    (lambda ls: ls[:15] + [ls[15].replace("Behavior", "Act")] + ls[16:], "not a BORIS export"),
    (lambda ls: ls[:19] + [ls[19].replace(",30.0,", ",25.0,")] + ls[20:], "'fps' differs"),
])
def test_broken_exports_name_file_and_line(boris_dir, tmp_path, edit, match):
    path = _broken(boris_dir, tmp_path, INTERACT, edit)
    with pytest.raises(LabelFormatError, match=match) as info:
        for obs in read_boris(path):
            observation_labels(obs)
    assert str(path) in str(info.value)


def test_broken_projects(boris_dir, tmp_path):
    project = json.loads((boris_dir / PROJECT).read_text())
    cases = []
    p = json.loads(json.dumps(project))
    p["observations"]["testvid"]["events"][0][2] = "zz"
    cases.append((p, "behaviour 'zz' is not in behaviors_conf"))
    p = json.loads(json.dumps(project))
    p["observations"]["testvid"]["events"].pop()
    cases.append((p, "unpaired START of 'mm'"))
    p = json.loads(json.dumps(project))
    p["observations"]["testvid"]["events"][1][0] = "x"
    cases.append((p, "event 1: time 'x'"))
    for i, (content, match) in enumerate(cases):
        path = tmp_path / f"p{i}.boris"
        path.write_text(json.dumps(content))
        with pytest.raises(LabelFormatError, match=match) as info:
            for obs in read_boris(path):
                observation_labels(obs)
        assert str(path) in str(info.value)
    truncated = tmp_path / "cut.boris"
    truncated.write_text((boris_dir / PROJECT).read_text()[:500])
    with pytest.raises(LabelFormatError, match="cut.boris: not valid JSON"):
        read_boris_project(truncated)


def test_aggregated_export_and_modifiers(boris_dir, tmp_path):
    """The newer export layouts give the same frames as the classic one."""
    (classic,) = read_boris(boris_dir / SIMULTANEOUS)
    expected, _ = observation_labels(classic)["mouse"]
    aggregated = tmp_path / "aggregated.tsv"                 # one row per bout (BORIS "aggregated events")
    aggregated.write_text(
        "Observation id\tMedia duration (s)\tFPS (frame/s)\tSubject\tBehavior\tBehavior type\tStart (s)\tStop (s)\n"
        "testvid\t336.0\t30.0\tmouse\tmm\tState event\t9.955\t11.256\n"
        "testvid\t336.0\t30.0\tmouse\tmm\tState event\t26.605\t31.705\n"
        "testvid\t336.0\t30.0\tmouse\taa\tState event\t28.205\t30.630\n")
    (obs,) = read_boris(aggregated)
    assert obs.fps == 30.0 and obs.length_s == 336.0
    np.testing.assert_array_equal(observation_labels(obs)["mouse"][0], expected)
    # the newer tabular export: 'Behavior type' holds START/STOP, modifiers pair separately
    tabular = tmp_path / "tabular.csv"
    tabular.write_text("Observation id,Media duration (s),FPS,Subject,Behavior,Modifier #1,Behavior type,Time\n"
                       "o,2.0,10,m,walk,fast,START,0.1\no,2.0,10,m,walk,slow,START,0.3\n"
                       "o,2.0,10,m,walk,fast,STOP,0.5\no,2.0,10,m,walk,slow,STOP,0.9\n")
    (obs,) = read_boris(tabular)
    walk = observation_labels(obs)["m"][0][:, 1]
    assert np.flatnonzero(walk).tolist() == list(range(1, 9))
    bad = tmp_path / "bad_aggregated.csv"
    bad.write_text("Subject,Behavior,Behavior type,Start (s),Stop (s),FPS (frame/s)\nm,walk,State event,3,2,10\n")
    with pytest.raises(LabelFormatError, match="bad_aggregated.csv: line 2: stop 2 before start 3"):
        read_boris(bad)
