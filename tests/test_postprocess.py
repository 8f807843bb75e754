"""deg.postprocess: exact F1-optimal thresholds, training-set bout minimum, short-bout removal."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from deg import postprocess as P
from deg.bouts import find_bouts
from deg.presets import HPARAMS


def _f1(y, p):
    return f1_score(y, p, zero_division=0)


@pytest.mark.parametrize("decimals", [None, 2])
def test_best_thresholds_reach_the_best_f1_of_any_threshold(decimals):
    rng = np.random.default_rng(0)
    labels = (rng.random((600, 3)) < [0.5, 0.2, 0.05]).astype(np.int8)
    probs = np.clip(0.35 * labels + rng.random((600, 3)) * 0.7, 0, 1)
    if decimals is not None:
        probs = np.round(probs, decimals)
    thresholds = P.best_thresholds(probs, labels)
    for k in range(3):
        # brute force: every distinct score, and below the minimum, as a threshold
        candidates = np.concatenate([np.unique(probs[:, k]), [-1.0]])
        predicted = probs[:, k][None, :] > candidates[:, None]          # (n_candidates, T)
        tp = (predicted & (labels[:, k] == 1)).sum(1)
        best = (2 * tp / (predicted.sum(1) + labels[:, k].sum())).max()
        assert _f1(labels[:, k], probs[:, k] > thresholds[k]) == pytest.approx(best)


def test_threshold_is_a_midpoint_and_ties_go_to_the_highest():
    probs = np.array([0.9, 0.8, 0.6, 0.3, 0.1])[:, None]
    labels = np.array([1, 1, 0, 0, 0], np.int8)[:, None]
    assert P.best_thresholds(probs, labels)[0] == pytest.approx(0.7)
    # every frame positive is best: the threshold lies just below the smallest score
    all_pos = P.best_thresholds(np.array([[0.2], [0.4]]), np.array([[1], [1]], np.int8))[0]
    assert all_pos < 0.2 and (np.array([0.2, 0.4]) > all_pos).all()
    # F1 ties (1/1 vs 2/2 positives): the higher threshold wins
    probs = np.array([0.9, 0.5, 0.4, 0.2])[:, None]
    labels = np.array([1, 0, 1, 0], np.int8)[:, None]   # >0.45: F1=2/3; >0.3: F1=0.8
    assert P.best_thresholds(probs, labels)[0] == pytest.approx(0.3)


def test_best_thresholds_ignore_unlabelled_and_default_without_positives():
    probs = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.9], [0.2, 0.1]])
    labels = np.array([[1, 0], [0, 0], [-1, -1], [0, 0]], np.int8)
    thr = P.best_thresholds(probs, labels)
    assert thr[0] == pytest.approx(0.55)          # frame 2 (0.8, unlabelled) ignored
    assert thr[1] == P.DEFAULT_THRESHOLD
    with pytest.raises(P.PostprocessError, match="shape"):
        P.best_thresholds(probs, labels[:2])
    with pytest.raises(P.PostprocessError, match="NaN"):
        P.best_thresholds(np.full((4, 2), np.nan), labels)


def test_min_bout_lengths_from_the_training_percentile():
    a = np.zeros((40, 3), np.int8)
    a[0:3, 1] = 1           # length 3, touching the start
    a[10:11, 1] = 1         # length 1
    a[20:30, 1] = 1         # length 10
    b = np.zeros((30, 3), np.int8)
    b[5:9, 1] = 1           # length 4
    b[:, 2] = -1
    lengths = np.array([3, 1, 10, 4])
    out = P.min_bout_lengths([a, b], percentile=50)
    assert out[1] == int(np.ceil(np.percentile(lengths, 50)))        # 3.5 -> 4
    assert out[0] == 1 and out[2] == 1                               # no bouts: no removal
    assert P.min_bout_lengths([a, b])[1] == int(np.ceil(np.percentile(lengths, HPARAMS["bout_percentile"])))
    with pytest.raises(P.PostprocessError):
        P.min_bout_lengths([a, b[:, :2]])


def test_remove_short_bouts_fills_gaps_first_then_drops_bouts():
    col = lambda s: np.array([int(c) for c in s], np.uint8)[:, None]   # noqa: E731
    run = lambda s, n: "".join(map(str, P.remove_short_bouts(col(s), [n])[:, 0]))  # noqa: E731
    assert run("0010101000", 2) == "0011111000"      # fragmented bout: gaps filled first, kept
    assert run("0001000000", 2) == "0000000000"      # isolated flicker removed
    assert run("0001100000", 2) == "0001100000"      # long enough: kept
    assert run("1000011100", 3) == "1000011100"      # short bout touching the start: kept (censored)
    assert run("0011100001", 3) == "0011100001"      # ... and the end
    assert run("0111011100", 2) == "0111111100"      # single-frame gap filled
    assert run("0100000110", 2) == "0000000110"
    assert run("0110", 1) == "0110"                  # min 1: nothing is shorter
    assert P.remove_short_bouts(np.zeros((0, 2), np.uint8), [3, 3]).shape == (0, 2)


def test_remove_short_bouts_leaves_no_short_interior_runs():
    rng = np.random.default_rng(1)
    binary = (rng.random((3000, 4)) < 0.4).astype(np.uint8)
    min_len = np.array([1, 2, 4, 7])
    out = P.remove_short_bouts(binary, min_len)
    assert out.dtype == np.uint8 and out.shape == binary.shape
    for value in (1, 0):
        k, start, stop = find_bouts((out == value).astype(np.int8))
        interior = (start > 0) & (stop < len(out))
        assert ((stop - start)[interior] >= min_len[k][interior]).all()
    np.testing.assert_array_equal(out[:, 0], binary[:, 0])
    with pytest.raises(P.PostprocessError, match="min_len"):
        P.remove_short_bouts(binary, [1, 2])
    with pytest.raises(P.PostprocessError, match="0 and 1"):
        P.remove_short_bouts(binary * 2, min_len)


def test_postprocess_thresholds_strictly_and_recomputes_background():
    probs = np.array([[0.9, 0.2, 0.1],
                      [0.1, 0.5, 0.1],     # exactly at the threshold: not positive
                      [0.1, 0.6, 0.7],
                      [0.9, 0.1, 0.1]])
    out = P.postprocess(probs, np.array([0.99, 0.5, 0.5]), np.ones(3, int))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[1, 0, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0]])
    rng = np.random.default_rng(2)
    probs = rng.random((500, 4))
    out = P.postprocess(probs, np.full(4, 0.6), np.array([1, 3, 3, 3]))
    np.testing.assert_array_equal(out[:, 0], (out[:, 1:].sum(1) == 0).astype(np.uint8))
    with pytest.raises(P.PostprocessError, match="thresholds"):
        P.postprocess(probs, np.full(3, 0.5), np.ones(4, int))
