"""Tables and drawing code of the pose-method figures (Figure 5-figure supplements 1, 2; methods table).

Reads only ``results/<profile>/``: the pose runs' tables (:mod:`deg.pose.run`) and DEG's run
tables (``<dataset>/DEG_*/split<k>/``), both in :mod:`deg.evaluate`'s columns. Every summary is
a mean +/- SEM over splits (each split's test set pooled), the paper's unit of replication.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from deg import evaluate
from deg.figs.bouts import FigureDataError

POSE_METHODS = ("pose_mlp", "pose_unsup", "contrastive_pose", "rf_features", "rf_coords")
DEG_METHODS = ("DEG_f", "DEG_m", "DEG_s")
METHOD_LABELS = {"DEG_f": "DEG_f", "DEG_m": "DEG_m", "DEG_s": "DEG_s", "pose_mlp": "keypoint MLP",
                 "pose_unsup": "unsupervised+assign", "contrastive_pose": "ContrastivePose+RF",
                 "rf_features": "RF hand features", "rf_coords": "RF coordinates", "human": "human", "chance": "chance"}
METHOD_COLORS = {"DEG_f": "#4C72B0", "DEG_m": "#DD8452", "DEG_s": "#55A868", "pose_mlp": "#8172B3",
                 "pose_unsup": "#937860", "contrastive_pose": "#DA8BC3", "rf_features": "#8C8C8C",
                 "rf_coords": "#CCB974"}
SUMMARY_METRICS = {"accuracy": "macro", "f1": "macro_nobg", "auroc": "macro_nobg"}


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
def load_runs(results: str | Path, datasets: Sequence[str], methods: Sequence[str], table: str = "metrics") -> pd.DataFrame:
    """``<table>.csv`` of every ``<dataset>/<method>/split<k>/`` run; an empty frame when none."""
    files = [p for ds in datasets for m in methods for p in sorted((Path(results) / ds / m).glob(f"split*/{table}.csv"))]
    frames = []
    for path in files:
        try:
            frames.append(pd.read_csv(path, dtype={"split": str, "video": str}))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise FigureDataError(f"{path}: unreadable CSV ({exc})") from exc
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_meta(results: str | Path, dataset: str, method: str = "pose_mlp") -> dict:
    """``run.json`` of the first split of a pose run (dataset summary, skeleton, synthetic flag)."""
    paths = sorted((Path(results) / dataset / method).glob("split*/run.json"))
    if not paths:
        raise FigureDataError(f"{Path(results) / dataset / method}: no run.json; run deg.pose.run first")
    return json.loads(paths[0].read_text())


def _sem(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------
def split_values(metrics: pd.DataFrame, behaviour: str | None = None) -> pd.DataFrame:
    """Per (dataset, method, split, source-kind, metric): the pooled test value.

    ``kind``: ``model``, ``chance`` (shuffle) or ``human`` (annotators other than the truth,
    averaged). ``behaviour`` None: accuracy of ``macro`` and F1/AUROC of ``macro_nobg``.
    """
    if metrics.empty:
        return pd.DataFrame(columns=["dataset", "method", "split", "kind", "metric", "behaviour", "value"])
    m = metrics[(metrics.video == "all") & metrics.split.astype(str).str.startswith("split")]
    frames = []
    for metric, macro in SUMMARY_METRICS.items():
        part = m[(m.metric == metric) & (m.behaviour == (behaviour or macro))]
        # the model's other sources (feature extractor, streams) are left out; the rest are annotators
        kind = np.where(part.source == "model", "model", np.where(part.source == "shuffle", "chance",
                        np.where(part.source.isin(evaluate.SOURCES), "other_model", "human")))
        part = part.assign(kind=kind, method=part.preset)
        part = part[part.kind != "other_model"]
        frames.append(part.groupby(["dataset", "method", "split", "kind", "metric", "behaviour"], as_index=False)
                      ["value"].mean())
    return pd.concat(frames, ignore_index=True)


def methods_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every (dataset, method): test accuracy / macro F1 / AUROC mean, SEM and n over splits,
    chance (shuffle) F1 and human F1 (other annotators vs the training annotator, same test units)."""
    values = split_values(metrics)
    rows = []
    for (ds, method), part in values.groupby(["dataset", "method"], sort=False):
        row = {"dataset": ds, "method": method, "label": METHOD_LABELS.get(method, method),
               "n_splits": int(part[part.kind == "model"].split.nunique())}
        for metric in SUMMARY_METRICS:
            for kind in ("model", "chance", "human"):
                v = part[(part.kind == kind) & (part.metric == metric)].value
                prefix = "" if kind == "model" else f"{kind}_"
                row[f"{prefix}{metric}"] = float(v.mean()) if len(v) else float("nan")
                row[f"{prefix}{metric}_sem"] = _sem(v)
        rows.append(row)
    return pd.DataFrame(rows)


def method_tests(metrics: pd.DataFrame, reference: dict[str, str], metric: str = "f1") -> pd.DataFrame:
    """Paired t-tests (subjects = splits; Bonferroni across the comparisons of a dataset) of each
    method against the dataset's reference method, on the macro metric. With fewer than two
    common splits the row says so instead of testing."""
    from deg import stats

    values = split_values(metrics)
    values = values[(values.kind == "model") & (values.metric == metric)]
    frames = []
    for ds, part in values.groupby("dataset", sort=False):
        ref = reference.get(ds)
        if ref not in set(part.method):
            continue
        for method in [m for m in pd.unique(part.method) if m != ref]:
            pair = part[part.method.isin([ref, method])]
            common = set(pair[pair.method == ref].split) & set(pair[pair.method == method].split)
            pair = pair[pair.split.isin(common)]
            if len(common) < 2:
                frames.append(pd.DataFrame([{"dataset": ds, "A": ref, "B": method, "n": len(common),
                                             "note": f"n={len(common)} split(s): no test"}]))
                continue
            res = stats.paired_ttests(pair, "value", "method", "split", pair=(ref, method), padjust="none")
            frames.append(res.assign(dataset=ds, note=""))
    if not frames:
        return pd.DataFrame(columns=["dataset", "A", "B", "n", "p_unc", "p_corr", "note"])
    out = pd.concat(frames, ignore_index=True)
    if "p_unc" in out:
        for ds, idx in out.groupby("dataset").groups.items():
            p = out.loc[idx, "p_unc"]
            out.loc[idx, "p_corr"] = np.minimum(p * p.notna().sum(), 1.0)   # Bonferroni per dataset
    return out


def per_behaviour(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(dataset, method, behaviour): mean / SEM / n over splits of the model's pooled test value."""
    m = metrics[(metrics.video == "all") & (metrics.source == "model") & (metrics.metric == metric)
                & ~metrics.behaviour.isin(["macro", "macro_nobg"]) & metrics.split.astype(str).str.startswith("split")]
    return (m.groupby(["dataset", "preset", "behaviour"], sort=False)["value"]
            .agg(mean="mean", sem=_sem, n="count").reset_index().rename(columns={"preset": "method"}))


def bout_pairs(bouts: pd.DataFrame, truth: dict[str, str]) -> pd.DataFrame:
    """Model vs the training annotator, per (dataset, method, behaviour, metric): the split means
    of the test videos' mean bout statistics, averaged over splits."""
    b = bouts[(bouts.video == "mean") & bouts.split.astype(str).str.startswith("split")]
    rows = []
    for (ds, method), part in b.groupby(["dataset", "preset"], sort=False):
        human = part[part.source == truth.get(ds)]
        model = part[part.source == "model"]
        merged = model.merge(human, on=["split", "behaviour", "metric"], suffixes=("_model", "_human"))
        agg = merged.groupby(["behaviour", "metric"], sort=False).agg(
            model=("value_model", "mean"), human=("value_human", "mean"), n_splits=("split", "nunique")).reset_index()
        rows.append(agg.assign(dataset=ds, method=method))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


# --------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------
def draw_feature_distributions(values: pd.DataFrame, behaviours: Sequence[str]):
    """Box plots of each feature per behaviour (Figure 5-S1C); values: behaviour, feature, value."""
    features = list(pd.unique(values.feature))
    fig, axes = plt.subplots(1, len(features), figsize=(1.6 * len(features) + 0.6, 2.4), squeeze=False)
    present = [b for b in behaviours if b in set(values.behaviour)]
    for ax, feat in zip(axes[0], features):
        part = values[values.feature == feat]
        data = [part[part.behaviour == b].value.to_numpy() for b in present]
        ax.boxplot(data, showfliers=False, widths=0.6)
        ax.set_xticks(range(1, len(present) + 1), present, rotation=60, fontsize=6)
        ax.set_title(feat.replace("dist_", "d "), fontsize=7)
    axes[0][0].set_ylabel("value (arena units)")
    fig.tight_layout()
    return fig


def _error_bars(ax, x, mean, sem) -> None:
    """SEM bars where the SEM exists (one split: none drawn, not a zero-length bar)."""
    x, mean, sem = (np.asarray(v, dtype=float) for v in (x, mean, sem))
    ok = np.isfinite(sem) & np.isfinite(mean)
    if ok.any():
        ax.errorbar(x[ok], mean[ok], yerr=sem[ok], fmt="none", ecolor="black", elinewidth=0.6, capsize=1.5)


def draw_per_behaviour(table: pd.DataFrame, metric: str, methods: Sequence[str], behaviours: Sequence[str], ax):
    """Grouped bars mean +/- SEM over splits per behaviour, one bar per method."""
    present = [b for b in behaviours if b in set(table.behaviour)]
    width = 0.8 / max(len(methods), 1)
    for j, method in enumerate(methods):
        part = table[table.method == method].set_index("behaviour")
        x = np.arange(len(present)) + (j - (len(methods) - 1) / 2) * width
        mean = [part["mean"].get(b, np.nan) for b in present]
        sem = [part["sem"].get(b, np.nan) for b in present]
        ax.bar(x, mean, width * 0.9, color=METHOD_COLORS.get(method, "grey"), label=METHOD_LABELS.get(method, method))
        _error_bars(ax, x, mean, sem)
    ax.set_xticks(range(len(present)), present, rotation=45, fontsize=6.5)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.05)


def draw_bout_scatter(pairs: pd.DataFrame, methods: Sequence[str], axes, metrics=("percent_time", "n_bouts", "mean_bout_s")):
    """Model vs human bout statistics per behaviour (one axis per statistic), unity line."""
    for ax, metric in zip(axes, metrics):
        part = pairs[pairs.metric == metric]
        for method in methods:
            p = part[part.method == method]
            ax.scatter(p.human, p.model, s=12, color=METHOD_COLORS.get(method, "grey"),
                       label=METHOD_LABELS.get(method, method))
        hi = float(np.nanmax(part[["human", "model"]].to_numpy())) if len(part) else 1.0
        hi = hi if np.isfinite(hi) and hi > 0 else 1.0
        ax.plot([0, hi * 1.05], [0, hi * 1.05], color="grey", lw=0.7, zorder=0)
        ax.set_xlabel(f"human: {metric}")
        ax.set_ylabel(f"model: {metric}")


def draw_embedding(emb: pd.DataFrame, ax, colour_by: str = "cluster"):
    """UMAP 1 vs 2 of the embedded bins coloured by cluster (noise grey) or by human label."""
    values = emb[colour_by].astype(str)
    cats = sorted(pd.unique(values), key=lambda c: (c == "-1", c))
    cmap = plt.cm.tab20(np.linspace(0, 1, max(len(cats), 2)))
    for i, c in enumerate(cats):
        sel = values == c
        colour = "lightgrey" if c == "-1" else cmap[i]
        ax.scatter(emb.umap1[sel], emb.umap2[sel], s=2, color=colour, label=("noise" if c == "-1" else c),
                   linewidths=0, rasterized=True)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")


def cooccurrence_matrix(co: pd.DataFrame, behaviours: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(fraction of each behaviour's frames per cluster (C, K), assigned mask (C, K), cluster ids)."""
    clusters = sorted(co.cluster.unique())
    frames = co.pivot_table(index="cluster", columns="behaviour", values="frames", aggfunc="sum").reindex(
        index=clusters, columns=list(behaviours)).fillna(0).to_numpy(float)
    assigned = co.pivot_table(index="cluster", columns="behaviour", values="assigned", aggfunc="max").reindex(
        index=clusters, columns=list(behaviours)).fillna(False).to_numpy(bool)
    total = frames.sum(0, keepdims=True)
    return np.divide(frames, total, out=np.zeros_like(frames), where=total > 0), assigned, clusters


def draw_cooccurrence(fraction: np.ndarray, assigned: np.ndarray, clusters, behaviours, ax):
    """Heatmap clusters x behaviours (column-normalised); red boxes = the chosen assignment."""
    im = ax.imshow(fraction, aspect="auto", cmap="viridis", vmin=0, vmax=max(float(fraction.max()), 1e-9))
    for c, k in zip(*np.nonzero(assigned)):
        ax.add_patch(plt.Rectangle((k - 0.5, c - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
    ax.set_xticks(range(len(behaviours)), behaviours, rotation=45, fontsize=6.5)
    ax.set_yticks(range(len(clusters)), clusters, fontsize=6)
    ax.set_xlabel("human label")
    ax.set_ylabel("cluster")
    return im


def draw_methods(summary: pd.DataFrame, ax, metric: str = "f1"):
    """Bars per dataset x method (mean +/- SEM over splits), chance as black ticks, human as a red line."""
    datasets = list(pd.unique(summary.dataset))
    x0 = 0.0
    ticks = []
    for ds in datasets:
        part = summary[summary.dataset == ds]
        xs = x0 + np.arange(len(part))
        ax.bar(xs, part[metric], 0.8, color=[METHOD_COLORS.get(m, "grey") for m in part.method])
        _error_bars(ax, xs, part[metric].to_numpy(), part[f"{metric}_sem"].to_numpy())
        ax.scatter(xs, part[f"chance_{metric}"], marker="_", color="black", s=60, zorder=3)
        human = part[f"human_{metric}"].dropna()
        if len(human):
            ax.hlines(float(human.mean()), xs[0] - 0.4, xs[-1] + 0.4, color="#C44E52", lw=1.2)
        ticks += list(zip(xs, part.label))
        ax.text(x0 + (len(part) - 1) / 2, 1.07, ds, ha="center", fontsize=6.5, transform=ax.get_xaxis_transform())
        x0 += len(part) + 1
    ax.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks], rotation=60, fontsize=6)
    ax.set_ylabel(f"test {metric} (macro)" if metric != "accuracy" else "test accuracy")
    ax.set_ylim(0, 1.05)
