"""deg.bouts: hand-computed bouts (edges, single frames, empty videos), transitions, Sturman counts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deg import bouts as B


def _stats(labels, fps=10.0, names=None):
    labels = np.asarray(labels, dtype=np.int8)
    if labels.ndim == 1:
        labels = labels[:, None]
    names = names or [f"b{k}" for k in range(labels.shape[1])]
    table = B.bout_stats(labels, fps, names)
    return table.pivot(index="behaviour", columns="metric", values="value").loc[names]


def _reference_bouts(column):
    """Per-frame Python loop: the obvious definition, for comparison only."""
    out, start = [], None
    for t, v in enumerate(column):
        if v == 1 and start is None:
            start = t
        if v != 1 and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, len(column)))
    return out


def test_bouts_touching_first_and_last_frame_and_single_frames():
    column = [1, 1, 0, 0, 1, 0, 1]
    k, start, stop = B.find_bouts(np.array(column))
    assert list(zip(start, stop)) == [(0, 2), (4, 5), (6, 7)]
    assert (k == 0).all()
    row = _stats(column, fps=2.0).iloc[0]
    assert row.n_bouts == 3
    assert row.percent_time == pytest.approx(100 * 4 / 7)
    assert row.mean_bout_frames == pytest.approx(4 / 3)
    assert row.mean_bout_s == pytest.approx(4 / 3 / 2.0)


def test_whole_video_bout_all_zero_and_empty_video():
    stats = _stats(np.array([[1, 0]] * 5))
    assert stats.loc["b0"].n_bouts == 1 and stats.loc["b0"].mean_bout_frames == 5
    assert stats.loc["b0"].percent_time == 100
    assert stats.loc["b1"].n_bouts == 0 and stats.loc["b1"].percent_time == 0
    assert np.isnan(stats.loc["b1"].mean_bout_frames)            # undefined, not 0
    empty = _stats(np.zeros((0, 2), np.int8))
    assert (empty.n_bouts == 0).all() and empty.percent_time.isna().all()
    assert B.transition_counts(np.zeros((0, 2), np.int8)).sum() == 0
    assert B.transition_counts(np.ones((1, 2), np.int8)).sum() == 0


def test_unlabelled_frames_end_bouts_and_leave_the_denominator():
    column = np.array([1, 1, -1, 1, 0, -1, -1, 0], dtype=np.int8)
    _, start, stop = B.find_bouts(column)
    assert list(zip(start, stop)) == [(0, 2), (3, 4)]
    row = _stats(column).iloc[0]
    assert row.percent_time == pytest.approx(100 * 3 / 5)
    table = B.bout_stats(column[:, None], 10.0, ["x"])
    assert (table.n_frames == 5).all()


def test_find_bouts_equals_a_per_frame_reference_on_random_data():
    rng = np.random.default_rng(0)
    labels = (rng.random((400, 4)) < 0.4).astype(np.int8)
    labels[rng.random((400, 4)) < 0.05] = -1
    k, start, stop = B.find_bouts(labels)
    for col in range(4):
        ours = list(zip(start[k == col], stop[k == col]))
        assert ours == _reference_bouts(labels[:, col])
    lengths = B.bout_lengths(labels)
    assert [len(x) for x in lengths] == [len(_reference_bouts(labels[:, c])) for c in range(4)]


def test_transition_counts_of_a_mutually_exclusive_sequence():
    # states: background(0) a(1) b(2); sequence bg bg a a bg b b a bg
    states = np.array([0, 0, 1, 1, 0, 2, 2, 1, 0])
    labels = np.eye(3, dtype=np.int8)[states]
    counts = B.transition_counts(labels)
    expected = np.zeros((3, 3), int)
    for i, j in [(0, 1), (1, 0), (0, 2), (2, 1), (1, 0)]:
        expected[i, j] += 1
    np.testing.assert_array_equal(counts, expected)
    probs = B.transition_probabilities(counts)
    np.testing.assert_allclose(probs[0], [0, 0.5, 0.5])
    np.testing.assert_allclose(probs[1], [1, 0, 0])
    np.testing.assert_allclose(probs[2], [0, 1, 0])
    table = B.transition_table(counts, ["background", "a", "b"])
    p = table[table.metric == "probability"]
    assert p.groupby("from_behaviour").value.sum().to_dict() == pytest.approx({"background": 1, "a": 1, "b": 1})
    row = table[(table.metric == "count") & (table.from_behaviour == "a") & (table.to_behaviour == "background")]
    assert row.value.item() == 2 and row.n_from.item() == 2


def test_transitions_with_overlaps_and_a_behaviour_never_left():
    #            t: 0  1  2  3
    labels = np.array([[1, 0, 0],
                       [1, 1, 0],      # b starts while a continues: no transition
                       [0, 0, 1],      # a and b end, c starts: a->c and b->c
                       [0, 0, 1]], dtype=np.int8)
    counts = B.transition_counts(labels)
    expected = np.zeros((3, 3), int)
    expected[0, 2] = expected[1, 2] = 1
    np.testing.assert_array_equal(counts, expected)
    probs = B.transition_probabilities(counts)
    assert np.isnan(probs[2]).all()            # c is never left: undefined, not 0


def test_average_bouts_skips_undefined_durations_and_counts_videos():
    v1 = B.bout_stats(np.array([[1], [1], [0], [1]], np.int8), 1.0, ["x"]).assign(video="v1")
    v2 = B.bout_stats(np.array([[0], [0], [0], [0]], np.int8), 1.0, ["x"]).assign(video="v2")
    mean = B.average_bouts(pd.concat([v1, v2]), ["behaviour", "metric"]).set_index("metric")
    assert mean.loc["mean_bout_frames", "value"] == pytest.approx(1.5)      # only v1 has bouts
    assert mean.loc["mean_bout_frames", "n_videos"] == 1
    assert mean.loc["n_bouts", "value"] == pytest.approx(1.0)               # (2 + 0) / 2
    assert mean.loc["percent_time", "value"] == pytest.approx(37.5)
    assert mean.loc["n_bouts", "n_videos"] == 2


def test_bad_inputs_raise():
    with pytest.raises(B.BoutError, match="fps"):
        B.bout_stats(np.zeros((3, 1), np.int8), 0.0, ["x"])
    with pytest.raises(B.BoutError, match="behaviour names"):
        B.bout_stats(np.zeros((3, 2), np.int8), 1.0, ["x"])
    with pytest.raises(B.BoutError, match="integers"):
        B.find_bouts(np.zeros((3, 2)))
    with pytest.raises(B.BoutError, match="shape"):
        B.transition_table(np.zeros((2, 2)), ["a", "b", "c"])


def test_sturman_oft_frame_and_bout_counts_per_annotator(shared_data):
    from deg.data.labels import read_sturman

    path = shared_data / "sturman" / "OFT" / "AllLabDataOFT_final.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with pytest.warns(UserWarning):
        parsed = read_sturman(path, fps=25.0, n_frames=15000)
    groups = parsed.intervals.groupby(["video", "annotator", "behaviour"]).indices
    start_s, end_s = parsed.intervals.start_s.to_numpy(), parsed.intervals.end_s.to_numpy()
    frame_times = np.arange(parsed.n_frames) / parsed.fps
    direct, ours, n_bouts = {}, {}, {}
    for (video, annotator), matrix in parsed.matrices.items():
        stats = B.bout_stats(matrix, parsed.fps, parsed.behaviours).set_index(["behaviour", "metric"]).value
        for name in parsed.behaviours[1:]:
            covered = np.zeros(parsed.n_frames, bool)
            for i in groups.get((video, annotator, name), []):     # the README's rule, interval by interval
                covered |= (frame_times >= start_s[i]) & (frame_times <= end_s[i])
            key = (annotator, name)
            direct[key] = direct.get(key, 0) + int(covered.sum())
            ours[key] = ours.get(key, 0) + round(stats[(name, "percent_time")] * parsed.n_frames / 100)
            n_bouts[key] = n_bouts.get(key, 0) + int(stats[(name, "n_bouts")])
    assert ours == direct
    assert (ours[("OS", "Supported")], n_bouts[("OS", "Supported")]) == (52319, 998)   # shared/data/README.md
