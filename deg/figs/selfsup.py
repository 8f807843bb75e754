"""Figure "selfsup": Selfee's k-NN scores and embedding, and DEG from its default start vs self-supervised weights.

Reads only ``results/<profile>/``:

* ``<ds>/selfee/split<k>/metrics.csv`` and ``knn.csv`` (:mod:`deg.selfee`): k-NN F1 per behaviour
  on the test videos, with the circular-shift chance level, the simulated annotators and the
  random-initialisation control; ``<ds>/selfee/embedding.csv``: the t-SNE map.
* ``<ds>/<preset>/<split>/metrics.csv`` (the default start: :data:`SCRATCH`) and ``<ds>/selfsup/<preset>/<split>/metrics.csv``
  (``pretrained="selfsup"``, same profile, same step budget): test F1 per behaviour (split runs)
  and validation F1 vs training videos (``sub<n>_d<d>`` runs, Figure 6's axis).

Statistics: mean +/- SEM over splits; default start vs self-supervised by a paired t-test over splits
(subjects = splits) per behaviour, Bonferroni across behaviours (:func:`deg.stats.paired_ttests`);
with fewer than 2 paired splits no test is possible and the table says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from deg.figs.performance import split_kind, summarise

# The profile's ordinary start (Kinetics files when present, else random weights; under a profile with
# flow_shapes_steps, DEG_f's flow generator from the moving-shapes pretraining) vs pretrained="selfsup"
SCRATCH, SELFSUP = "default start", "self-supervised"
CONDITION_COLORS = {SCRATCH: "#4C72B0", SELFSUP: "#C44E52"}


def _read(paths: Sequence[Path], **tags) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype={"split": str, "video": str}).assign(**tags) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _f1_rows(table: pd.DataFrame, source: str = "model") -> pd.DataFrame:
    if table.empty:
        return table
    sel = (table["metric"] == "f1") & (table["source"] == source)
    if "video" in table:
        sel &= table["video"] == "all"
    return table[sel & ~table["behaviour"].isin(["background", "macro"])]     # macro_nobg stays: the mean


# --------------------------------------------------------------------------------------
# Selfee: k-NN scores and embedding
# --------------------------------------------------------------------------------------
def knn_scores_table(results: str | Path, dataset: str) -> pd.DataFrame:
    """Test F1 per behaviour (macro_nobg included) of every split: Selfee k-NN (mode filter and single
    frame), random-initialisation control, chance and the simulated annotators; long format with
    ``group`` naming the bar."""
    root = Path(results) / dataset / "selfee"
    runs = sorted(p for p in root.glob("split*/metrics.csv"))
    if not runs:
        return pd.DataFrame(columns=["dataset", "split", "behaviour", "group", "value"])
    metrics = _read(runs)
    knn = _read(sorted(root.glob("split*/knn.csv")))
    parts = []
    names = {"model": "Selfee k-NN (mode filter)", "feature_extractor": "Selfee k-NN (single frame)",
             "shuffle": "chance (shuffled)"}
    for source, group in names.items():
        parts.append(_f1_rows(metrics, source).assign(group=group))
    for annotator in sorted(set(metrics["source"]) - set(names)):
        parts.append(_f1_rows(metrics, annotator).assign(group=f"annotator {annotator}"))
    if not knn.empty:
        parts.append(_f1_rows(knn[knn["representation"] == "random_init"], "model").assign(
            group="random-init network k-NN (mode filter)"))
    out = pd.concat(parts, ignore_index=True)
    out["dataset"] = dataset
    return out[["dataset", "split", "behaviour", "group", "value"]]


def draw_knn_scores(table: pd.DataFrame, title: str) -> tuple[plt.Figure, pd.DataFrame]:
    """Grouped bars: mean +/- SEM over splits of F1 per behaviour and group."""
    summary = summarise(table, ["behaviour", "group"])
    behaviours = list(dict.fromkeys(table["behaviour"]))
    groups = list(dict.fromkeys(table["group"]))
    fig, ax = plt.subplots(figsize=(max(3.2, 0.6 * len(behaviours) * max(1, len(groups)) / 2.5), 2.6))
    width = 0.8 / max(1, len(groups))
    for i, group in enumerate(groups):
        part = summary[summary["group"] == group].set_index("behaviour").reindex(behaviours)
        ax.bar(np.arange(len(behaviours)) + i * width - 0.4 + width / 2, part["mean"], width,
               yerr=part["sem"].fillna(0), capsize=1.5, label=group)
    ax.set_xticks(range(len(behaviours)), behaviours, rotation=30, ha="right")
    ax.set_ylabel("test F1")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=5, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title, fontsize=8)
    return fig, summary


def draw_embedding(table: pd.DataFrame, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(3.0, 2.8))
    for behaviour, part in table.groupby("behaviour", sort=True):
        ax.scatter(part["x"], part["y"], s=3, alpha=0.7, label=f"{behaviour} ({len(part)})")
    ax.set_xticks([]); ax.set_yticks([])
    ax.set_xlabel("t-SNE 1"); ax.set_ylabel("t-SNE 2")
    ax.legend(fontsize=5, markerscale=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------
# DEG from its default start vs self-supervised initialisation
# --------------------------------------------------------------------------------------
def init_comparison_table(results: str | Path, dataset: str, preset: str, kind: str = "split") -> pd.DataFrame:
    """Model F1 rows (pooled over the evaluated videos) of the scratch and self-supervised runs of
    ``kind`` ("split" or "subsample") that exist for *both* conditions, with ``condition``."""
    root = Path(results) / dataset
    scratch = {p.parent.name: p for p in root.glob(f"{preset}/*/metrics.csv") if split_kind(p.parent.name) == kind}
    selfsup = {p.parent.name: p for p in root.glob(f"selfsup/{preset}/*/metrics.csv")
               if split_kind(p.parent.name) == kind}
    both = sorted(set(scratch) & set(selfsup))
    table = pd.concat([_read([scratch[s] for s in both], condition=SCRATCH),
                       _read([selfsup[s] for s in both], condition=SELFSUP)], ignore_index=True) if both else pd.DataFrame()
    if table.empty:
        return pd.DataFrame(columns=["dataset", "split", "behaviour", "condition", "value", "subset"])
    rows = _f1_rows(table)
    out = rows[["dataset", "split", "behaviour", "condition", "value", "subset"]].copy()
    out["dataset"] = dataset
    if kind == "subsample":
        out["n_train"] = out["split"].str.extract(r"sub(\d+)_d\d+", expand=False).astype(int)
    return out.reset_index(drop=True)


def paired_tests(table: pd.DataFrame) -> pd.DataFrame:
    """Scratch vs self-supervised per behaviour: paired t-test over splits, Bonferroni across behaviours."""
    from deg import stats

    rows, testable = [], []
    for behaviour, part in table.groupby("behaviour", sort=False):
        wide = part.pivot_table(index="split", columns="condition", values="value").dropna()
        if len(wide) < 2 or wide.shape[1] < 2 or np.allclose(wide[SCRATCH] - wide[SELFSUP], 0):
            rows.append({"group": behaviour, "test": "none", "n": len(wide),
                         "note": f"{len(wide)} paired split(s) with F1 in both conditions: no paired test"})
        else:
            testable.append(behaviour)
    if testable:
        res = stats.paired_ttests(table[table["behaviour"].isin(testable)].dropna(subset=["value"]), dv="value",
                                  within="condition", subject="split", by="behaviour", pair=(SCRATCH, SELFSUP))
        rows += res.to_dict("records")
    return pd.DataFrame(rows)


def draw_init_per_behaviour(table: pd.DataFrame, tests: pd.DataFrame, title: str) -> tuple[plt.Figure, pd.DataFrame]:
    summary = summarise(table, ["behaviour", "condition"])
    behaviours = list(dict.fromkeys(table["behaviour"]))
    fig, ax = plt.subplots(figsize=(max(3.0, 0.55 * len(behaviours)), 2.5))
    for i, condition in enumerate((SCRATCH, SELFSUP)):
        part = summary[summary["condition"] == condition].set_index("behaviour").reindex(behaviours)
        ax.bar(np.arange(len(behaviours)) + (i - 0.5) * 0.4, part["mean"], 0.4, yerr=part["sem"].fillna(0),
               capsize=2, color=CONDITION_COLORS[condition], label=condition)
    if "p_corr" in tests:
        for j, behaviour in enumerate(behaviours):
            hit = tests[(tests["group"] == behaviour) & tests["p_corr"].notna()]
            if len(hit):
                ax.text(j, 1.0, f"p={float(hit['p_corr'].iloc[0]):.2g}", ha="center", fontsize=5)
    ax.set_xticks(range(len(behaviours)), behaviours, rotation=30, ha="right")
    ax.set_ylabel("test F1")
    ax.set_ylim(0, 1.08)
    ax.legend(fontsize=6)
    ax.set_title(title, fontsize=8)
    return fig, summary


def draw_init_vs_size(table: pd.DataFrame, title: str) -> tuple[plt.Figure, pd.DataFrame]:
    macro = table[table["behaviour"] == "macro_nobg"]
    summary = summarise(macro, ["n_train", "condition"])
    fig, ax = plt.subplots(figsize=(2.8, 2.4))
    for condition, part in summary.groupby("condition", sort=False):
        part = part.sort_values("n_train")
        ax.errorbar(part["n_train"], part["mean"], yerr=part["sem"].fillna(0), marker="o", ms=3, capsize=2,
                    color=CONDITION_COLORS.get(condition), label=condition)
    sizes = sorted(macro["n_train"].unique())
    if sizes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
    ax.set_xlabel("training videos")
    ax.set_ylabel("validation F1, no background")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=6)
    ax.set_title(title, fontsize=8)
    return fig, summary
