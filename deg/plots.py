"""Shared figure style and the one way a panel is saved.

Every panel goes out as PNG + PDF + the CSV of exactly the numbers drawn (its source data), and is
recorded in the figure folder's ``manifest.json`` (published by :func:`finish_figure` only when
the notebook reaches its end) so that the index and the tests can list what a
figure notebook produced. Panels made from synthetic data carry "(synthetic data)" in their title:
:func:`title` adds it.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from deg import io, paths  # noqa: E402

PRESET_COLORS = {"DEG_f": "#4C72B0", "DEG_m": "#DD8452", "DEG_s": "#55A868"}
SOURCE_COLORS = {"model": "#4C72B0", "shuffle": "#9E9E9E", "human": "#C44E52", "feature_extractor": "#8172B3",
                 "flow_stream": "#55A868", "spatial_stream": "#DD8452"}
SYNTHETIC_TAG = "(synthetic data)"
MANIFEST = "manifest.json"
PARTIAL = ".manifest.partial.json"


def set_style() -> None:
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 200, "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8,
        "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
        "pdf.fonttype": 42, "ps.fonttype": 42,
    })


def title(text: str, synthetic: bool) -> str:
    """A panel title, tagged when its data are synthetic (honesty rule of the README)."""
    return f"{text} {SYNTHETIC_TAG}" if synthetic and SYNTHETIC_TAG not in text else text


def figure_dir(profile: str, figure: str) -> Path:
    return paths.figures_dir() / profile / figure


def save_panel(fig: plt.Figure, source: pd.DataFrame, profile: str, figure: str, panel: str,
               caption: str = "", paper: str = "", test: str = "") -> dict[str, str]:
    """Write ``<figure>/<panel>.{png,pdf,csv}`` atomically and record it in the manifest.

    ``paper`` names the paper's counterpart (e.g. "Figure 3B"), ``test`` the statistical test used.
    """
    out = figure_dir(profile, figure)
    written = {}
    for ext in ("png", "pdf"):
        with io.atomic_path(out / f"{panel}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight")
        written[ext] = f"{panel}.{ext}"
    io.write_csv(out / f"{panel}.csv", source)
    written["csv"] = f"{panel}.csv"
    plt.close(fig)
    partial = out / PARTIAL
    manifest = json.loads(partial.read_text()) if partial.exists() else {"figure": figure, "panels": {}}
    manifest["panels"][panel] = {"files": written, "caption": caption, "paper": paper, "test": test}
    io.write_json(partial, manifest)
    return written


def start_figure(profile: str, figure: str) -> Path:
    """Clear a figure's manifest before its notebook (re)writes the panels; returns the folder.

    Temporary files of an earlier attempt killed mid-write (``.tmp-*``, :mod:`deg.io`) go too: one
    notebook writes a figure at a time (one Snakemake job per figure)."""
    out = figure_dir(profile, figure)
    io.ensure_dir(out)
    (out / MANIFEST).unlink(missing_ok=True)
    (out / PARTIAL).unlink(missing_ok=True)
    for stale in out.glob(".tmp-*"):
        stale.unlink(missing_ok=True)
    set_style()
    return out


def finish_figure(profile: str, figure: str, notes: dict | None = None) -> Path:
    """Publish the manifest: only a notebook that reached its last cell leaves ``manifest.json``."""
    out = figure_dir(profile, figure)
    partial = out / PARTIAL
    manifest = json.loads(partial.read_text()) if partial.exists() else {"figure": figure, "panels": {}}
    manifest["notes"] = notes or {}
    io.write_json(out / MANIFEST, manifest)
    partial.unlink(missing_ok=True)
    return out / MANIFEST
