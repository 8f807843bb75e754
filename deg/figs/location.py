"""Performance by location and orientation of the animal (paper, Figure 3 - figure supplement 12).

The paper shows that the model recognises a behaviour wherever the mouse is in the arena and
whichever way it faces. On the synthetic datasets the generator knows, per frame, the subject's
position and heading (``data/<dataset>/extra/<video>.csv``: ``x``, ``y``, ``heading``,
``quadrant``), so the same question can be answered quantitatively: the model's metrics on the
frames of each arena quadrant and of each heading bin.

:func:`location_metrics` is called once per run (from the run notebook, beside
:func:`deg.evaluate.evaluate_run`) and writes ``location.csv`` into the run folder; the figure
notebook reads only those files.

``location.csv`` (tidy, one value per row): ``dataset, preset, split, subset, source,
stratum_type`` (``quadrant`` | ``heading``), ``stratum`` (a quadrant or heading-bin name),
``behaviour`` (a behaviour, ``macro`` or ``macro_nobg``), ``metric``, ``value``, ``n_true``,
``n_frames``, ``status``, ``n_videos`` (the columns of :func:`deg.metrics.metrics_table`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deg import io, metrics

# quadrant codes of deg.data.synthetic (x >= W/2 adds 1, y >= H/2 adds 2; y grows downwards)
QUADRANTS = {0: "top-left", 1: "top-right", 2: "bottom-left", 3: "bottom-right"}
# heading = atan2(dy, dx) in image coordinates (y down): 0 = facing right, +pi/2 = facing down.
# Four 90-degree bins centred on the image axes.
HEADINGS = ("right", "down", "left", "up")
COLUMNS = ["dataset", "preset", "split", "subset", "source", "stratum_type", "stratum", "behaviour", "metric",
           "value", "n_true", "n_frames", "status", "n_videos"]
FILE = "location.csv"


class LocationError(ValueError):
    """A covariate file that cannot be used; the message names it."""


def heading_bins(heading: np.ndarray) -> np.ndarray:
    """(T,) radians -> (T,) index into :data:`HEADINGS` (bins [-45, 45), [45, 135), ... degrees)."""
    heading = np.asarray(heading, dtype=np.float64)
    return (np.floor(np.mod(heading + np.pi / 4, 2 * np.pi) / (np.pi / 2)).astype(np.int64)) % 4


def read_covariates(path: Path, n_frames: int) -> pd.DataFrame:
    """``extra/<video>.csv`` with one row per frame and columns ``quadrant`` and ``heading``."""
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LocationError(f"{path}: unreadable covariate file ({exc})") from exc
    missing = [c for c in ("quadrant", "heading") if c not in table.columns]
    if missing:
        raise LocationError(f"{path}: lacks column(s) {missing} (has {list(table.columns)})")
    if len(table) != n_frames:
        raise LocationError(f"{path}: {len(table)} rows for a video of {n_frames} labelled frames")
    if not table["quadrant"].isin(list(QUADRANTS)).all():
        raise LocationError(f"{path}: quadrant must be one of {list(QUADRANTS)}")
    if not np.isfinite(table["heading"].to_numpy(dtype=float)).all():
        raise LocationError(f"{path}: heading contains NaN or infinite values")
    return table


def strata(covariates: pd.DataFrame) -> dict[str, np.ndarray]:
    """{stratum_type: (T,) stratum names} for one covariate table."""
    quadrant = np.array([QUADRANTS[q] for q in range(4)])[covariates["quadrant"].to_numpy(dtype=np.int64)]
    heading = np.array(HEADINGS)[heading_bins(covariates["heading"].to_numpy())]
    return {"quadrant": quadrant, "heading": heading}


def _run_names(run_dir: Path) -> tuple[str, str]:
    """(preset, split) of a run folder ``.../<dataset>/<preset>/<split>``."""
    return run_dir.parent.name, run_dir.name


def location_metrics(run_dir: str | Path, dataset, write: bool = True) -> pd.DataFrame:
    """Model metrics per arena quadrant and per heading bin on the run's evaluated videos.

    run_dir: ``results/<profile>/<dataset>/<preset>/<split>/`` with ``split.json`` and
    ``predictions/``; dataset: a :class:`deg.data.datasets.Dataset` or its id. Frames of the
    evaluated videos (test set; validation for a subsample run) are pooled per stratum and scored
    with :func:`deg.metrics.metrics_table` against the training annotator (preds for
    accuracy/F1/precision/recall, probs for AUROC). Writes ``location.csv`` (unless
    ``write=False``) and returns it; a dataset without covariate files gives an empty table
    and writes nothing.
    """
    from deg.evaluate import read_predictions, read_split

    if isinstance(dataset, (str, Path)):
        from deg.data.datasets import open_dataset

        dataset = open_dataset(dataset)
    run_dir = Path(run_dir)
    split = read_split(run_dir)
    subset = "test" if split["test"] else "val"
    videos = split[subset]
    if not videos or any(dataset.extra_path(v) is None for v in videos):
        return pd.DataFrame(columns=COLUMNS)
    labels, preds, probs, names = [], [], [], {"quadrant": [], "heading": []}
    for v in videos:
        lab = np.asarray(dataset.labels(v))
        arrays = read_predictions(run_dir, v, lab.shape)
        cov = read_covariates(dataset.extra_path(v), lab.shape[0])
        for kind, values in strata(cov).items():
            names[kind].append(values)
        labels.append(lab)
        preds.append(arrays["preds"])
        probs.append(arrays["probs"])
    labels_all, preds_all, probs_all = np.concatenate(labels), np.concatenate(preds), np.concatenate(probs)
    preset, split_name = _run_names(run_dir)
    frames = []
    for kind, parts in names.items():
        stratum = np.concatenate(parts)
        order = HEADINGS if kind == "heading" else tuple(QUADRANTS.values())
        for name in order:
            mask = stratum == name
            if not mask.any():
                continue
            table = metrics.metrics_table(labels_all[mask], preds_all[mask], probs_all[mask], dataset.behaviours)
            frames.append(table.assign(dataset=dataset.id, preset=preset, split=split_name, subset=subset,
                                       source="model", stratum_type=kind, stratum=name, n_videos=len(videos)))
    out = pd.concat(frames, ignore_index=True)[COLUMNS]
    if write:
        io.write_csv(run_dir / FILE, out)
    return out


def location_summary(location: pd.DataFrame, dataset: str, preset: str, metric: str = "f1") -> pd.DataFrame:
    """Per (stratum_type, stratum, behaviour): mean and SEM over splits of ``metric``
    (background excluded; ``macro_nobg`` kept as "all behaviours"), with n and the values."""
    from deg.figs.performance import summarise

    sel = location[(location["dataset"] == dataset) & (location["preset"] == preset)
                   & (location["metric"] == metric) & ~location["behaviour"].isin(["background", "macro"])]
    return summarise(sel, ["stratum_type", "stratum", "behaviour"])


def location_tests(location: pd.DataFrame, dataset: str, preset: str, metric: str = "f1") -> pd.DataFrame:
    """Does ``metric`` depend on the stratum? One-way repeated-measures ANOVA across the strata
    of each (stratum_type, behaviour), subjects = splits (:func:`deg.stats.rm_anova`; not a test
    of the paper, whose supplement is descriptive). Untestable cells (one split, a behaviour
    absent from a stratum in every split but one, ...) get a note instead of a p-value."""
    from deg import stats
    from deg.figs.performance import NO_TEST, stars

    cols = ["stratum_type", "behaviour", "test", "F", "df1", "df2", "p", "stars", "n", "note"]
    sel = location[(location["dataset"] == dataset) & (location["preset"] == preset)
                   & (location["metric"] == metric) & ~location["behaviour"].isin(["background", "macro"])]
    rows = []
    for (kind, behaviour), part in sel.groupby(["stratum_type", "behaviour"], sort=False):
        base = dict(stratum_type=kind, behaviour=behaviour, n=int(part["split"].nunique()))
        if part["split"].nunique() < 2:
            rows.append(dict(base, test="none", note=NO_TEST))
            continue
        try:
            res = stats.rm_anova(part, "value", "stratum", "split").iloc[0]
        except (stats.StatsError, ValueError, ZeroDivisionError) as exc:
            rows.append(dict(base, test="none", note=f"no test: {exc}"))
            continue
        rows.append(dict(base, test="RM ANOVA across strata", F=res["statistic"], df1=res["df1"], df2=res["df2"],
                         p=res["p_unc"], n=int(res["n"]), note=""))
    out = pd.DataFrame(rows, columns=cols)
    out["stars"] = [stars(p) for p in out["p"].astype(float)]
    return out
