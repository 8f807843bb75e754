"""Figures 4 and 5: bout statistics and transitions of the model against human annotators.

Pure functions from the tidy tables of :mod:`deg.evaluate` (``bouts.csv`` and ``transitions.csv``
of the run folders and of ``humans/``) to the tables a panel draws, and the paper's tests on them.

Annotators are renamed to *roles* so that datasets with different annotator names can be pooled:
``human1`` is the training annotator (the paper's "Human 1"), ``human2``, ``human3``... the other
annotators in the order of the dataset's ``annotators`` list; ``model`` is the sequence model.

* Figure 4A-C (one dataset, per video): :func:`per_video` + :func:`video_tests` (one-way ANOVA
  across raters per behaviour, observations = videos, Tukey's HSD when significant).
* Figure 4D-F and 5C-E (all datasets): :func:`split_average` (per split the mean over its test
  videos, then the mean over splits), :func:`rater_pairs`, :func:`summary_differences` and
  :func:`summary_difference_tests` (paired t-tests, Bonferroni across the metrics).
* Figure 5A-B (one dataset, per video): :func:`video_differences` (deg.stats.abs_difference_ttest).
* Figure 5F-H: :func:`average_transitions`.

Whenever a test cannot be run (one split, one video per rater, no model), the functions return a
row or column saying why (``note``) instead of raising: the panels are drawn anyway.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from deg import stats
from deg.figs import performance
from deg.presets import PRESETS

# Figures 4-5 and Videos 1-9 of the paper show DeepEthogram-medium.
PAPER_PRESET = "DEG_m"
# Bout metrics of Figures 4-5, in panel order, with axis labels.
METRICS: dict[str, str] = {"percent_time": "time spent (%)", "n_bouts": "number of bouts",
                           "mean_bout_s": "mean bout duration (s)"}
MODEL = "model"
# Colours of the raters in Figures 4-5 (model as in deg.plots.SOURCE_COLORS; humans in reds).
RATER_COLORS = {MODEL: "#4C72B0", "human1": "#C44E52", "human2": "#E39A9C", "human3": "#8C2D30",
                "human4": "#F2C6C7", "humans_other": "#D9777A"}
_SPECIAL_VIDEOS = ("mean", "all")


class FigureDataError(ValueError):
    """A results table that lacks what a panel needs (the message says which table and what)."""


def choose_preset(available: Iterable[str], preferred: str = PAPER_PRESET,
                  splits: Mapping[str, int] | None = None) -> str:
    """The paper's preset (DEG_m) when it was run, else the first of DEG_f, DEG_m, DEG_s present.

    ``splits`` ({preset: number of ``split<k>`` runs}, e.g. :func:`split_counts` of
    :func:`dataset_meta`): only the presets run on the most splits are candidates (the demo runs
    DEG_m and DEG_s on split 0 only: their runs hold a third of the test videos). The rule is
    :func:`deg.figs.performance.choose_preset`'s, without its caption note.
    """
    try:
        return performance.choose_preset(list(available), preferred, splits)[0]
    except performance.FigureDataError:
        raise FigureDataError("no preset with runs to choose from") from None


def split_counts(meta: dict[str, dict], datasets: Iterable[str]) -> dict[str, int]:
    """{preset: ``split<k>`` runs summed over ``datasets``} from :func:`dataset_meta`'s ``splits``."""
    out: dict[str, int] = {}
    for ds in datasets:
        for preset, n in meta[ds].get("splits", {}).items():
            out[preset] = out.get(preset, 0) + int(n)
    return out


def rater_roles(annotators: Sequence[str], train_annotator: str) -> dict[str, str]:
    """Annotator name -> role: the training annotator is ``human1``, the others ``human2``,
    ``human3``... in the given order. Adds ``model -> model``."""
    if train_annotator not in annotators:
        raise FigureDataError(f"training annotator {train_annotator!r} not among annotators {list(annotators)}")
    roles = {train_annotator: "human1"}
    for name in annotators:
        if name != train_annotator:
            roles[name] = f"human{len(roles) + 1}"
    roles[MODEL] = MODEL
    return roles


def role_label(role: str, roles: dict[str, str] | None = None) -> str:
    """Axis label of a role: 'Human 1 (truth)', 'model'."""
    if role.startswith("human"):
        name = {v: k for k, v in (roles or {}).items()}.get(role)
        return f"Human {role[5:]}" + (f" ({name})" if name else "")
    return role


def _need(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise FigureDataError(f"{what}: table lacks column(s) {missing}")


def _sem(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


# --------------------------------------------------------------------------------------
# Reading results/<profile>/
# --------------------------------------------------------------------------------------
def dataset_meta(results: str | Path, datasets: Sequence[str] | None = None) -> dict[str, dict]:
    """``describe/dataset.json`` of each dataset (default: every described dataset under ``results``),
    plus ``presets``: the presets with ``split<k>`` runs of it (sorted as in deg.presets.PRESETS),
    and ``splits``: {preset: how many}."""
    results = Path(results)
    if not datasets:
        datasets = sorted(p.parent.parent.name for p in results.glob("*/describe/dataset.json"))
    meta = {}
    for ds in datasets:
        path = results / ds / "describe" / "dataset.json"
        if not path.exists():
            raise FigureDataError(f"{path}: missing; describe the dataset first (python -m deg.describe)")
        info = json.loads(path.read_text())
        counts = Counter(p.parent.parent.name for p in (results / ds).glob("*/split*/bouts.csv"))
        info["presets"] = [p for p in PRESETS if p in counts] + sorted(set(counts) - set(PRESETS))
        info["splits"] = {p: counts[p] for p in info["presets"]}
        meta[ds] = info
    return meta


def load_table(results: str | Path, datasets: Sequence[str], table: str, humans: bool = True) -> pd.DataFrame:
    """Concatenate ``<table>.csv`` of every ``<ds>/<preset>/split<k>/`` run (not the Figure 6
    ``sub*`` runs) and, with ``humans``, of ``<ds>/humans/``; an empty frame when there are none."""
    results = Path(results)
    files = []
    for ds in datasets:
        files += sorted((results / ds).glob(f"*/split*/{table}.csv"))
        if humans and (results / ds / "humans" / f"{table}.csv").exists():
            files.append(results / ds / "humans" / f"{table}.csv")
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_csv(f, dtype={"split": str, "video": str}) for f in files], ignore_index=True)


# --------------------------------------------------------------------------------------
# Per video (Figures 4A-C, 5A-B)
# --------------------------------------------------------------------------------------
def per_video(bouts: pd.DataFrame, dataset: str, preset: str, metric: str, roles: dict[str, str]) -> pd.DataFrame:
    """One ``metric`` value per (video, behaviour, rater), averaged over the splits that evaluated the video.

    bouts: rows of ``bouts.csv`` (runs, or ``humans/`` with preset ``human``). Sources other than
    the model and the annotators of ``roles`` (feature extractor) are left out. A video is in the
    test set of some splits only; its model value is the mean over those (``n_splits``); its
    annotators' values are the same in every split. Returns columns dataset, preset, video,
    behaviour, source, rater, value, n_splits; NaN values (a video without bouts has no mean
    duration) are kept, so the count of videos per rater can differ by behaviour.
    """
    _need(bouts, ["dataset", "preset", "split", "video", "source", "behaviour", "metric", "value"], "bouts.csv")
    part = bouts[(bouts.dataset == dataset) & (bouts.preset == preset) & (bouts.metric == metric)
                 & ~bouts.video.astype(str).isin(_SPECIAL_VIDEOS) & bouts.source.isin(list(roles))]
    columns = ["dataset", "preset", "video", "behaviour", "source", "rater", "value", "n_splits"]
    if part.empty:
        return pd.DataFrame(columns=columns)
    out = (part.groupby(["dataset", "preset", "video", "behaviour", "source"], sort=False)
           .agg(value=("value", "mean"), n_splits=("split", "nunique")).reset_index())
    out["rater"] = out["source"].map(roles)
    return out[columns]


def _tukey_vs(tukey: pd.DataFrame, reference: str) -> dict[str, float]:
    """Tukey p of each rater against ``reference`` from a tukey_between table."""
    out = {}
    for _, r in tukey.iterrows():
        if r["A"] == reference:
            out[r["B"]] = float(r["p_corr"])
        elif r["B"] == reference:
            out[r["A"]] = float(r["p_corr"])
    return out


def video_tests(table: pd.DataFrame, reference: str = MODEL, alpha: float = 0.05) -> pd.DataFrame:
    """Figure 4A-C statistics per behaviour: one-way ANOVA across raters (observations = videos),
    then Tukey's HSD (deg.stats.anova_tukey) when ``p < alpha``.

    table: :func:`per_video` output. Returns one row per (behaviour, rater) with the rater's mean,
    SEM and number of videos, the behaviour's ANOVA F, df and p (``anova_p``), the Tukey p of the
    rater against ``reference`` (``tukey_p_vs_<reference>``; NaN when the ANOVA was not
    significant or for the reference itself) and ``note`` saying why a test was not run.
    """
    _need(table, ["behaviour", "rater", "value"], "per-video table")
    tukey_col = f"tukey_p_vs_{reference}"
    rows = []
    for behaviour, part in table.groupby("behaviour", sort=False):
        clean = part.dropna(subset=["value"])
        counts = clean.groupby("rater")["value"].count()
        summary = part.groupby("rater", sort=False)["value"].agg(["mean", "count"])
        sem = part.groupby("rater", sort=False)["value"].apply(_sem)
        note, anova, tukey = "", None, {}
        if len(counts) < 2:
            note = "fewer than 2 raters with values: no test"
        elif (counts < 2).any():
            note = f"fewer than 2 videos for rater(s) {sorted(counts[counts < 2].index)}: no test"
        elif clean["value"].nunique() < 2:
            note = "all values equal: no test"
        else:
            try:
                res = stats.anova_tukey(clean, dv="value", between="rater", alpha=alpha)
            except stats.StatsError as exc:
                note = f"no test: {exc}"
            else:
                anova = res[res.test == "anova"].iloc[0]
                if not np.isfinite(anova["p_unc"]):
                    note = "ANOVA undefined (no variance within raters)"
                tukey = _tukey_vs(res[res.test == "tukey_hsd"], reference)
        for rater, s in summary.iterrows():
            rows.append({"behaviour": behaviour, "rater": rater, "mean": float(s["mean"]), "sem": float(sem[rater]),
                         "n_videos": int(s["count"]),
                         "anova_F": float(anova["statistic"]) if anova is not None else np.nan,
                         "anova_df1": float(anova["df1"]) if anova is not None else np.nan,
                         "anova_df2": float(anova["df2"]) if anova is not None else np.nan,
                         "anova_p": float(anova["p_unc"]) if anova is not None else np.nan,
                         tukey_col: tukey.get(rater, np.nan), "note": note})
    return pd.DataFrame(rows, columns=["behaviour", "rater", "mean", "sem", "n_videos", "anova_F", "anova_df1",
                                       "anova_df2", "anova_p", tukey_col, "note"])


def video_differences(table: pd.DataFrame, others: Sequence[str] | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 5A-B right: |model - Human 1| vs |Human k - Human 1| per (video, behaviour),
    paired t-test (deg.stats.abs_difference_ttest, one pair per other human) and Pearson r of the
    two differences (deg.stats.pearson).

    table: :func:`per_video` output. Returns (tests, differences): tests has the t-test row and the
    Pearson row (columns of deg.stats plus ``note``); differences has video, behaviour, other,
    model_diff, human_diff.
    """
    others = list(others) if others is not None else sorted(r for r in table.rater.unique()
                                                            if r.startswith("human") and r != "human1")
    empty = pd.DataFrame(columns=["video", "behaviour", "other", "model_diff", "human_diff"])
    if MODEL not in set(table.rater) or not others or "human1" not in set(table.rater):
        return _note_row("no model or no second annotator: no test"), empty
    try:
        test, diffs = stats.abs_difference_ttest(table, value="value", rater="rater", units=["video", "behaviour"],
                                                 reference="human1", model=MODEL, others=others)
    except stats.StatsError as exc:
        return _note_row(f"no test: {exc}"), empty
    rows = [test]
    try:
        rows.append(stats.pearson(diffs["model_diff"], diffs["human_diff"]))
    except stats.StatsError as exc:
        rows.append(_note_row(f"no correlation: {exc}"))
    out = pd.concat(rows, ignore_index=True)
    out["note"] = out["note"].fillna("") if "note" in out.columns else ""
    return out, diffs


def _note_row(note: str) -> pd.DataFrame:
    row = pd.DataFrame([dict.fromkeys(stats.COLUMNS, np.nan)], columns=stats.COLUMNS)
    row["note"] = note
    return row


def correlation(x: Sequence[float], y: Sequence[float], group: str | None = None) -> pd.DataFrame:
    """Pearson r (deg.stats.pearson) or, with fewer than 3 complete pairs, a row saying so."""
    try:
        out = stats.pearson(x, y, group=group)
        out["note"] = ""
        return out
    except stats.StatsError as exc:
        row = _note_row(f"no correlation: {exc}")
        row["group"] = group
        return row


# --------------------------------------------------------------------------------------
# Averaged across splits (Figures 4D-F, 5C-E)
# --------------------------------------------------------------------------------------
def split_average(bouts: pd.DataFrame, roles_by_dataset: dict[str, dict[str, str]], preset: str | None,
                  metric: str) -> pd.DataFrame:
    """Per (dataset, behaviour, rater): the mean over splits of each split's mean over its videos.

    bouts: ``bouts.csv`` rows of runs (``video == "mean"`` rows are used) and/or of ``humans/``
    (preset ``human``, one pseudo-split ``all``: n_splits reported as 0, i.e. "no splits, all
    videos"). ``preset`` selects the runs (human rows are kept whatever it is; None keeps every
    preset). roles_by_dataset: dataset -> :func:`rater_roles`. For a dataset with runs the human
    rows of ``humans/`` are dropped, so its annotators are averaged over the same test videos as
    the model. Returns dataset, preset, behaviour, rater, value (mean), sem (over splits; NaN for
    one split), n_splits.
    """
    _need(bouts, ["dataset", "preset", "split", "video", "source", "behaviour", "metric", "value"], "bouts.csv")
    part = bouts[(bouts.metric == metric) & (bouts.video.astype(str) == "mean")]
    if preset is not None:
        part = part[(part.preset == preset) | (part.preset == "human")]
    with_runs = set(part.loc[part.preset != "human", "dataset"])
    part = part[~((part.preset == "human") & part.dataset.isin(with_runs))]
    frames = []
    for dataset, rows in part.groupby("dataset", sort=False):
        roles = roles_by_dataset.get(dataset)
        if roles is None:
            raise FigureDataError(f"no annotator roles for dataset {dataset!r}")
        rows = rows[rows.source.isin(list(roles))].copy()
        rows["rater"] = rows["source"].map(roles)
        frames.append(rows)
    columns = ["dataset", "preset", "behaviour", "rater", "value", "sem", "n_splits"]
    if not frames:
        return pd.DataFrame(columns=columns)
    rows = pd.concat(frames, ignore_index=True)
    rows["is_split"] = rows.preset != "human"
    out = (rows.groupby(["dataset", "preset", "behaviour", "rater"], sort=False)
           .agg(value=("value", "mean"), sem=("value", _sem), n_splits=("split", "nunique"),
                is_split=("is_split", "first")).reset_index())
    out.loc[~out.is_split, "n_splits"] = 0
    return out[columns]


def rater_pairs(average: pd.DataFrame, x: str = "human1", y: str = MODEL) -> pd.DataFrame:
    """Rows (dataset, behaviour) with the two raters side by side: columns x, y, x_sem, y_sem, n_splits.

    ``y`` may be ``"humans_other"``: the mean of every annotator other than Human 1 (the paper's
    "Humans 2 and 3 were averaged"; a dataset with two annotators contributes Human 2 alone).
    Pairs missing either rater are dropped.
    """
    keys = ["dataset", "behaviour"]
    table = average.copy()
    if y == "humans_other" or x == "humans_other":
        others = table[table.rater.str.startswith("human") & (table.rater != "human1")]
        mean = others.groupby(keys, sort=False).agg(value=("value", "mean"), n_splits=("n_splits", "max"),
                                                    n_others=("rater", "nunique")).reset_index()
        mean["rater"], mean["sem"] = "humans_other", np.nan
        table = pd.concat([table, mean], ignore_index=True)
    a = table[table.rater == x].set_index(keys)
    b = table[table.rater == y].set_index(keys)
    both = a.index.intersection(b.index)
    out = pd.DataFrame({x: a.loc[both, "value"], y: b.loc[both, "value"], f"{x}_sem": a.loc[both, "sem"],
                        f"{y}_sem": b.loc[both, "sem"], "n_splits": a.loc[both, "n_splits"]}).reset_index()
    return out.dropna(subset=[x, y]).reset_index(drop=True)


def summary_differences(average: pd.DataFrame) -> pd.DataFrame:
    """Figure 5C-E right: per (dataset, behaviour), ``model_diff`` = |model - Human 1| and
    ``human_diff`` = mean over the other annotators of |Human k - Human 1| (Humans 2 and 3 averaged).

    Rows lacking the model (label-only datasets) or any other annotator are dropped.
    """
    keys = ["dataset", "behaviour"]
    wide = average.pivot_table(index=keys, columns="rater", values="value", aggfunc="first")
    others = [c for c in wide.columns if c.startswith("human") and c != "human1"]
    if MODEL not in wide.columns or "human1" not in wide.columns or not others:
        return pd.DataFrame(columns=keys + ["model_diff", "human_diff", "n_others"])
    human = wide[others].sub(wide["human1"], axis=0).abs()
    out = pd.DataFrame({"model_diff": (wide[MODEL] - wide["human1"]).abs(), "human_diff": human.mean(axis=1),
                        "n_others": human.notna().sum(axis=1)})
    return out.dropna().reset_index()


def summary_difference_tests(diffs_by_metric: pd.DataFrame) -> pd.DataFrame:
    """Paired t-test model_diff vs human_diff per metric, Bonferroni-corrected across the metrics
    (paper Figure 5C-E: "p>0.05, paired t-test with Bonferroni correction"), plus Pearson r of the
    two differences per metric (``test == "pearson"``). A metric with < 2 pairs gets a note row."""
    _need(diffs_by_metric, ["metric", "dataset", "behaviour", "model_diff", "human_diff"], "differences table")
    long = diffs_by_metric.melt(id_vars=["metric", "dataset", "behaviour"], value_vars=["model_diff", "human_diff"],
                                var_name="comparison", value_name="abs_diff")
    long["unit"] = long["dataset"] + "/" + long["behaviour"]
    counts = diffs_by_metric.groupby("metric").size()
    testable = [m for m, n in counts.items() if n >= 2]
    frames = []
    if testable:
        frames.append(stats.paired_ttests(long[long.metric.isin(testable)], dv="abs_diff", within="comparison",
                                          subject="unit", by="metric", padjust="bonf",
                                          pair=("model_diff", "human_diff")).assign(note=""))
    for metric in counts.index:
        if metric not in testable:
            frames.append(_note_row("fewer than 2 (dataset, behaviour) pairs: no test").assign(group=metric))
        part = diffs_by_metric[diffs_by_metric.metric == metric]
        frames.append(correlation(part["model_diff"], part["human_diff"], group=metric))
    if not frames:
        return _note_row("no differences to test")
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------
# Transitions (Figure 5F-H)
# --------------------------------------------------------------------------------------
def average_transitions(transitions: pd.DataFrame, dataset: str, preset: str, roles: dict[str, str],
                        behaviours: Sequence[str]) -> pd.DataFrame:
    """Transition probability matrices per rater, pooled over each split's videos (``video ==
    "all"``) and averaged over splits (paper: "computed for each data split and averaged across
    splits"); rows without any transition out of a behaviour are NaN and skipped in the mean.

    transitions: ``transitions.csv`` rows of runs (preset = ``preset``) or ``humans/`` (preset
    ``human``). Returns long rows rater, from_behaviour, to_behaviour, value, n_splits, ordered by
    ``behaviours``; every (from, to) pair is present (NaN where never observed).
    """
    _need(transitions, ["dataset", "preset", "split", "video", "source", "from_behaviour", "to_behaviour",
                        "metric", "value"], "transitions.csv")
    part = transitions[(transitions.dataset == dataset) & (transitions.preset == preset)
                       & (transitions.metric == "probability") & (transitions.video.astype(str) == "all")
                       & transitions.source.isin(list(roles))]
    frames = []
    for source, rows in part.groupby("source", sort=False):
        mean = rows.groupby(["from_behaviour", "to_behaviour"]).agg(
            value=("value", "mean"), n_splits=("split", "nunique"))
        index = pd.MultiIndex.from_product([behaviours, behaviours], names=["from_behaviour", "to_behaviour"])
        mean = mean.reindex(index).reset_index()
        mean["n_splits"] = mean["n_splits"].fillna(rows.split.nunique()).astype(int)
        mean.insert(0, "rater", roles[source])
        mean.insert(1, "source", source)
        frames.append(mean)
    columns = ["rater", "source", "from_behaviour", "to_behaviour", "value", "n_splits"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def transition_matrix(long: pd.DataFrame, rater: str, behaviours: Sequence[str]) -> np.ndarray:
    """(K, K) matrix [from, to] of one rater from :func:`average_transitions` output."""
    part = long[long.rater == rater].set_index(["from_behaviour", "to_behaviour"])["value"]
    index = pd.MultiIndex.from_product([behaviours, behaviours])
    return part.reindex(index).to_numpy(dtype=float, copy=True).reshape(len(behaviours), len(behaviours))


def format_p(p: float, alpha: float = 0.05) -> str:
    """'p=0.012 *', 'p<0.001 *', 'p=0.43', or 'no test' for NaN."""
    if p is None or not np.isfinite(p):
        return "no test"
    text = "p<0.001" if p < 0.001 else f"p={p:.3f}"
    return text + (" *" if p < alpha else "")
