"""Evaluation of a run folder and of human annotators: the tables every figure panel reads.

:func:`evaluate_run` reads a run folder written by the training pipeline
(``results/<profile>/<dataset>/<preset>/<split>/``: ``split.json`` and
``predictions/<video>.npz``, arrays :data:`PREDICTION_ARRAYS`) and writes
five tables beside them; :func:`evaluate_humans` writes the human-vs-human tables of a dataset
(``results/<profile>/<dataset>/humans/``). Model, feature extractor, shuffle and annotators all
go through the same functions (:mod:`deg.metrics`, :mod:`deg.bouts`), so "human performance" is
computed exactly like model performance (paper, Results: "defining one labeler as the 'ground
truth' and the other labelers as 'predictions' and then computing the same performance
metrics").

## Output tables

All tables are long ("tidy") CSV files: one value per row, so every figure panel is one filter
of one table. Columns shared by all of them:

| column | meaning |
|---|---|
| `profile`, `dataset`, `preset`, `split` | the run (`preset` is `human` and `split` is `all` in `humans/` tables) |
| `subset` | videos evaluated: `test`; `val` for Figure 6 subsample runs, which have no test set; `all` for `humans/` |
| `video` | a video name; `all` = every evaluated video pooled (frames concatenated); `mean` = mean over videos |
| `source` | who produced the ethogram: `model` (sequence model), `feature_extractor` (both streams fused), `flow_stream` / `spatial_stream` (one stream's own logits, when the run wrote them), `shuffle` (chance), or an annotator's name |

**`metrics.csv`** (frame-level performance of `source` against `truth`)

| column | meaning |
|---|---|
| `truth` | the annotator used as ground truth (the training annotator for model rows) |
| `behaviour` | a behaviour name (`background` included), `macro` (aggregate over all behaviours) or `macro_nobg` (aggregate without `background`) |
| `metric` | `accuracy`, `f1`, `precision`, `recall`, `auroc` |
| `value` | the metric; for `macro*` rows F1/precision/recall/AUROC are means over behaviours (sklearn `average='macro'`) and accuracy is pooled over all elements of the (T, K) ethogram (the paper's "overall accuracy") |
| `n_true`, `n_pred`, `n_frames` | positive frames in `truth`, positive frames predicted, labelled frames (summed over behaviours in `macro*` rows) |
| `n_averaged` | behaviours that went into a `macro*` mean (absent behaviours are left out); 1 on behaviour rows |
| `status` | `ok`; `absent` (no positive frame in `truth`: recall, F1, AUROC are NaN, never 0); `no_negatives` (AUROC NaN); `unlabelled`; `empty` (a macro with nothing to average) |
| `n_repeats` | shuffle repeats averaged (`shuffle` rows; 0 elsewhere) |
| `n_videos` | videos pooled into the row |

Human rows score annotator `source` against annotator `truth` (AUROC of a 0/1 rater). In a run's
table they cover the run's evaluated videos (so they pair with model rows split by split); the
`humans/` table holds every ordered pair of annotators, per video and pooled.

**`bouts.csv`**: `behaviour`, `metric` (`percent_time`, `n_bouts`, `mean_bout_frames`,
`mean_bout_s`), `value`, `n_frames` and `n_bouts` (per-video rows), `n_videos` (`mean` rows:
videos with a defined value; a video without bouts of a behaviour has no mean duration).

**`transitions.csv`**: `from_behaviour`, `to_behaviour`, `metric` (`count`, `probability` =
row-normalised counts), `value`, `n_from` (transitions out of `from_behaviour`). `video = all`
rows pool the counts of every evaluated video before normalising (the paper's per-split matrix).

**`train_frames.csv`** (run folders; Figures 3M, 6D-E): `behaviour`, `metric` (`n_positive`:
positive training frames of the training annotator; `percent_positive`: their percent of
labelled training frames), `value`, `n_frames`, `n_videos`.

**`agreement.csv`** (run folders of datasets with >= 2 annotators; Figure 3N-O): the columns of
`metrics.csv` plus `other` (the second annotator) and `stratum` (`agree` / `disagree`): the
model's metrics against `truth` on the elements (frame, behaviour) where `truth` and `other`
agree, and on those where they disagree.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from deg import bouts, cli, io, metrics
from deg.presets import HPARAMS, PROFILES

# predictions/<video>.npz: (probabilities, postprocessed predictions) arrays of each model source.
# The two streams' own ethograms say what each stream sees (the flow stream on motion-only
# behaviours); runs whose features predate them lack those arrays, which are optional.
PREDICTION_ARRAYS = {"model": ("probs", "preds"), "feature_extractor": ("fe_probs", "fe_preds"),
                     "flow_stream": ("flow_probs", "flow_preds"), "spatial_stream": ("spatial_probs", "spatial_preds")}
OPTIONAL_SOURCES = ("flow_stream", "spatial_stream")
SOURCES = (*PREDICTION_ARRAYS, "shuffle")
METRIC_COLUMNS = ["profile", "dataset", "preset", "split", "subset", "video", "source", "truth", "behaviour",
                  "metric", "value", "n_true", "n_pred", "n_frames", "n_averaged", "status", "n_repeats",
                  "n_videos"]
BOUT_COLUMNS = ["profile", "dataset", "preset", "split", "subset", "video", "source", "behaviour", "metric",
                "value", "n_frames", "n_bouts", "n_videos"]
TRANSITION_COLUMNS = ["profile", "dataset", "preset", "split", "subset", "video", "source", "from_behaviour",
                      "to_behaviour", "metric", "value", "n_from"]
TRAIN_FRAME_COLUMNS = ["profile", "dataset", "preset", "split", "behaviour", "metric", "value", "n_frames",
                       "n_videos"]
AGREEMENT_COLUMNS = METRIC_COLUMNS + ["other", "stratum"]


class EvaluationError(ValueError):
    """A run folder or dataset that cannot be evaluated; the message names the file."""


# --------------------------------------------------------------------------------------
# Reading a run folder
# --------------------------------------------------------------------------------------
def read_split(run_dir: Path) -> dict[str, list[str]]:
    path = Path(run_dir) / "split.json"
    if not path.exists():
        raise EvaluationError(f"{path}: missing; the run has not been written (run the pipeline first)")
    split = io.read_json(path)
    if not isinstance(split, dict) or not all(isinstance(split.get(k, []), list) for k in ("train", "val", "test")):
        raise EvaluationError(f"{path}: expected {{'train': [...], 'val': [...], 'test': [...]}}")
    return {k: list(split.get(k, [])) for k in ("train", "val", "test")}


def read_predictions(run_dir: Path, video: str, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The arrays of ``predictions/<video>.npz``, each checked to be (T, K) = ``shape``."""
    path = Path(run_dir) / "predictions" / f"{video}.npz"
    if not path.exists():
        raise EvaluationError(f"{path}: missing predictions for video {video!r}")
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{path}: not a readable npz file ({exc})") from exc
    required = [k for source, keys in PREDICTION_ARRAYS.items() if source not in OPTIONAL_SOURCES for k in keys]
    missing = [k for k in required if k not in arrays]
    if missing:
        raise EvaluationError(f"{path}: lacks array(s) {missing} (has {sorted(arrays)})")
    for key in [k for keys in PREDICTION_ARRAYS.values() for k in keys if k in arrays]:
        if arrays[key].shape != shape:
            raise EvaluationError(f"{path}: {key!r} has shape {arrays[key].shape}, labels are {shape}")
        if key.endswith("preds") and arrays[key].size and not np.isin(arrays[key], (0, 1)).all():
            raise EvaluationError(f"{path}: {key!r} must hold only 0 and 1")
        if key.endswith("probs") and not np.isfinite(arrays[key]).all():
            raise EvaluationError(f"{path}: {key!r} contains NaN or infinite values")
    return arrays


def _labels(dataset, video: str, annotator: str) -> np.ndarray:
    """(T, K) labels of ``annotator``; a file whose length differs from the training annotator's
    file of the same video is an error naming both files (not a shape mismatch later)."""
    try:
        matrix = np.asarray(dataset.labels(video, annotator))
    except FileNotFoundError as exc:
        raise EvaluationError(f"{dataset.label_path(video, annotator)}: no labels of {annotator!r} for "
                              f"video {video!r}") from exc
    reference = dataset.train_annotator
    if annotator != reference and dataset.has_labels(video, reference):
        n_reference = len(dataset.labels(video, reference))
        if len(matrix) != n_reference:
            raise EvaluationError(f"{dataset.label_path(video, annotator)}: {len(matrix)} label rows, but "
                                  f"{dataset.label_path(video, reference)} ({reference!r}, the training annotator) "
                                  f"has {n_reference} for video {video!r}; every annotator needs one row per frame")
    return matrix


def _has_labels(dataset, video: str, annotator: str) -> bool:
    return dataset.has_labels(video, annotator)


# --------------------------------------------------------------------------------------
# Building blocks (one (truth, prediction) pair -> long rows)
# --------------------------------------------------------------------------------------
def pair_for_metrics(truth: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction) of two annotators: elements unlabelled by either are masked (-1 in
    truth, 0 in prediction), so that A-vs-B and B-vs-A count the same elements."""
    truth = np.asarray(truth, dtype=np.int8)
    other = np.asarray(other)
    if truth.shape != other.shape:
        raise EvaluationError(f"annotator label matrices differ in shape: {truth.shape} vs {other.shape}")
    masked = np.where(other < 0, np.int8(-1), truth).astype(np.int8)
    return masked, (other == 1).astype(np.uint8)


def _with(table: pd.DataFrame, columns: Sequence[str], **values: Any) -> pd.DataFrame:
    """``table`` restricted to ``columns``: constants from ``values``, NaN for the rest.

    Built in one DataFrame call (column-by-column assignment is the slow part of pandas).
    """
    data = {}
    for col in columns:
        if col in values:
            data[col] = values[col]
        elif col in table.columns:
            data[col] = table[col].to_numpy()
        else:
            data[col] = np.nan
    return pd.DataFrame(data, index=pd.RangeIndex(len(table)), columns=list(columns))


def _metric_rows(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray | None, behaviours: list[str], /,
                 **tags: Any) -> pd.DataFrame:
    table = metrics.metrics_table(labels, preds, scores, behaviours)
    tags.setdefault("n_repeats", 0)
    return _with(table, METRIC_COLUMNS, **tags)


def _per_video_and_pooled(pairs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                          behaviours: list[str], /, **tags: Any) -> list[pd.DataFrame]:
    """Metrics per video and pooled over videos ("all"); pairs: video -> (truth, preds, scores)."""
    if not pairs:
        return []
    frames = [_metric_rows(t, p, s, behaviours, video=v, n_videos=1, **tags) for v, (t, p, s) in pairs.items()]
    truth = np.concatenate([t for t, _, _ in pairs.values()])
    preds = np.concatenate([p for _, p, _ in pairs.values()])
    scores = None if any(s is None for _, _, s in pairs.values()) else np.concatenate([s for _, _, s in pairs.values()])
    frames.append(_metric_rows(truth, preds, scores, behaviours, video="all", n_videos=len(pairs), **tags))
    return frames


def _bout_rows(matrices: dict[str, np.ndarray], fps: float, behaviours: list[str],
               **tags: Any) -> list[pd.DataFrame]:
    """Bout statistics per video and their mean over videos ("mean")."""
    if not matrices:
        return []
    per_video = [_with(bouts.bout_stats(m, fps, behaviours), BOUT_COLUMNS, video=v, n_videos=1, **tags)
                 for v, m in matrices.items()]
    stacked = pd.concat(per_video, ignore_index=True)
    mean = bouts.average_bouts(stacked, ["behaviour", "metric"])
    return per_video + [_with(mean, BOUT_COLUMNS, video="mean", **tags)]


def _transition_rows(matrices: dict[str, np.ndarray], behaviours: list[str], **tags: Any) -> list[pd.DataFrame]:
    """Transition counts/probabilities per video and pooled over videos ("all")."""
    if not matrices:
        return []
    counts = {v: bouts.transition_counts(m) for v, m in matrices.items()}
    frames = [_with(bouts.transition_table(c, behaviours), TRANSITION_COLUMNS, video=v, **tags)
              for v, c in counts.items()]
    pooled = np.sum(list(counts.values()), axis=0)
    frames.append(_with(bouts.transition_table(pooled, behaviours), TRANSITION_COLUMNS, video="all", **tags))
    return frames


def _concat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True)[list(columns)]


def train_frames_table(labels: dict[str, np.ndarray], behaviours: list[str], **tags: Any) -> pd.DataFrame:
    """Positive training frames per behaviour: ``n_positive`` and ``percent_positive`` rows."""
    if not labels:
        raise EvaluationError("no training videos to count positive frames in")
    stacked = np.concatenate(list(labels.values()))
    n_pos = (stacked == 1).sum(axis=0)
    n_lab = (stacked >= 0).sum(axis=0)
    percent = np.where(n_lab > 0, 100.0 * n_pos / np.maximum(n_lab, 1), np.nan)
    rows = []
    for k, name in enumerate(behaviours):
        rows.append({"behaviour": name, "metric": "n_positive", "value": float(n_pos[k]), "n_frames": int(n_lab[k])})
        rows.append({"behaviour": name, "metric": "percent_positive", "value": float(percent[k]),
                     "n_frames": int(n_lab[k])})
    return _with(pd.DataFrame(rows), TRAIN_FRAME_COLUMNS, n_videos=len(labels), **tags)


def agreement_table(truth: np.ndarray, other: np.ndarray, predictions: dict[str, tuple[np.ndarray, np.ndarray]],
                    behaviours: list[str], /, **tags: Any) -> pd.DataFrame:
    """Metrics on elements where two annotators agree vs disagree (Figure 3N-O).

    truth, other: (T, K) labels of the ground-truth annotator and of a second annotator;
    predictions: source -> (preds (T, K), scores (T, K)). An element (frame, behaviour) is in
    ``agree`` when both labelled it identically, in ``disagree`` when both labelled it
    differently; elements unlabelled by either are in neither.
    """
    truth = np.asarray(truth, dtype=np.int8)
    other = np.asarray(other)
    both = (truth >= 0) & (other >= 0)
    same = truth == other
    frames = []
    for stratum, keep in (("agree", both & same), ("disagree", both & ~same)):
        masked = np.where(keep, truth, np.int8(-1)).astype(np.int8)
        for source, (preds, scores) in predictions.items():
            table = metrics.metrics_table(masked, preds, scores, behaviours)
            frames.append(_with(table, AGREEMENT_COLUMNS, source=source, stratum=stratum, n_repeats=0, **tags))
    return _concat(frames, AGREEMENT_COLUMNS)


# --------------------------------------------------------------------------------------
# A run
# --------------------------------------------------------------------------------------
def evaluate_run(run_dir: str | Path, dataset, profile_name: str, preset: str, split_name: str,
                 shuffle_repeats: int | None = None, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Evaluate one run folder; write ``metrics.csv``, ``bouts.csv``, ``transitions.csv``,
    ``train_frames.csv`` and (>= 2 annotators) ``agreement.csv`` into it (atomically).

    dataset: a :class:`deg.data.datasets.Dataset`. Evaluated videos: the split's test videos
    (its validation videos for a split without a test set, Figure 6). ``shuffle_repeats``
    defaults to the profile's (``HPARAMS["shuffle_repeats"]`` for an unknown profile);
    ``seed`` seeds the shuffle offsets. Returns the tables by name (file stem).
    """
    run_dir = Path(run_dir)
    split = read_split(run_dir)
    subset = "test" if split["test"] else "val"
    videos = split[subset]
    if not videos:
        raise EvaluationError(f"{run_dir / 'split.json'}: no test or validation videos to evaluate")
    if shuffle_repeats is None:
        profile = PROFILES.get(profile_name)
        shuffle_repeats = profile.shuffle_repeats if profile else HPARAMS["shuffle_repeats"]
    behaviours = list(dataset.behaviours)
    truth_name = dataset.train_annotator
    reserved = [a for a in dataset.annotators if a in SOURCES]
    if reserved:
        raise EvaluationError(f"{dataset.root}: annotator name(s) {reserved} collide with sources {SOURCES}")
    tags = dict(profile=profile_name, dataset=dataset.id, preset=preset, split=split_name, subset=subset)

    truth = {v: _labels(dataset, v, truth_name) for v in videos}
    preds = {v: read_predictions(run_dir, v, truth[v].shape) for v in videos}

    metric_frames: list[pd.DataFrame] = []
    for source, (s_key, p_key) in PREDICTION_ARRAYS.items():
        if not all(p_key in preds[v] for v in videos):
            continue                     # an optional source this run did not write
        pairs = {v: (truth[v], preds[v][p_key], preds[v][s_key]) for v in videos}
        metric_frames += _per_video_and_pooled(pairs, behaviours, source=source, truth=truth_name, **tags)
    shuffle = metrics.shuffle_table([truth[v] for v in videos], [preds[v]["preds"] for v in videos],
                                    [preds[v]["probs"] for v in videos], behaviours, shuffle_repeats, seed)
    metric_frames.append(_with(shuffle, METRIC_COLUMNS, video="all", source="shuffle", truth=truth_name,
                               n_videos=len(videos), **tags))

    others = [a for a in dataset.annotators if a != truth_name]
    human = {a: {v: _labels(dataset, v, a) for v in videos if _has_labels(dataset, v, a)} for a in others}
    for annotator, labels in human.items():
        pairs = {}
        for v, lab in labels.items():
            t, p = pair_for_metrics(truth[v], lab)
            pairs[v] = (t, p, p)
        metric_frames += _per_video_and_pooled(pairs, behaviours, source=annotator, truth=truth_name, **tags)

    ethograms = {"model": {v: preds[v]["preds"] for v in videos},
                 "feature_extractor": {v: preds[v]["fe_preds"] for v in videos},
                 truth_name: truth, **human}
    bout_frames, transition_frames = [], []
    for source, matrices in ethograms.items():
        bout_frames += _bout_rows(matrices, dataset.fps, behaviours, source=source, **tags)
        transition_frames += _transition_rows(matrices, behaviours, source=source, **tags)

    train_labels = {v: _labels(dataset, v, truth_name) for v in split["train"]}
    tables = {
        "metrics": _concat(metric_frames, METRIC_COLUMNS),
        "bouts": _concat(bout_frames, BOUT_COLUMNS),
        "transitions": _concat(transition_frames, TRANSITION_COLUMNS),
        "train_frames": train_frames_table(train_labels, behaviours, **{k: tags[k] for k in
                                                                         ("profile", "dataset", "preset", "split")}),
    }
    agreement_frames = []
    for annotator, labels in human.items():
        both = [v for v in videos if v in labels]
        if not both:
            continue
        predictions = {"model": (np.concatenate([preds[v]["preds"] for v in both]),
                                 np.concatenate([preds[v]["probs"] for v in both])),
                       "feature_extractor": (np.concatenate([preds[v]["fe_preds"] for v in both]),
                                             np.concatenate([preds[v]["fe_probs"] for v in both]))}
        agreement_frames.append(agreement_table(np.concatenate([truth[v] for v in both]),
                                                np.concatenate([labels[v] for v in both]), predictions,
                                                behaviours, video="all", truth=truth_name, other=annotator,
                                                n_videos=len(both), **tags))
    if agreement_frames:
        tables["agreement"] = _concat(agreement_frames, AGREEMENT_COLUMNS)
    for name, table in tables.items():
        io.write_csv(run_dir / f"{name}.csv", table)
    return tables


# --------------------------------------------------------------------------------------
# Humans
# --------------------------------------------------------------------------------------
def evaluate_humans(dataset, out_dir: str | Path, profile_name: str) -> dict[str, pd.DataFrame]:
    """Human-vs-human metrics and per-annotator bouts and transitions of a whole dataset.

    Metrics: every ordered pair (truth = A, source = B), A != B, per video labelled by both and
    pooled over those videos (``video = all``); the pairs with the training annotator as truth are
    the paper's human benchmark, the others allow symmetry checks. Bouts and transitions: every
    annotator, per video and ``mean`` / ``all``. Writes ``out_dir/{metrics,bouts,transitions}.csv``.
    """
    out_dir = Path(out_dir)
    behaviours = list(dataset.behaviours)
    tags = dict(profile=profile_name, dataset=dataset.id, preset="human", split="all", subset="all")
    labels = {a: {v: _labels(dataset, v, a) for v in dataset.videos if _has_labels(dataset, v, a)}
              for a in dataset.annotators}
    metric_frames: list[pd.DataFrame] = []
    for a, b in itertools.permutations(dataset.annotators, 2):
        pairs = {}
        for v in dataset.videos:
            if v in labels[a] and v in labels[b]:
                t, p = pair_for_metrics(labels[a][v], labels[b][v])
                pairs[v] = (t, p, p)
        metric_frames += _per_video_and_pooled(pairs, behaviours, source=b, truth=a, **tags)
    bout_frames, transition_frames = [], []
    for annotator, matrices in labels.items():
        bout_frames += _bout_rows(matrices, dataset.fps, behaviours, source=annotator, **tags)
        transition_frames += _transition_rows(matrices, behaviours, source=annotator, **tags)
    tables = {"metrics": _concat(metric_frames, METRIC_COLUMNS), "bouts": _concat(bout_frames, BOUT_COLUMNS),
              "transitions": _concat(transition_frames, TRANSITION_COLUMNS)}
    for name, table in tables.items():
        io.write_csv(out_dir / f"{name}.csv", table)
    return tables


# --------------------------------------------------------------------------------------
# Reading tables back (figure notebooks)
# --------------------------------------------------------------------------------------
def collect(root: str | Path, table: str = "metrics") -> pd.DataFrame:
    """Concatenate every ``<table>.csv`` under ``root`` (e.g. ``results/<profile>``)."""
    files = sorted(Path(root).rglob(f"{table}.csv"))
    if not files:
        raise EvaluationError(f"{root}: no {table}.csv found; evaluate the runs first")
    return pd.concat([pd.read_csv(f, keep_default_na=True, dtype={"split": str, "video": str})
                      for f in files], ignore_index=True)


def with_train_frames(metrics_table: pd.DataFrame, train_frames: pd.DataFrame) -> pd.DataFrame:
    """Per-behaviour metric rows joined with ``n_positive`` / ``percent_positive`` training
    frames of the same run (Figures 3M, 6D-E): adds columns ``n_positive``, ``percent_positive``."""
    keys = ["profile", "dataset", "preset", "split", "behaviour"]
    wide = train_frames.pivot_table(index=keys, columns="metric", values="value", aggfunc="first").reset_index()
    wide.columns.name = None
    return metrics_table.merge(wide[keys + ["n_positive", "percent_positive"]], on=keys, how="inner")


@cli.entry_point("deg.evaluate")
def main(argv: list[str] | None = None) -> int:
    """``python -m deg.evaluate humans --profile P <dataset> ...`` (a step of the workflow).

    Exit codes: :mod:`deg.cli` (2 for an unknown profile or dataset, checked before anything is written).
    """
    import argparse

    from deg import paths
    from deg.data.datasets import open_dataset

    parser = argparse.ArgumentParser(description="Evaluate human annotators against each other")
    parser.add_argument("what", choices=["humans"])
    parser.add_argument("--profile", required=True)
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    cli.check_profile(args.profile)
    cli.check_datasets(args.ids)
    for dataset_id in args.ids:
        dataset = open_dataset(dataset_id)
        out = paths.results_dir() / args.profile / dataset.id / "humans"
        evaluate_humans(dataset, out, args.profile)
        print(f"{dataset_id}: human-vs-human tables in {out}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
