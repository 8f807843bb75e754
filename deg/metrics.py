"""Frame-level metrics of an ethogram: accuracy, F1, precision, recall, AUROC; the shuffle (chance).

Paper (Methods, "Evaluation and metrics"): overall accuracy over every element of the (T, K)
ethogram; F1 per behaviour and its mean over behaviours (``sklearn.metrics.f1_score(average=
'macro')``); AUROC per behaviour and its mean (``roc_auc_score(average='macro')``). Precision
and recall are in the figure supplements. "Shuffle": each video's labels are circularly shifted
by a random offset, 100 times; every metric is computed per repeat and averaged over repeats.

Conventions (all arrays are (T, K), column 0 = ``background``):

* ``labels`` int: 1 present, 0 absent, -1 unlabelled. Unlabelled *elements* are left out of
  every count, so a mask can also be made per behaviour (agreement strata use that).
* ``preds`` 0/1 (uint8 or bool); ``scores`` float probabilities (or 0/1 predictions of a
  human annotator, which gives the AUROC of a binary rater).
* A behaviour with no positive frame in the ground truth is **absent**: its recall, F1 and
  AUROC are undefined (NaN, ``status="absent"``) and it is left out of the macro means, whose
  rows carry ``n_averaged`` (how many behaviours went into the mean). sklearn would instead put a
  0 into the mean; our macro equals ``f1_score(average='macro', labels=<present behaviours>)``.
* Precision of a present behaviour that the model never predicts is 0 (sklearn's
  ``zero_division=0``); the row's ``n_pred = 0`` says why.
* AUROC is undefined when a behaviour has no negative frame (``status="no_negatives"``).

Speed: confusion counts are one ``np.bincount`` per block of rows (no per-frame loop); AUROC
is the Mann-Whitney U statistic computed from sorted scores (average ranks for ties), one sort
per behaviour (behaviours in parallel threads: numpy's sort releases the GIL). 10 M frames x 10
behaviours: about 1 s of counts and 5-10 s of AUROC on a busy 2-core CPU.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

METRICS: tuple[str, ...] = ("accuracy", "f1", "precision", "recall", "auroc")
MACRO = "macro"            # aggregate over every behaviour, background included
MACRO_NOBG = "macro_nobg"  # aggregate over every behaviour except background (column 0)
_BLOCK = 1 << 16           # rows per bincount block: keeps temporaries in cache


class MetricsError(ValueError):
    """Labels, predictions or scores of the wrong shape or values."""


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------
def _check_labels(labels: np.ndarray, what: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise MetricsError(f"{what} must be (T, K), got shape {labels.shape}")
    if labels.dtype.kind == "b":
        return labels.view(np.int8)
    if labels.dtype.kind not in "iu":
        raise MetricsError(f"{what} must be integers (-1/0/1), got dtype {labels.dtype}")
    if labels.size and (labels.min() < -1 or labels.max() > 1):
        raise MetricsError(f"{what} must hold only -1, 0, 1; found values in "
                           f"[{labels.min()}, {labels.max()}]")
    return labels.astype(np.int8, copy=False)


def _check_preds(preds: np.ndarray, shape: tuple[int, ...], what: str = "preds") -> np.ndarray:
    preds = np.asarray(preds)
    if preds.shape != shape:
        raise MetricsError(f"{what} shape {preds.shape} differs from labels shape {shape}")
    if preds.dtype.kind == "b":
        return preds.view(np.int8)
    if preds.dtype.kind not in "iu":
        raise MetricsError(f"{what} must be 0/1 integers, got dtype {preds.dtype}")
    if preds.size and (preds.min() < 0 or preds.max() > 1):
        raise MetricsError(f"{what} must hold only 0 and 1; found values in [{preds.min()}, {preds.max()}]")
    return preds.astype(np.int8, copy=False)


def _check_scores(scores: np.ndarray, shape: tuple[int, ...], what: str = "scores") -> np.ndarray:
    scores = np.asarray(scores)
    if scores.shape != shape:
        raise MetricsError(f"{what} shape {scores.shape} differs from labels shape {shape}")
    if scores.dtype.kind not in "fiub":
        raise MetricsError(f"{what} must be numeric, got dtype {scores.dtype}")
    if scores.dtype.kind == "f" and not np.isfinite(scores).all():
        raise MetricsError(f"{what} contain NaN or infinite values")
    return scores


# --------------------------------------------------------------------------------------
# Confusion counts
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Confusion:
    """Per-behaviour confusion counts, each (K,) int64; unlabelled elements excluded."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    @property
    def n_true(self) -> np.ndarray:
        return self.tp + self.fn

    @property
    def n_pred(self) -> np.ndarray:
        return self.tp + self.fp

    @property
    def n_valid(self) -> np.ndarray:
        return self.tp + self.fp + self.fn + self.tn


def confusion_counts(labels: np.ndarray, preds: np.ndarray) -> Confusion:
    """Confusion counts of ``preds`` (T, K) 0/1 against ``labels`` (T, K) -1/0/1.

    Each element gets a code ``2 * (label + 1) + pred`` in 0..5 (0-1: unlabelled, 2: TN, 3: FP,
    4: FN, 5: TP); one ``bincount`` per block of rows, offset by ``6 * k``, counts all K columns.
    """
    labels = _check_labels(labels)
    preds = _check_preds(preds, labels.shape)
    T, K = labels.shape
    offsets = (np.arange(K, dtype=np.intp) * 6)[None, :]
    totals = np.zeros(6 * K, dtype=np.int64)
    for start in range(0, T, _BLOCK):
        code8 = labels[start:start + _BLOCK] * np.int8(2)   # int8 arithmetic: 1 byte per element
        code8 += preds[start:start + _BLOCK]
        code = code8.astype(np.intp)
        code += offsets + 2
        totals += np.bincount(code.ravel(), minlength=6 * K)
    cells = totals.reshape(K, 6)
    return Confusion(tp=cells[:, 5].copy(), fp=cells[:, 3].copy(), fn=cells[:, 4].copy(), tn=cells[:, 2].copy())


# --------------------------------------------------------------------------------------
# AUROC via ranks (Mann-Whitney U)
# --------------------------------------------------------------------------------------
def _auroc_1d(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUROC from the scores of positives (n1,) and negatives (n0,); NaN if either is empty.

    The Mann-Whitney U statistic: pairs (positive, negative) with the positive scored higher,
    ties counted one half -- identical to summing the average ranks of the positives. The
    smaller set is searched in the larger one (both sorted, so searchsorted walks forwards).
    """
    n1, n0 = pos.size, neg.size
    if n1 == 0 or n0 == 0:
        return float("nan")
    pos.sort()   # in place: both are fresh copies made by boolean indexing
    neg.sort()
    if n1 <= n0:
        # per positive: negatives strictly below it
        lower = np.searchsorted(neg, pos, side="left")
        u = lower.sum(dtype=np.float64)
        tied = _ties(pos, neg, lower)
    else:
        # per negative: positives strictly above it = n1 - (below it) - (tied with it)
        lower = np.searchsorted(pos, neg, side="left")
        tied = _ties(neg, pos, lower)
        u = float(n1) * n0 - lower.sum(dtype=np.float64) - tied
    return float((u + 0.5 * tied) / (float(n1) * float(n0)))


def _ties(queries: np.ndarray, ref: np.ndarray, left: np.ndarray) -> float:
    """Number of (query, ref) pairs with equal values; ``left = searchsorted(ref, queries, 'left')``.

    Only queries that equal ``ref[left]`` can tie, so continuous scores need no second search.
    """
    inside = left < ref.size
    maybe = np.zeros(queries.shape, dtype=bool)
    maybe[inside] = ref[left[inside]] == queries[inside]
    if not maybe.any():
        return 0.0
    right = np.searchsorted(ref, queries[maybe], side="right")
    return float((right - left[maybe]).sum(dtype=np.float64))


def auroc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(K,) AUROC per behaviour; unlabelled elements dropped; NaN where a class is empty.

    Equal to ``sklearn.metrics.roc_auc_score(labels[:, k], scores[:, k])`` (ties get half credit).
    """
    labels = _check_labels(labels)
    scores = _check_scores(scores, labels.shape)
    has_unlabelled = labels.size > 0 and labels.min() < 0

    def one(k: int) -> float:
        y = labels[:, k]
        s = scores[:, k]
        if s.dtype.kind == "f":
            s = s + s.dtype.type(0)  # -0.0 -> +0.0 so that they tie, as in sklearn
        is_pos = y == 1
        is_neg = (y == 0) if has_unlabelled else ~is_pos
        return _auroc_1d(s[is_pos], s[is_neg])

    K = labels.shape[1]
    if labels.shape[0] * K < 1_000_000:
        return np.array([one(k) for k in range(K)], dtype=np.float64)
    # numpy's sort and searchsorted release the GIL: behaviours run in parallel threads
    with ThreadPoolExecutor(max_workers=min(K, os.cpu_count() or 1)) as pool:
        return np.array(list(pool.map(one, range(K))), dtype=np.float64)


class _RankedScores:
    """Average ranks of fixed scores (T, K), for AUROC against many relabellings (shuffle).

    AUROC_k = (sum of ranks of positives - n1 (n1 + 1) / 2) / (n1 n0); valid only when every
    element is labelled (the rank set is then the same for every relabelling).
    """

    def __init__(self, scores: np.ndarray):
        from scipy.stats import rankdata

        self.ranks = rankdata(scores, method="average", axis=0)

    def auroc(self, labels: np.ndarray) -> np.ndarray:
        pos = labels == 1
        n1 = pos.sum(axis=0).astype(np.float64)
        n0 = labels.shape[0] - n1
        rank_sum = np.einsum("tk,tk->k", self.ranks, pos)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)
        out[(n1 == 0) | (n0 == 0)] = np.nan
        return out


# --------------------------------------------------------------------------------------
# Metric values
# --------------------------------------------------------------------------------------
def per_behaviour(conf: Confusion, auc: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """{metric: (K,) float}; NaN where undefined (see module docstring)."""
    tp, fp, fn, tn = (a.astype(np.float64) for a in (conf.tp, conf.fp, conf.fn, conf.tn))
    n_true, n_pred, n_valid = tp + fn, tp + fp, tp + fp + fn + tn
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n_valid > 0, (tp + tn) / n_valid, np.nan)
        recall = np.where(n_true > 0, tp / n_true, np.nan)
        # zero_division=0 for a present behaviour never predicted; NaN if also absent
        precision = np.where(n_pred > 0, tp / n_pred, np.where(n_true > 0, 0.0, np.nan))
        f1 = np.where(n_true > 0, 2 * tp / (n_true + n_pred), np.nan)
    auc = np.full(tp.shape, np.nan) if auc is None else np.asarray(auc, dtype=np.float64)
    return {"accuracy": accuracy, "f1": f1, "precision": precision, "recall": recall, "auroc": auc}


def _status(conf: Confusion) -> np.ndarray:
    status = np.full(conf.tp.shape, "ok", dtype=object)
    status[conf.n_true == conf.n_valid] = "no_negatives"
    status[conf.n_true == 0] = "absent"
    status[conf.n_valid == 0] = "unlabelled"
    return status


def _rows(behaviours: Sequence[str], conf: Confusion, values: dict[str, np.ndarray],
          with_auroc: bool) -> dict[str, list]:
    """Columnar rows of the metrics table in a fixed order (so repeats can be averaged)."""
    K = len(behaviours)
    metrics = [m for m in METRICS if with_auroc or m != "auroc"]
    status = _status(conf)
    cols: dict[str, list] = {k: [] for k in ("behaviour", "metric", "value", "n_true", "n_pred",
                                             "n_frames", "n_averaged", "status")}

    def add(behaviour, metric, value, n_true, n_pred, n_frames, n_avg, st):
        for key, val in zip(cols, (behaviour, metric, value, n_true, n_pred, n_frames, n_avg, st)):
            cols[key].append(val)

    for k in range(K):
        for m in metrics:
            add(behaviours[k], m, values[m][k], int(conf.n_true[k]), int(conf.n_pred[k]),
                int(conf.n_valid[k]), 1, status[k])
    groups = [(MACRO, np.arange(K))]
    if K > 1 and behaviours[0] == "background":
        groups.append((MACRO_NOBG, np.arange(1, K)))
    for name, idx in groups:
        n_true, n_pred = int(conf.n_true[idx].sum()), int(conf.n_pred[idx].sum())
        n_valid = int(conf.n_valid[idx].sum())
        for m in metrics:
            if m == "accuracy":
                # pooled over every labelled element of the ethogram (paper: "overall accuracy");
                # equals the mean of per-behaviour accuracies when all columns share one mask
                correct = (conf.tp[idx] + conf.tn[idx]).sum()
                value, n_avg = (correct / n_valid if n_valid else np.nan), len(idx)
            else:
                v = values[m][idx]
                ok = ~np.isnan(v)
                value, n_avg = (float(v[ok].mean()) if ok.any() else np.nan), int(ok.sum())
            add(name, m, value, n_true, n_pred, n_valid, n_avg, "ok" if n_avg else "empty")
    return cols


def metrics_table(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray | None,
                  behaviours: Sequence[str]) -> pd.DataFrame:
    """Long table of every metric for one (labels, predictions) pair.

    labels (T, K) -1/0/1, preds (T, K) 0/1, scores (T, K) float or None (no AUROC rows).
    Columns: behaviour (a behaviour name, ``macro`` or ``macro_nobg``), metric, value, n_true,
    n_pred, n_frames (labelled elements), n_averaged (behaviours in a macro mean), status.
    """
    labels = _check_labels(labels)
    if len(behaviours) != labels.shape[1]:
        raise MetricsError(f"{len(behaviours)} behaviour names for {labels.shape[1]} label columns")
    conf = confusion_counts(labels, preds)
    auc = auroc(labels, scores) if scores is not None else None
    return pd.DataFrame(_rows(list(behaviours), conf, per_behaviour(conf, auc), scores is not None))


# --------------------------------------------------------------------------------------
# Shuffle (chance level)
# --------------------------------------------------------------------------------------
def circular_shift(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Labels (T, K) rolled along time by a random offset in 1..T-1 (0 for T <= 1).

    The offset is never 0 so that every repeat breaks the frame correspondence; each column
    keeps its values (same label distribution, same bouts up to the one that wraps around).
    """
    T = labels.shape[0]
    offset = int(rng.integers(1, T)) if T > 1 else 0
    return np.roll(labels, offset, axis=0), offset


def shuffle_table(labels_list: Sequence[np.ndarray], preds_list: Sequence[np.ndarray],
                  scores_list: Sequence[np.ndarray] | None, behaviours: Sequence[str],
                  n_repeats: int, seed: int | np.random.Generator) -> pd.DataFrame:
    """Chance-level metrics: per repeat, shift each video's labels, pool videos, compute all metrics.

    ``labels_list[i]`` (T_i, K), ``preds_list[i]`` (T_i, K), ``scores_list[i]`` (T_i, K) or None.
    Returns :func:`metrics_table`'s columns, values averaged over ``n_repeats`` (NaN repeats
    skipped; counts are averages too; ``status`` is the first repeat's, which every repeat shares
    when all frames are labelled, a circular shift keeping each column's counts), plus ``n_repeats``.
    """
    if n_repeats < 1:
        raise MetricsError(f"n_repeats must be >= 1, got {n_repeats}")
    if len(labels_list) != len(preds_list) or (scores_list is not None and len(scores_list) != len(labels_list)):
        raise MetricsError("labels, preds and scores lists differ in length")
    if not labels_list:
        raise MetricsError("shuffle_table needs at least one video")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    labels_list = [_check_labels(lab) for lab in labels_list]
    preds = np.concatenate([_check_preds(p, lab.shape) for p, lab in zip(preds_list, labels_list)])
    scores = None
    if scores_list is not None:
        scores = np.concatenate([_check_scores(s, lab.shape) for s, lab in zip(scores_list, labels_list)])
    behaviours = list(behaviours)
    if len(behaviours) != preds.shape[1]:
        raise MetricsError(f"{len(behaviours)} behaviour names for {preds.shape[1]} label columns")
    fully_labelled = all(lab.min(initial=0) >= 0 for lab in labels_list)
    ranked = _RankedScores(scores) if scores is not None and fully_labelled else None

    values, counts, status = [], [], None
    for _ in range(n_repeats):
        shifted = np.concatenate([circular_shift(lab, rng)[0] for lab in labels_list])
        conf = confusion_counts(shifted, preds)
        if scores is None:
            auc = None
        elif ranked is not None:
            auc = ranked.auroc(shifted)
        else:
            auc = auroc(shifted, scores)
        cols = _rows(behaviours, conf, per_behaviour(conf, auc), scores is not None)
        values.append(cols["value"])
        counts.append([cols["n_true"], cols["n_pred"], cols["n_frames"], cols["n_averaged"]])
        status = cols if status is None else status
    values_arr = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = ~np.isnan(values_arr)
        mean = np.where(ok.any(0), np.nansum(values_arr, 0) / np.maximum(ok.sum(0), 1), np.nan)
    count_mean = np.asarray(counts, dtype=np.float64).mean(axis=0)
    return pd.DataFrame({
        "behaviour": status["behaviour"], "metric": status["metric"], "value": mean,
        "n_true": count_mean[0], "n_pred": count_mean[1], "n_frames": count_mean[2],
        "n_averaged": count_mean[3], "status": status["status"], "n_repeats": n_repeats,
    })
