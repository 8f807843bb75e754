"""Bout statistics of an ethogram: time spent, number of bouts, bout duration, transitions.

Paper (Results, Figures 4-5): per video and behaviour, the percent of time spent, the number of
bouts and the mean bout duration, compared between model predictions and each annotator;
transition probabilities between behaviours (Figure 5F-H), "computed for each data split and
averaged across splits".

Definitions used here (the paper gives none in its Methods):

* A **bout** of behaviour k is a maximal run of frames with ``labels[:, k] == 1``. Unlabelled
  frames (-1) are not positive, so they end a bout. Bouts touching the first or last frame are
  counted like any other, with their observed (censored) length.
* **Percent of time** = positive frames / labelled frames x 100.
* **Mean bout duration** is undefined for a behaviour without bouts: NaN with ``n_bouts = 0``
  beside it; averages over videos skip such videos and say how many went in (``n_videos``).
* A **transition** i -> j (i != j) is counted at frame t when a bout of i ends at t - 1 and a
  bout of j starts at t. With mutually exclusive labels (background included) this is the
  sequence of bout-to-bout changes; with overlapping labels every ending bout is paired with every
  starting bout of that frame, and a bout ending into an unlabelled frame has no successor.
  Transition *probabilities* are row-normalised counts: P(i -> j) = n(i -> j) / sum_j n(i -> j).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

BOUT_METRICS: tuple[str, ...] = ("percent_time", "n_bouts", "mean_bout_frames", "mean_bout_s")


class BoutError(ValueError):
    """A label matrix that cannot be read as an ethogram."""


def _as_matrix(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2:
        raise BoutError(f"labels must be (T,) or (T, K), got shape {labels.shape}")
    if labels.dtype.kind not in "biu":
        raise BoutError(f"labels must be integers (-1/0/1) or bool, got dtype {labels.dtype}")
    return labels


def find_bouts(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every bout of every behaviour.

    labels: (T, K) (or (T,)) with 1 = present. Returns ``(behaviour, start, stop)``, each (B,)
    int64, sorted by behaviour then start; ``stop`` is exclusive (the bout is ``start:stop``).
    """
    labels = _as_matrix(labels)
    T, K = labels.shape
    padded = np.zeros((K, T + 2), dtype=np.int8)
    padded[:, 1:-1] = (labels == 1).T
    step = np.diff(padded, axis=1)                      # (K, T + 1): +1 onset, -1 offset
    k_on, start = np.nonzero(step == 1)                 # nonzero walks row-major: by k, then t
    k_off, stop = np.nonzero(step == -1)
    return k_on.astype(np.int64), start.astype(np.int64), stop.astype(np.int64)


def bout_lengths(labels: np.ndarray) -> list[np.ndarray]:
    """Per behaviour, the lengths (frames) of its bouts: a list of K int64 arrays."""
    labels = _as_matrix(labels)
    k, start, stop = find_bouts(labels)
    lengths = stop - start
    bounds = np.searchsorted(k, np.arange(labels.shape[1] + 1))
    return [lengths[bounds[i]:bounds[i + 1]] for i in range(labels.shape[1])]


def bout_stats(labels: np.ndarray, fps: float, behaviours: Sequence[str]) -> pd.DataFrame:
    """Long table of bout statistics of one video.

    labels: (T, K). Columns: behaviour, metric (``percent_time``, ``n_bouts``,
    ``mean_bout_frames``, ``mean_bout_s``), value, n_frames (labelled frames), n_bouts.
    """
    labels = _as_matrix(labels)
    T, K = labels.shape
    if len(behaviours) != K:
        raise BoutError(f"{len(behaviours)} behaviour names for {K} label columns")
    if not fps > 0:
        raise BoutError(f"fps must be positive, got {fps}")
    n_labelled = (labels >= 0).sum(axis=0) if labels.dtype.kind != "b" else np.full(K, T)
    n_pos = (labels == 1).sum(axis=0)
    k, start, stop = find_bouts(labels)
    n_bouts = np.bincount(k, minlength=K)
    total_len = np.bincount(k, weights=(stop - start).astype(np.float64), minlength=K)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(n_labelled > 0, 100.0 * n_pos / n_labelled, np.nan)
        mean_len = np.where(n_bouts > 0, total_len / n_bouts, np.nan)
    values = {"percent_time": percent, "n_bouts": n_bouts.astype(np.float64),
              "mean_bout_frames": mean_len, "mean_bout_s": mean_len / float(fps)}
    rows = [(behaviours[i], m, float(values[m][i]), int(n_labelled[i]), int(n_bouts[i]))
            for i in range(K) for m in BOUT_METRICS]
    return pd.DataFrame(rows, columns=["behaviour", "metric", "value", "n_frames", "n_bouts"])


def average_bouts(table: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean of ``value`` over the rows of each group (e.g. over videos), NaN skipped.

    ``by`` names the grouping columns (e.g. ``["source", "behaviour", "metric"]``). Adds
    ``n_videos``: how many rows had a defined value (a video without bouts of a behaviour has no
    mean duration and is left out of that mean, not counted as 0).
    """
    grouped = table.groupby(list(by), sort=False, dropna=False)["value"]
    out = grouped.agg(value="mean", n_videos="count").reset_index()
    return out


def transition_counts(labels: np.ndarray) -> np.ndarray:
    """(K, K) int64: ``counts[i, j]`` = number of frames where a bout of i ends and one of j starts.

    labels: (T, K). The diagonal is always 0 (a behaviour cannot end and start on one frame).
    """
    labels = _as_matrix(labels)
    K = labels.shape[1]
    present = labels == 1
    if present.shape[0] < 2:
        return np.zeros((K, K), dtype=np.int64)
    ends = present[:-1] & ~present[1:]      # (T - 1, K): bout of k ends at t (last frame t)
    starts = ~present[:-1] & present[1:]    # (T - 1, K): bout of k starts at t + 1
    rows = np.flatnonzero(ends.any(axis=1) & starts.any(axis=1))
    if rows.size == 0:
        return np.zeros((K, K), dtype=np.int64)
    # only the few boundary frames go into the product; float64 sums of 0/1 are exact here
    counts = ends[rows].T.astype(np.float64) @ starts[rows].astype(np.float64)
    return np.rint(counts).astype(np.int64)


def transition_probabilities(counts: np.ndarray) -> np.ndarray:
    """Row-normalised (K, K) transition probabilities; NaN rows for behaviours never left."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / totals, np.nan)


def transition_table(counts: np.ndarray, behaviours: Sequence[str]) -> pd.DataFrame:
    """Long table of a (K, K) count matrix: from_behaviour, to_behaviour, metric
    (``count`` or ``probability``), value, n_from (transitions out of ``from_behaviour``)."""
    counts = np.asarray(counts)
    K = len(behaviours)
    if counts.shape != (K, K):
        raise BoutError(f"transition counts of shape {counts.shape} for {K} behaviours")
    probs = transition_probabilities(counts)
    n_from = counts.sum(axis=1)
    i, j = np.meshgrid(np.arange(K), np.arange(K), indexing="ij")
    i, j = i.ravel(), j.ravel()
    names = np.asarray(list(behaviours), dtype=object)
    frames = []
    for metric, values in (("count", counts.ravel().astype(np.float64)), ("probability", probs.ravel())):
        frames.append(pd.DataFrame({"from_behaviour": names[i], "to_behaviour": names[j], "metric": metric,
                                    "value": values, "n_from": n_from[i]}))
    return pd.concat(frames, ignore_index=True)
