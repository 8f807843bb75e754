"""Panel tables of the performance figures: Figure 3 (+ supplements) and Figure 6.

Everything here turns the tidy tables written by :mod:`deg.evaluate` (``metrics.csv``,
``train_frames.csv``, ``agreement.csv``, ``humans/metrics.csv``) into the numbers a panel draws
and the statistics the paper ran; the notebooks only draw. Conventions:

* One value per split ("subject" of the paper's tests): rows with ``video == "all"`` (the test
  videos of a split pooled, the paper's per-split metric).
* Overall panels (Figure 3A, B and supplements): ``macro`` accuracy = overall accuracy pooled
  over every element of the (T, K) ethogram; F1 / precision / recall / AUROC = ``macro_nobg``
  (mean over behaviours, background excluded).
* Per-behaviour panels leave ``background`` out (the behaviours of interest).
* ``human`` = the other annotators against the training annotator on the same videos, averaged
  over those annotators per split (run tables); label-only datasets (no runs) take the pooled
  ``humans/metrics.csv`` value (one number, no spread).
* Error bars: mean +/- SEM across splits (:func:`sem`, ddof = 1). With one split there is no
  spread and no test: tables say ``"n=1 split: no test"`` instead of raising.
* Stars (:func:`stars`): * p <= 0.05, ** p <= 0.01, *** p <= 0.001 (paper, Figure 3 legend).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from deg import evaluate, io, metrics

MAIN_PRESET = "DEG_m"        # Figure 3C-P: DeepEthogram-medium
SUBSAMPLE_PRESET = "DEG_f"   # Figure 6: DeepEthogram-fast
PRESET_ORDER = ("DEG_f", "DEG_m", "DEG_s")
MODEL_SOURCES = evaluate.SOURCES        # every other source of a run's metrics is an annotator
NO_TEST = "n=1 split: no test"
SPLIT_RE = re.compile(r"^split(\d+)$")
SUBSAMPLE_RE = re.compile(r"^sub(\d+)_d(\d+)$")
ETHOGRAM_FILE = "ethogram_example.npz"
ETHOGRAM_KEYS = ("video", "labels", "preds", "probs", "behaviours")


class FigureDataError(ValueError):
    """A results file a figure needs is missing or malformed; the message names it."""


# --------------------------------------------------------------------------------------
# Small numerical helpers
# --------------------------------------------------------------------------------------
def sem(values: Sequence[float]) -> float:
    """Standard error of the mean of the finite values (ddof = 1); NaN below 2 values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return float("nan")
    return float(v.std(ddof=1) / np.sqrt(v.size))


def stars(p: float | None) -> str:
    """Significance marks of the paper: *** p <= 0.001, ** <= 0.01, * <= 0.05, else n.s.;
    "" when there is no p-value (no test)."""
    if p is None or not np.isfinite(p):
        return ""
    return "***" if p <= 0.001 else "**" if p <= 0.01 else "*" if p <= 0.05 else "n.s."


def running_average(x: Sequence[float], y: Sequence[float], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred moving average of ``y`` over the ``window`` nearest points in the order of ``x``.

    Returns (x sorted, averaged y), both (n,); windows are truncated at the ends (Figure 6D-E's
    "running average"). NaN pairs are dropped first.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise FigureDataError(f"running_average: x {x.shape} and y {y.shape} differ")
    if window < 1:
        raise FigureDataError(f"running_average: window must be >= 1, got {window}")
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")
    xs, ys = x[keep][order], y[keep][order]
    avg = pd.Series(ys).rolling(window, center=True, min_periods=1).mean().to_numpy()
    return xs, avg


def summarise(table: pd.DataFrame, by: Sequence[str], value: str = "value") -> pd.DataFrame:
    """Mean, SEM and n of ``value`` per group of ``by``, with the values themselves
    (``values``: ';'-joined, in the order of the table) so a reader can recompute the bar."""
    by = list(by)
    if table.empty:
        return pd.DataFrame(columns=by + ["n", "mean", "sem", "values"])
    out = table.groupby(by, sort=False, dropna=False)[value].agg(
        n=lambda v: int(np.isfinite(v.to_numpy(dtype=float)).sum()),
        mean=lambda v: float(np.nanmean(v)) if np.isfinite(v.to_numpy(dtype=float)).any() else np.nan,
        sem=sem,
        values=lambda v: ";".join(f"{x:.4g}" for x in v.to_numpy(dtype=float)))
    return out.reset_index()


# --------------------------------------------------------------------------------------
# Finding and reading results
# --------------------------------------------------------------------------------------
def split_kind(name: str) -> str | None:
    """``"split"`` for ``split<k>``, ``"subsample"`` for ``sub<n>_d<draw>``, else None."""
    return "split" if SPLIT_RE.match(name) else "subsample" if SUBSAMPLE_RE.match(name) else None


def parse_subsample(name: str) -> tuple[int, int]:
    """``sub<n>_d<draw>`` -> (n training videos, draw)."""
    match = SUBSAMPLE_RE.match(str(name))
    if not match:
        raise FigureDataError(f"{name!r} is not a subsample split name (sub<n>_d<draw>)")
    return int(match.group(1)), int(match.group(2))


def discover_datasets(root: str | Path) -> list[str]:
    """Datasets under ``results/<profile>`` with a description, human tables or runs."""
    root = Path(root)
    found = set()
    for pattern in ("*/describe/dataset.json", "*/humans/metrics.csv", "*/DEG_*/*/metrics.csv"):
        for path in root.glob(pattern):
            found.add(path.relative_to(root).parts[0])
    return sorted(found)


def load_meta(root: str | Path, datasets: Sequence[str]) -> dict[str, dict]:
    """``describe/dataset.json`` per dataset; without one, the name decides ``synthetic``
    (ids of the embedded generator start with ``synthetic_``) and ``described`` is False."""
    meta = {}
    for ds in datasets:
        path = Path(root) / ds / "describe" / "dataset.json"
        if path.exists():
            try:
                meta[ds] = {**json.loads(path.read_text()), "described": True}
            except json.JSONDecodeError as exc:
                raise FigureDataError(f"{path}: not valid JSON ({exc})") from exc
        else:
            meta[ds] = {"id": ds, "synthetic": ds.startswith("synthetic_"), "described": False}
    return meta


def load_runs(root: str | Path, datasets: Sequence[str], table: str = "metrics", kind: str = "split") -> pd.DataFrame:
    """Concatenate ``<root>/<dataset>/<preset>/<split>/<table>.csv`` for runs of ``kind``
    (``"split"`` or ``"subsample"``); an empty frame when there is none."""
    files = []
    for ds in datasets:
        for path in sorted((Path(root) / ds).glob(f"DEG_*/*/{table}.csv")):
            if split_kind(path.parent.name) == kind:
                files.append(path)
    frames = []
    for path in files:
        try:
            frames.append(pd.read_csv(path, dtype={"split": str, "video": str, "stratum": str}))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise FigureDataError(f"{path}: unreadable CSV ({exc})") from exc
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_humans(root: str | Path, datasets: Sequence[str]) -> pd.DataFrame:
    """``humans/metrics.csv`` of the datasets that have one (empty frame otherwise)."""
    frames = [pd.read_csv(p, dtype={"split": str, "video": str})
              for ds in datasets if (p := Path(root) / ds / "humans" / "metrics.csv").exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def choose_preset(available: Sequence[str], wanted: str = MAIN_PRESET,
                  splits: Mapping[str, int] | None = None) -> tuple[str, str]:
    """(preset, note): ``wanted`` when present, else the first available in DEG_f/m/s order.

    ``splits`` ({preset: number of ``split<k>`` runs}, :func:`split_counts`): only the presets run on
    the most splits are candidates, so that a preset run on fewer splits (``Profile.preset_splits``:
    the demo's DEG_m and DEG_s on split 0) does not replace one with a mean and SEM over splits.
    """
    available = [p for p in PRESET_ORDER if p in set(available)] + sorted(set(available) - set(PRESET_ORDER))
    if not available:
        raise FigureDataError("no preset has results")
    if splits:
        most = max(splits.get(p, 0) for p in available)
        fewer = [p for p in available if splits.get(p, 0) < most]
        if wanted in fewer:
            chosen = next(p for p in available if p not in fewer)
            return chosen, (f"{wanted} on {splits.get(wanted, 0)} split(s): {chosen} ({most} splits) shown instead")
        available = [p for p in available if p not in fewer]
    if wanted in available:
        return wanted, ""
    return available[0], f"{wanted} absent: {available[0]} shown instead"


def split_counts(metrics_table: pd.DataFrame, dataset: str | None = None) -> dict[str, int]:
    """{preset: number of distinct ``split<k>`` runs} in ``metrics_table`` (of ``dataset`` when given)."""
    if metrics_table.empty:
        return {}
    part = metrics_table if dataset is None else metrics_table[metrics_table["dataset"] == dataset]
    part = part[part["split"].astype(str).map(split_kind) == "split"]
    return {str(k): int(v) for k, v in part.groupby("preset")["split"].nunique().items()}


def _overall_row(metric: str) -> str:
    return "macro" if metric == "accuracy" else "macro_nobg"


# --------------------------------------------------------------------------------------
# Figure 3A-B (and supplements A): overall metric per preset and dataset
# --------------------------------------------------------------------------------------
def human_runs(metrics_table: pd.DataFrame) -> pd.DataFrame:
    """Human rows of run tables (annotator sources, ``video == all``) averaged over the other
    annotators per (dataset, preset, split, behaviour, metric); ``group = "human"``."""
    if metrics_table.empty:
        return pd.DataFrame(columns=["dataset", "preset", "split", "behaviour", "metric", "value", "group"])
    rows = metrics_table[~metrics_table["source"].isin(MODEL_SOURCES) & (metrics_table["video"] == "all")]
    out = rows.groupby(["dataset", "preset", "split", "behaviour", "metric"], sort=False)["value"].mean()
    return out.reset_index().assign(group="human")


def overall_table(metrics_table: pd.DataFrame, humans: pd.DataFrame, metric: str, meta: dict[str, dict],
                  with_human: bool = True, human_preset: str = MAIN_PRESET) -> pd.DataFrame:
    """Per-split values for Figure 3A/B-style panels: columns dataset, group (a preset or
    ``human``), split, value, source_file (``runs`` or ``humans``).

    Model: ``source == model``, ``video == all``, behaviour ``macro`` (accuracy) or
    ``macro_nobg``. Human: run tables of :func:`choose_preset`(``human_preset``) of each dataset;
    datasets without runs fall back to ``humans/metrics.csv`` (truth = training annotator,
    pooled over videos, split ``all``).
    """
    row = _overall_row(metric)
    parts = []
    if not metrics_table.empty:
        model = metrics_table[(metrics_table["source"] == "model") & (metrics_table["video"] == "all")
                              & (metrics_table["behaviour"] == row) & (metrics_table["metric"] == metric)]
        parts.append(model.assign(group=model["preset"], source_file="runs")[["dataset", "group", "split", "value",
                                                                              "source_file"]])
    if with_human:
        hum = human_runs(metrics_table)
        hum = hum[(hum["behaviour"] == row) & (hum["metric"] == metric)]
        with_runs = set()
        for ds, part in hum.groupby("dataset"):
            preset, _ = choose_preset(part["preset"].unique(), human_preset, split_counts(part))
            parts.append(part[part["preset"] == preset].assign(source_file="runs")[
                ["dataset", "group", "split", "value", "source_file"]])
            with_runs.add(ds)
        if not humans.empty:
            for ds, part in humans.groupby("dataset"):
                if ds in with_runs:
                    continue
                train = meta.get(ds, {}).get("train_annotator")
                sel = part[(part["video"] == "all") & (part["behaviour"] == row) & (part["metric"] == metric)]
                if train is not None:
                    sel = sel[sel["truth"] == train]
                if len(sel):
                    parts.append(pd.DataFrame({"dataset": [ds], "group": ["human"], "split": ["all"],
                                               "value": [float(sel["value"].mean())], "source_file": ["humans"]}))
    if not parts:
        return pd.DataFrame(columns=["dataset", "group", "split", "value", "source_file"])
    return pd.concat(parts, ignore_index=True)


def group_order(groups: Sequence[str]) -> list[str]:
    """Presets in DEG_f/m/s order, then anything else, ``human`` last."""
    groups = list(dict.fromkeys(groups))
    presets = [p for p in PRESET_ORDER if p in groups]
    rest = sorted(g for g in groups if g not in presets and g != "human")
    return presets + rest + (["human"] if "human" in groups else [])


# --------------------------------------------------------------------------------------
# Figure 3C-K: per-behaviour bars with shuffle and human, and the paper's tests
# --------------------------------------------------------------------------------------
def behaviour_table(metrics_table: pd.DataFrame, dataset: str, preset: str, metric: str,
                    with_human: bool = True) -> pd.DataFrame:
    """Per-split values per behaviour (background excluded): columns behaviour, group
    (``model``, ``shuffle``, ``human``), split, value."""
    sel = metrics_table[(metrics_table["dataset"] == dataset) & (metrics_table["preset"] == preset)
                        & (metrics_table["video"] == "all") & (metrics_table["metric"] == metric)
                        & ~metrics_table["behaviour"].isin(["background", "macro", "macro_nobg"])]
    model = sel[sel["source"].isin(["model", "shuffle"])].assign(group=lambda t: t["source"])
    parts = [model[["behaviour", "group", "split", "value"]]]
    if with_human:
        hum = human_runs(sel)
        parts.append(hum[["behaviour", "group", "split", "value"]])
    out = pd.concat(parts, ignore_index=True)
    order = list(dict.fromkeys(sel["behaviour"]))
    out["behaviour"] = pd.Categorical(out["behaviour"], categories=order, ordered=True)
    return out.sort_values(["behaviour", "group", "split"], kind="stable").assign(
        behaviour=lambda t: t["behaviour"].astype(str)).reset_index(drop=True)


def _complete_subjects(part: pd.DataFrame, groups: Sequence[str]) -> int:
    wide = part.pivot_table(index="split", columns="group", values="value", aggfunc="first")
    return int(wide.reindex(columns=list(groups)).dropna().shape[0])


def paired_by_unit(long: pd.DataFrame, unit: str, pair: tuple[str, str], within: str = "group",
                   subject: str = "split") -> dict:
    """Paired t-test of ``pair`` (levels of ``within``) per ``unit``, subjects = ``subject``,
    Bonferroni-corrected across the units that can be tested.

    Returns {unit: dict(test, p, n, note)}. A unit with < 2 complete subjects, or whose paired
    differences are all equal (t undefined or infinite), is not tested and gets a note instead
    of a p-value (it does not count in the correction).
    """
    result, testable = {}, []
    for name, part in long.groupby(unit, sort=False):
        wide = part.pivot_table(index=subject, columns=within, values="value", aggfunc="first")
        wide = wide.reindex(columns=list(pair)).dropna()
        n = len(wide)
        diff = (wide[pair[0]] - wide[pair[1]]).to_numpy()
        if n < 2:
            note = NO_TEST if part[subject].nunique() < 2 else f"{n} complete {subject}(s): no test"
            result[name] = dict(test="none", p=np.nan, n=n, note=note)
        elif np.allclose(diff, diff[0]):
            result[name] = dict(test="none", p=np.nan, n=n, note="identical differences (no variance): no test")
        else:
            testable.append(name)
            result[name] = dict(n=n)
    if testable:
        from deg import stats   # pingouin takes seconds to import: only when a test runs

        part = long[long[unit].isin(testable)]
        res = stats.paired_ttests(part, "value", within, subject, by=unit, pair=pair, padjust="bonf")
        for _, r in res.iterrows():
            result[r["group"]].update(test="paired t-test, Bonferroni", p=float(r["p_corr"]), note="")
    return result


def behaviour_tests(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The paper's tests of model vs the other groups, per behaviour (subjects = splits).

    Three groups (model, shuffle, human): one-way repeated-measures ANOVA per behaviour, then
    Tukey's HSD (:func:`deg.stats.compare_conditions`) when p < ``alpha``. Two groups (model,
    shuffle; no human labels): paired t-tests, Bonferroni-corrected across the behaviours.
    Returns one row per (behaviour, comparison ``B`` in shuffle/human): test, p (Tukey or
    Bonferroni p; the ANOVA's p when it was not significant), stars, anova_p, note.
    """
    cols = ["behaviour", "A", "B", "test", "p", "stars", "anova_p", "n", "note"]
    groups = [g for g in ("model", "shuffle", "human") if g in set(table["group"])]
    others = [g for g in groups if g != "model"]
    behaviours = list(dict.fromkeys(table["behaviour"]))
    rows: list[dict] = []
    if "model" not in groups or not others:
        return pd.DataFrame(columns=cols)
    n_by = {b: _complete_subjects(table[table["behaviour"] == b], groups) for b in behaviours}
    testable = [b for b in behaviours if n_by[b] >= 2]
    for b in behaviours:
        if b not in testable:
            note = NO_TEST if table.loc[table["behaviour"] == b, "split"].nunique() < 2 else \
                "fewer than 2 splits with every group defined: no test"
            rows += [dict(behaviour=b, A="model", B=o, test="none", n=n_by[b], note=note) for o in others]
    if testable and len(groups) == 2:
        res = paired_by_unit(table[table["behaviour"].isin(testable)], "behaviour", ("model", others[0]))
        rows += [dict(behaviour=b, A="model", B=others[0], **r) for b, r in res.items()]
    elif testable:
        from deg import stats

        for b in testable:
            part = table[table["behaviour"] == b]
            try:
                res = stats.compare_conditions(part, "value", "group", "split", alpha=alpha)
            except (ValueError, ZeroDivisionError) as exc:   # StatsError is a ValueError
                rows += [dict(behaviour=b, A="model", B=o, test="none", n=n_by[b], note=f"test failed: {exc}")
                         for o in others]
                continue
            anova_p = float(res.loc[res["test"] == "rm_anova", "p_unc"].iloc[0])
            tukey = res[res["test"] == "tukey_rm"]
            for o in others:
                hit = tukey[tukey["A"].isin(["model", o]) & tukey["B"].isin(["model", o])]
                if len(hit):
                    rows.append(dict(behaviour=b, A="model", B=o, test="RM ANOVA + Tukey HSD",
                                     p=float(hit["p_corr"].iloc[0]), anova_p=anova_p, n=n_by[b], note=""))
                else:
                    rows.append(dict(behaviour=b, A="model", B=o, test="RM ANOVA (not significant: no post hoc)",
                                     p=anova_p, anova_p=anova_p, n=n_by[b],
                                     note="" if np.isfinite(anova_p) else "ANOVA undefined (no variance)"))
    out = pd.DataFrame(rows, columns=cols)
    out["stars"] = [("n.s." if t.startswith("RM ANOVA (not") and np.isfinite(p) else stars(p))
                    for t, p in zip(out["test"], out["p"].astype(float))]
    order = {b: i for i, b in enumerate(behaviours)}
    return out.sort_values("behaviour", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def behaviour_panel_table(table: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """The source data of a per-behaviour panel: mean/SEM/n per (behaviour, group) and, on the
    shuffle and human rows, the test of model vs that group (p, stars, test, note)."""
    summary = summarise(table, ["behaviour", "group"])
    if tests.empty:
        return summary.assign(test="", p=np.nan, stars="", note="")
    t = tests.rename(columns={"B": "group"})[["behaviour", "group", "test", "p", "stars", "note"]]
    out = summary.merge(t, on=["behaviour", "group"], how="left")
    return out.fillna({"test": "", "stars": "", "note": ""})


# --------------------------------------------------------------------------------------
# Figure 3L-O
# --------------------------------------------------------------------------------------
def model_vs_human(metrics_table: pd.DataFrame, presets: dict[str, str], metric: str = "f1") -> pd.DataFrame:
    """Figure 3L points: per (dataset, behaviour) the mean over splits of the model (preset of
    that dataset in ``presets``) and of the humans; columns dataset, preset, behaviour, model,
    human, n_splits. Behaviours without a human value are left out."""
    rows = []
    for ds, preset in presets.items():
        t = behaviour_table(metrics_table, ds, preset, metric)
        wide = t[t["group"].isin(["model", "human"])].pivot_table(index=["behaviour", "split"], columns="group",
                                                                  values="value", aggfunc="first", sort=False)
        if "human" not in wide.columns or "model" not in wide.columns:
            continue
        wide = wide.dropna(subset=["model", "human"])
        for b, part in wide.groupby(level="behaviour", sort=False):
            rows.append(dict(dataset=ds, preset=preset, behaviour=b, model=float(part["model"].mean()),
                             human=float(part["human"].mean()), n_splits=len(part)))
    return pd.DataFrame(rows, columns=["dataset", "preset", "behaviour", "model", "human", "n_splits"])


def paired_points_test(points: pd.DataFrame, a: str, b: str) -> dict:
    """Paired t-test of columns ``a`` vs ``b`` across the rows (Figure 3L: behaviours);
    a dict with test, statistic, df, p, stars, n, mean_a, mean_b, note."""
    clean = points[[a, b]].dropna()
    out = dict(test="paired t-test", statistic=np.nan, df=np.nan, p=np.nan, n=len(clean),
               mean_a=float(clean[a].mean()) if len(clean) else np.nan,
               mean_b=float(clean[b].mean()) if len(clean) else np.nan, note="")
    if len(clean) < 2:
        out.update(test="none", note=f"{len(clean)} point(s): no test")
    elif np.allclose(clean[a] - clean[b], (clean[a] - clean[b]).iloc[0]):
        out.update(test="none", note="identical differences (no variance): no test")
    else:
        from deg import stats

        long = pd.concat([pd.DataFrame({"unit": range(len(clean)), "group": g, "value": clean[g].to_numpy()})
                          for g in (a, b)])
        res = stats.paired_ttests(long, "value", "group", "unit", pair=(a, b), padjust="none")
        out.update(statistic=float(res["statistic"].iloc[0]), df=float(res["df1"].iloc[0]),
                   p=float(res["p_unc"].iloc[0]))
    out["stars"] = stars(out["p"])
    return out


def train_frames_points(metrics_table: pd.DataFrame, train_frames: pd.DataFrame, presets: dict[str, str],
                        metric: str = "f1", source: str = "model") -> pd.DataFrame:
    """Figure 3M / 6D-E points: per-behaviour metric of each run joined with its positive
    training frames (:func:`deg.evaluate.with_train_frames`); one row per (run, behaviour),
    background excluded. ``presets`` maps dataset -> preset to use."""
    from deg.evaluate import with_train_frames

    cols = ["dataset", "preset", "split", "behaviour", "value", "n_positive", "percent_positive"]
    if metrics_table.empty or train_frames.empty:
        return pd.DataFrame(columns=cols)
    sel = metrics_table[(metrics_table["source"] == source) & (metrics_table["video"] == "all")
                        & (metrics_table["metric"] == metric)
                        & ~metrics_table["behaviour"].isin(["background", "macro", "macro_nobg"])]
    sel = sel[[presets.get(d) == p for d, p in zip(sel["dataset"], sel["preset"])]]
    joined = with_train_frames(sel, train_frames.astype({"split": str}))
    return joined[cols].reset_index(drop=True)


def agreement_summary(agreement: pd.DataFrame, presets: dict[str, str], metric: str) -> pd.DataFrame:
    """Figure 3N-O: the model's overall metric (``macro`` accuracy / ``macro_nobg``) on elements
    where the annotators agree vs disagree, per (dataset, split, stratum), averaged over the
    second annotators; columns dataset, preset, split, stratum, value."""
    cols = ["dataset", "preset", "split", "stratum", "value"]
    if agreement.empty:
        return pd.DataFrame(columns=cols)
    sel = agreement[(agreement["source"] == "model") & (agreement["behaviour"] == _overall_row(metric))
                    & (agreement["metric"] == metric)]
    sel = sel[[presets.get(d) == p for d, p in zip(sel["dataset"], sel["preset"])]]
    out = sel.groupby(["dataset", "preset", "split", "stratum"], sort=False)["value"].mean().reset_index()
    return out[cols]


def agreement_tests(summary: pd.DataFrame) -> pd.DataFrame:
    """Paired t-test agree vs disagree per dataset (subjects = splits), Bonferroni across the
    tested datasets (:func:`paired_by_unit`); untestable datasets get a note instead."""
    cols = ["dataset", "test", "p", "stars", "n", "note"]
    res = paired_by_unit(summary, "dataset", ("agree", "disagree"), within="stratum")
    out = pd.DataFrame([dict(dataset=d, **r) for d, r in res.items()], columns=cols)
    out["stars"] = [stars(p) for p in out["p"].astype(float)]
    return out


# --------------------------------------------------------------------------------------
# Figure 3P: ethogram examples
# --------------------------------------------------------------------------------------
def _as_dataset(dataset):
    if isinstance(dataset, (str, Path)):
        from deg.data.datasets import open_dataset

        return open_dataset(dataset)
    return dataset


def ethogram_metrics(labels: np.ndarray, preds: np.ndarray, probs: np.ndarray | None,
                     behaviours: Sequence[str]) -> pd.DataFrame:
    """Per-behaviour and overall accuracy and F1 of one ethogram (the margin of Figure 3P):
    columns behaviour, metric, value (overall rows: ``macro`` accuracy, ``macro_nobg`` F1)."""
    table = metrics.metrics_table(labels, preds, probs, list(behaviours))
    keep = table["metric"].isin(["accuracy", "f1"]) & ~table["behaviour"].isin(["macro", "macro_nobg"])
    keep |= (table["behaviour"] == "macro") & (table["metric"] == "accuracy")
    keep |= (table["behaviour"] == "macro_nobg") & (table["metric"] == "f1")
    return table.loc[keep, ["behaviour", "metric", "value", "n_true", "status"]].reset_index(drop=True)


def write_ethogram_example(run_dir: str | Path, dataset) -> Path:
    """Write ``<run_dir>/ethogram_example.npz`` for Figure 3P: one evaluated video's labels
    (training annotator, (T, K) int8, -1 unlabelled), the model's ``preds`` (T, K) uint8 and
    ``probs`` (T, K) float32, ``behaviours`` (K,) and ``video`` (scalar string).

    The video is the evaluated one (test set; validation for a subsample run) whose
    per-behaviour F1 is closest to the F1 pooled over all evaluated videos (mean absolute
    difference over the behaviours defined in both): the paper chose examples "similar to the
    model's average by behavior". ``dataset`` is a :class:`deg.data.datasets.Dataset` or an id.
    """
    from deg.evaluate import read_predictions, read_split

    run_dir = Path(run_dir)
    ds = _as_dataset(dataset)
    split = read_split(run_dir)
    videos = split["test"] or split["val"]
    if not videos:
        raise FigureDataError(f"{run_dir / 'split.json'}: no test or validation videos")
    labels = {v: np.asarray(ds.labels(v)) for v in videos}
    preds = {v: read_predictions(run_dir, v, labels[v].shape) for v in videos}

    def f1s(lab, prd):
        t = metrics.metrics_table(lab, prd, None, ds.behaviours)
        t = t[(t["metric"] == "f1") & ~t["behaviour"].isin(["macro", "macro_nobg"])]
        return t["value"].to_numpy(dtype=float)

    pooled = f1s(np.concatenate([labels[v] for v in videos]), np.concatenate([preds[v]["preds"] for v in videos]))
    distance = {}
    for v in videos:
        diff = np.abs(f1s(labels[v], preds[v]["preds"]) - pooled)
        distance[v] = float(np.nanmean(diff)) if np.isfinite(diff).any() else np.inf
    video = min(videos, key=lambda v: (distance[v], videos.index(v)))
    return io.write_npz(run_dir / ETHOGRAM_FILE, video=np.array(video), labels=labels[video].astype(np.int8),
                        preds=preds[video]["preds"].astype(np.uint8), probs=preds[video]["probs"].astype(np.float32),
                        behaviours=np.array(list(ds.behaviours)), annotator=np.array(ds.train_annotator))


def read_ethogram_example(path: str | Path) -> dict:
    """Read an ``ethogram_example.npz``; checks keys and (T, K) shapes, names the file if not."""
    path = Path(path)
    try:
        with np.load(path) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise FigureDataError(f"{path}: not a readable npz file ({exc})") from exc
    missing = [k for k in ETHOGRAM_KEYS if k not in data]
    if missing:
        raise FigureDataError(f"{path}: lacks {missing} (has {sorted(data)})")
    K = len(data["behaviours"])
    for key in ("labels", "preds", "probs"):
        if data[key].ndim != 2 or data[key].shape[1] != K or data[key].shape != data["labels"].shape:
            raise FigureDataError(f"{path}: {key!r} has shape {data[key].shape}; expected (T, {K}) like labels")
    data["video"] = str(data["video"])
    data["annotator"] = str(data.get("annotator", "training annotator"))
    data["behaviours"] = [str(b) for b in data["behaviours"]]
    return data


def example_window(labels: np.ndarray, max_frames: int) -> tuple[int, int]:
    """(start, stop) of at most ``max_frames`` frames showing the most distinct behaviours
    (ties: the earliest window); the whole video when it is short enough."""
    T = labels.shape[0]
    if T <= max_frames:
        return 0, T
    pos = (np.asarray(labels) == 1).astype(np.int64)
    csum = np.vstack([np.zeros((1, pos.shape[1]), np.int64), np.cumsum(pos, axis=0)])
    starts = np.arange(0, T - max_frames + 1)
    counts = csum[starts + max_frames] - csum[starts]      # (n_windows, K) positives per window
    n_present = (counts > 0).sum(axis=1)
    start = int(starts[np.argmax(n_present)])
    return start, start + max_frames


# --------------------------------------------------------------------------------------
# Figure 6: training-set size
# --------------------------------------------------------------------------------------
def subsample_table(metrics_table: pd.DataFrame, metric: str, source: str = "model",
                    preset: str = SUBSAMPLE_PRESET) -> pd.DataFrame:
    """Per-behaviour values of the subsample runs (``sub<n>_d<draw>``; evaluated on their
    validation videos), background excluded: dataset, behaviour, split, n_train, draw, value."""
    cols = ["dataset", "behaviour", "split", "n_train", "draw", "source", "value"]
    if metrics_table.empty:
        return pd.DataFrame(columns=cols)
    sel = metrics_table[(metrics_table["source"] == source) & (metrics_table["video"] == "all")
                        & (metrics_table["metric"] == metric) & (metrics_table["preset"] == preset)
                        & metrics_table["split"].map(lambda s: split_kind(str(s)) == "subsample")
                        & ~metrics_table["behaviour"].isin(["background", "macro", "macro_nobg"])].copy()
    parsed = [parse_subsample(s) for s in sel["split"]]
    sel["n_train"] = [n for n, _ in parsed]
    sel["draw"] = [d for _, d in parsed]
    return sel[cols].sort_values(["dataset", "behaviour", "n_train", "draw"], kind="stable").reset_index(drop=True)


def fe_vs_model(metrics_table: pd.DataFrame, metric: str, preset: str = SUBSAMPLE_PRESET) -> pd.DataFrame:
    """Figure 6F-G points: per (dataset, behaviour, subsample run) the feature extractor's and
    the sequence model's value (columns ``feature_extractor``, ``model``)."""
    parts = [subsample_table(metrics_table, metric, source, preset) for source in ("feature_extractor", "model")]
    long = pd.concat(parts, ignore_index=True)
    cols = ["dataset", "behaviour", "split", "n_train", "draw", "feature_extractor", "model"]
    if long.empty:
        return pd.DataFrame(columns=cols)
    wide = long.pivot_table(index=["dataset", "behaviour", "split", "n_train", "draw"], columns="source",
                            values="value", aggfunc="first").reset_index()
    wide.columns.name = None
    for c in ("feature_extractor", "model"):
        if c not in wide.columns:
            wide[c] = np.nan
    return wide[cols]


# What each stage of DEG adds, in pipeline order: each stream alone, both fused, the sequence model
STAGE_SOURCES = ("flow_stream", "spatial_stream", "feature_extractor", "model")


def stage_table(metrics_table: pd.DataFrame, metric: str, preset: str = SUBSAMPLE_PRESET) -> pd.DataFrame:
    """Per (dataset, behaviour, source) the mean, SEM and n over the split runs of ``preset`` of the
    test-set ``metric`` of each stage (:data:`STAGE_SOURCES`) and of chance (``shuffle``), background
    left out, ``macro_nobg`` included. Runs whose features predate the per-stream sources have no
    stream rows; the table then holds only the sources they have."""
    cols = ["dataset", "behaviour", "source", "n", "mean", "sem", "values"]
    if metrics_table.empty:
        return pd.DataFrame(columns=cols)
    sel = metrics_table[metrics_table["source"].isin([*STAGE_SOURCES, "shuffle"]) & (metrics_table["video"] == "all")
                        & (metrics_table["metric"] == metric) & (metrics_table["preset"] == preset)
                        & metrics_table["split"].map(lambda s: split_kind(str(s)) == "split")
                        & ~metrics_table["behaviour"].isin(["background", "macro"])]
    out = summarise(sel, ["dataset", "behaviour", "source"])
    order = {name: i for i, name in enumerate([*STAGE_SOURCES, "shuffle"])}
    return out.sort_values(["dataset", "source"], key=lambda c: c.map(order) if c.name == "source" else c,
                           kind="stable").reset_index(drop=True)[cols]


def fe_vs_model_tests(points: pd.DataFrame) -> pd.DataFrame:
    """Paired t-test feature extractor vs sequence model per (dataset, behaviour), subjects =
    subsample runs, Bonferroni-corrected across the tested behaviours (paper, Figure 6F-G)."""
    cols = ["dataset", "behaviour", "test", "p", "stars", "n", "mean_feature_extractor", "mean_model", "note"]
    if points.empty:
        return pd.DataFrame(columns=cols)
    long = points.assign(unit=points["dataset"] + "/" + points["behaviour"]).melt(
        id_vars=["unit", "dataset", "behaviour", "split"], value_vars=["feature_extractor", "model"],
        var_name="source", value_name="value")
    res = paired_by_unit(long, "unit", ("feature_extractor", "model"), within="source")
    rows = []
    for (ds, b), part in points.groupby(["dataset", "behaviour"], sort=False):
        clean = part.dropna(subset=["feature_extractor", "model"])
        rows.append(dict(dataset=ds, behaviour=b, mean_feature_extractor=clean["feature_extractor"].mean(),
                         mean_model=clean["model"].mean(), **res[f"{ds}/{b}"]))
    out = pd.DataFrame(rows, columns=cols)
    out["stars"] = [stars(p) for p in out["p"].astype(float)]
    return out
