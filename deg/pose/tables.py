"""The tidy tables of a pose-method run: the same files and columns as :mod:`deg.evaluate`.

A pose run scores its predictions on the split's test units against the training annotator,
with the same metric, shuffle and bout functions as DEG's runs (:mod:`deg.metrics`,
:mod:`deg.bouts`), and the other annotators on the same units (human agreement, where a dataset
has several annotators). ``source`` is ``model`` for the method's predictions, ``shuffle`` for
chance and the annotator's name for humans; ``preset`` is the method name (``pose_mlp``, ...).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deg import bouts, io, metrics
from deg.evaluate import (AGREEMENT_COLUMNS, BOUT_COLUMNS, METRIC_COLUMNS, TRANSITION_COLUMNS,
                          agreement_table, pair_for_metrics, train_frames_table)


def _tagged(table: pd.DataFrame, columns, **tags: Any) -> pd.DataFrame:
    """``table`` with constant columns ``tags`` added, restricted to ``columns`` (NaN for the rest)."""
    out = table.assign(**tags)
    return out.reindex(columns=list(columns))


def _metrics(pairs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], behaviours, **tags) -> list[pd.DataFrame]:
    frames = [_tagged(metrics.metrics_table(t, p, s, behaviours), METRIC_COLUMNS, video=v, n_videos=1,
                      n_repeats=0, **tags) for v, (t, p, s) in pairs.items()]
    cat = [np.concatenate([x[i] for x in pairs.values()]) for i in range(3)]
    frames.append(_tagged(metrics.metrics_table(*cat, behaviours), METRIC_COLUMNS, video="all",
                          n_videos=len(pairs), n_repeats=0, **tags))
    return frames


def _bouts(matrices: dict[str, np.ndarray], fps: float, behaviours, **tags) -> list[pd.DataFrame]:
    per = [_tagged(bouts.bout_stats(m, fps, behaviours), BOUT_COLUMNS, video=v, n_videos=1, **tags)
           for v, m in matrices.items()]
    mean = bouts.average_bouts(pd.concat(per, ignore_index=True), ["behaviour", "metric"])
    return per + [_tagged(mean, BOUT_COLUMNS, video="mean", **tags)]


def _transitions(matrices: dict[str, np.ndarray], behaviours, **tags) -> list[pd.DataFrame]:
    counts = {v: bouts.transition_counts(m) for v, m in matrices.items()}
    frames = [_tagged(bouts.transition_table(c, behaviours), TRANSITION_COLUMNS, video=v, **tags)
              for v, c in counts.items()]
    frames.append(_tagged(bouts.transition_table(np.sum(list(counts.values()), axis=0), behaviours),
                          TRANSITION_COLUMNS, video="all", **tags))
    return frames


def evaluate_predictions(run_dir: Path, pose_set, split, preds: dict[str, np.ndarray], scores: dict[str, np.ndarray],
                         profile: str, method: str, split_name: str, shuffle_repeats: int,
                         seed: int = 0) -> dict[str, pd.DataFrame]:
    """Write metrics / bouts / transitions / train_frames (/ agreement) CSVs into ``run_dir``.

    preds, scores: unit -> (T, K) of the split's test units (uint8 0/1 and float).
    """
    behaviours = list(pose_set.behaviours)
    units = list(split.test)
    truth_name = pose_set.train_annotator
    tags = dict(profile=profile, dataset=pose_set.dataset_id, preset=method, split=split_name, subset="test")
    truth = {u: pose_set.labels[u] for u in units}
    frames = _metrics({u: (truth[u], preds[u], scores[u]) for u in units}, behaviours, source="model",
                      truth=truth_name, **tags)
    shuffle = metrics.shuffle_table([truth[u] for u in units], [preds[u] for u in units],
                                    [scores[u] for u in units], behaviours, shuffle_repeats, seed)
    frames.append(_tagged(shuffle, METRIC_COLUMNS, video="all", source="shuffle", truth=truth_name,
                          n_videos=len(units), **tags))
    humans = {a: {u: m[u] for u in units if u in m} for a, m in pose_set.humans.items()}
    humans = {a: m for a, m in humans.items() if m}
    for annotator, labels in humans.items():
        pairs = {}
        for u, lab in labels.items():
            t, p = pair_for_metrics(truth[u], lab)
            pairs[u] = (t, p, p.astype(np.float32))
        frames += _metrics(pairs, behaviours, source=annotator, truth=truth_name, **tags)
    ethograms = {"model": {u: preds[u] for u in units}, truth_name: truth, **humans}
    bout_frames, transition_frames = [], []
    for source, matrices in ethograms.items():
        bout_frames += _bouts(matrices, pose_set.fps, behaviours, source=source, **tags)
        transition_frames += _transitions(matrices, behaviours, source=source, **tags)
    tables = {
        "metrics": pd.concat(frames, ignore_index=True)[METRIC_COLUMNS],
        "bouts": pd.concat(bout_frames, ignore_index=True)[BOUT_COLUMNS],
        "transitions": pd.concat(transition_frames, ignore_index=True)[TRANSITION_COLUMNS],
        "train_frames": train_frames_table({u: pose_set.labels[u] for u in split.train}, behaviours,
                                           **{k: tags[k] for k in ("profile", "dataset", "preset", "split")}),
    }
    agreement = []
    for annotator, labels in humans.items():
        both = [u for u in units if u in labels]
        agreement.append(agreement_table(np.concatenate([truth[u] for u in both]),
                                         np.concatenate([labels[u] for u in both]),
                                         {"model": (np.concatenate([preds[u] for u in both]),
                                                    np.concatenate([scores[u] for u in both]))},
                                         behaviours, video="all", truth=truth_name, other=annotator,
                                         n_videos=len(both), **tags))
    if agreement:
        tables["agreement"] = pd.concat(agreement, ignore_index=True)[AGREEMENT_COLUMNS]
    for name, table in tables.items():
        io.write_csv(Path(run_dir) / f"{name}.csv", table)
    return tables
