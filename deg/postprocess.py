"""From probabilities to an ethogram: thresholds, short-bout removal, background.

Paper (Methods, "Postprocessing"):

1. ``y_hat[t, k] = p[t, k] > tau_k`` with ``tau_k`` the threshold that maximises F1 of
   behaviour k (picked on the validation set; test data use the validation thresholds).
2. "For each behavior k, we removed both 'positive' and 'negative' bouts (binary sequences of
   1s and 0s, respectively) shorter than the first percentile of the bout length distribution in
   the training set" (``HPARAMS["bout_percentile"]``).
3. "We computed the 'background' class as the logical not of the other predictions."

Choices the paper leaves open, made here and tested:

* Threshold search is exact: every distinct score is a candidate (one sort per behaviour);
  the threshold returned is the midpoint between the chosen score and the next lower one, so
  ``p > tau`` selects exactly the chosen frames. F1 ties go to the highest threshold. A
  behaviour without positive frames in the data gets the threshold 0.5 (F1 is undefined).
* The minimum length of behaviour k is ``ceil(percentile)`` of its positive bout lengths (a
  bout of integer length L is "shorter than" the percentile P exactly when L < ceil(P));
  1 (no removal) for a behaviour without bouts.
* Order: short **negative** bouts (gaps) are filled first, then short **positive** bouts are
  removed. Filling first keeps a real bout that the classifier fragmented into pieces; isolated
  flickers are still removed by the second pass. After both passes no interior bout of either
  kind is shorter than the minimum (filling only lengthens positives, removing only lengthens
  negatives), so one pass of each suffices.
* Bouts touching the first or last frame of the video are kept whatever their length: their
  true length is cut by the recording, so they are not known to be short.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from deg.bouts import bout_lengths
from deg.presets import HPARAMS

DEFAULT_THRESHOLD = 0.5   # for behaviours without positive frames (F1 undefined)


class PostprocessError(ValueError):
    """Probabilities, thresholds or bout lengths of the wrong shape or values."""


def _check_2d(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise PostprocessError(f"{what} must be (T, K), got shape {array.shape}")
    return array


def best_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K,) thresholds maximising per-behaviour F1 of ``probs > tau``.

    probs: (T, K) float; labels: (T, K) -1/0/1 (-1 frames ignored).
    """
    probs = _check_2d(probs, "probs").astype(np.float64, copy=False)
    labels = _check_2d(labels, "labels")
    if probs.shape != labels.shape:
        raise PostprocessError(f"probs shape {probs.shape} differs from labels shape {labels.shape}")
    if not np.isfinite(probs).all():
        raise PostprocessError("probs contain NaN or infinite values")
    return np.array([_best_threshold_1d(probs[:, k], labels[:, k]) for k in range(probs.shape[1])])


def _best_threshold_1d(p: np.ndarray, y: np.ndarray) -> float:
    keep = y >= 0
    p, y = p[keep], y[keep] == 1
    n_pos = int(y.sum())
    if n_pos == 0 or p.size == 0:
        return DEFAULT_THRESHOLD
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    # last index of each group of equal scores: predicting "score >= value of this group"
    group_end = np.flatnonzero(np.append(p_sorted[1:] != p_sorted[:-1], True))
    tp = np.cumsum(y_sorted)[group_end]
    n_pred = group_end + 1
    f1 = 2.0 * tp / (n_pred + n_pos)                  # 2TP / (2TP + FP + FN)
    best = int(np.argmax(f1))                         # first = highest threshold among ties
    chosen = p_sorted[group_end[best]]
    if best + 1 < group_end.size:
        lower = p_sorted[group_end[best + 1]]
        mid = (chosen + lower) / 2.0
        # adjacent floats: the midpoint may round onto `chosen`; `lower` then still separates
        return float(mid if lower <= mid < chosen else lower)
    return float(np.nextafter(chosen, -np.inf))       # every frame positive


def min_bout_lengths(labels_list: Sequence[np.ndarray],
                     percentile: float = HPARAMS["bout_percentile"]) -> np.ndarray:
    """(K,) int minimum bout length per behaviour from training labels.

    labels_list: training videos' (T_i, K) label matrices (-1/0/1). Bouts of every video are
    pooled; the minimum is ``ceil(np.percentile(lengths, percentile))``, at least 1.
    """
    if not labels_list:
        raise PostprocessError("min_bout_lengths needs at least one label matrix")
    K = _check_2d(labels_list[0], "labels").shape[1]
    per_behaviour: list[list[np.ndarray]] = [[] for _ in range(K)]
    for labels in labels_list:
        labels = _check_2d(labels, "labels")
        if labels.shape[1] != K:
            raise PostprocessError(f"label matrices differ in behaviours: {labels.shape[1]} vs {K}")
        for k, lengths in enumerate(bout_lengths(labels)):
            per_behaviour[k].append(lengths)
    out = np.ones(K, dtype=np.int64)
    for k in range(K):
        lengths = np.concatenate(per_behaviour[k])
        if lengths.size:
            out[k] = max(1, math.ceil(float(np.percentile(lengths, percentile))))
    return out


def _runs(column: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal values of a 0/1 column (T,): (start, stop exclusive, value)."""
    change = np.flatnonzero(column[1:] != column[:-1]) + 1
    start = np.concatenate(([0], change))
    stop = np.concatenate((change, [column.size]))
    return start, stop, column[start]


def _flip_runs(column: np.ndarray, min_len: int, value: int) -> np.ndarray:
    """Set interior runs of ``value`` shorter than ``min_len`` to ``1 - value``."""
    start, stop, vals = _runs(column)
    short = (vals == value) & (stop - start < min_len) & (start > 0) & (stop < column.size)
    if not short.any():
        return column
    # mark the frames of the short runs with a +1/-1 difference array: no per-frame loop
    marks = np.zeros(column.size + 1, dtype=np.int64)
    np.add.at(marks, start[short], 1)
    np.add.at(marks, stop[short], -1)
    out = column.copy()
    out[np.cumsum(marks[:-1]) > 0] = 1 - value
    return out


def remove_short_bouts(binary: np.ndarray, min_len: np.ndarray | Sequence[int]) -> np.ndarray:
    """Binary (T, K) 0/1 with short gaps filled, then short bouts removed, per behaviour.

    min_len: (K,) int; runs strictly shorter than ``min_len[k]`` are flipped, except runs
    touching the first or last frame (see module docstring). Returns a new uint8 array.
    """
    binary = _check_2d(binary, "binary")
    if binary.size and (binary.min() < 0 or binary.max() > 1):
        raise PostprocessError("binary predictions must hold only 0 and 1")
    min_len = np.asarray(min_len)
    if min_len.shape != (binary.shape[1],):
        raise PostprocessError(f"min_len must be ({binary.shape[1]},), got shape {min_len.shape}")
    out = binary.astype(np.uint8, copy=True)
    if out.shape[0] == 0:
        return out
    for k in range(out.shape[1]):   # loop over behaviours; each column is vectorised
        if min_len[k] <= 1:
            continue
        column = _flip_runs(out[:, k], int(min_len[k]), value=0)   # fill short gaps
        out[:, k] = _flip_runs(column, int(min_len[k]), value=1)   # drop short bouts
    return out


def postprocess(probs: np.ndarray, thresholds: np.ndarray, min_len: np.ndarray) -> np.ndarray:
    """(T, K) uint8 ethogram from probabilities (T, K) (column 0 = background).

    Behaviours 1..K-1: ``probs > thresholds`` then :func:`remove_short_bouts`; column 0 is
    the logical not of the others (its own probability and threshold are not used).
    """
    probs = _check_2d(probs, "probs")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (probs.shape[1],):
        raise PostprocessError(f"thresholds must be ({probs.shape[1]},), got shape {thresholds.shape}")
    binary = (probs > thresholds[None, :]).astype(np.uint8)
    out = remove_short_bouts(binary, min_len)
    out[:, 0] = (out[:, 1:].sum(axis=1) == 0).astype(np.uint8)
    return out
