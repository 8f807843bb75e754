"""Tables 1 and 2: inference speed (from ``results/bench.json``) and parameter counts.

* Table 1 (paper: "Inference speed", frames/s per dataset resolution and preset on a Titan RTX
  and a GeForce 1080 Ti): :func:`read_bench` reads what ``make bench`` (:mod:`deg.bench`) wrote,
  :func:`inference_table` lays it out beside the paper's numbers (:data:`PAPER_TABLE1`), and
  :func:`backend_table` gives the fastest agreeing inference backend of each preset and size;
  :func:`training_table` gives the training throughputs of the same file.
* Table 2 (paper: "Model summary", parameters of the flow generator, the two feature extractors
  and the sequence model): :func:`param_counts` builds each preset's models and counts their
  parameters; :func:`write_param_counts` caches the counts as CSV (building DEG_s's 127M weights
  takes seconds, a figure notebook must re-run in seconds).

Expected ``bench.json``::

    {"device": str, "cpu": str, "torch": str,
     "rows": [{"preset", "height", "width", "device", "precision",
               "stage": "inference" | "train_flow" | "train_feature" | "train_sequence",
               "frames_per_s" or "steps_per_s", "n_frames"}, ...]}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from deg import io
from deg.presets import PRESETS

BENCH_STAGES = ("inference", "train_flow", "train_feature", "train_sequence")
# Default K for Table 2: the synthetic datasets' five behaviours plus background. Only the output
# layers depend on K (TGM: 2 x (128 K + K) weights), so the count barely moves with it.
DEFAULT_N_CLASSES = 6
PARAM_COLUMNS = ["preset", "component", "model", "n_params", "params_m", "paper_params_m", "n_classes"]
COMPONENTS = ("flow_generator", "feature_extractors", "sequence_model", "total")

# Paper Table 1 (frames/s of inference, DEG_f / DEG_m / DEG_s) with the registry id of each dataset.
# Resolutions are printed as in the paper; ``deg.data.registry`` holds the same sizes as (H, W).
PAPER_TABLE1: tuple[tuple[str, str, str, tuple[int, int, int], tuple[int, int, int]], ...] = (
    # (paper name, registry id, resolution as printed, Titan RTX, GeForce 1080 Ti)
    ("Mouse-Ventral1", "mouse_ventral1", "256 x 256", (235, 128, 34), (152, 76, 13)),
    ("Mouse-Ventral2", "mouse_ventral2", "256 x 256", (249, 132, 34), (157, 79, 13)),
    ("Mouse-Openfield", "mouse_openfield", "256 x 256", (211, 117, 33), (141, 80, 13)),
    ("Mouse-Homecage", "mouse_homecage", "352 x 224", (204, 102, 28), (132, 70, 11)),
    ("Mouse-Social", "mouse_social", "224 x 224", (324, 155, 44), (204, 106, 17)),
    ("Sturman-EPM", "sturman_epm", "256 x 256", (240, 123, 34), (157, 83, 13)),
    ("Sturman-FST", "sturman_fst", "224 x 448", (157, 75, 21), (106, 51, 9)),
    ("Sturman-OFT", "sturman_oft", "256 x 256", (250, 125, 34), (159, 84, 13)),
    ("Flies", "fly", "128 x 192", (623, 294, 89), (378, 189, 33)),
)


class BenchError(ValueError):
    """A ``bench.json`` that cannot be read as the benchmark table (the message names the file)."""


# --------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------
def read_bench(path: str | Path) -> dict | None:
    """The benchmark file as a dict with a ``rows`` DataFrame, or None when the file is absent.

    Raises :class:`BenchError` naming the file when it exists but is malformed (not JSON, no
    ``rows`` list, a row without preset/height/width/stage or without its rate).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise BenchError(f"{path}: expected an object with a 'rows' list")
    rows = pd.DataFrame(data["rows"])
    needed = ["preset", "height", "width", "stage"]
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise BenchError(f"{path}: rows lack field(s) {missing}")
    for col in ("frames_per_s", "steps_per_s", "device", "precision", "n_frames"):
        if col not in rows.columns:
            rows[col] = np.nan
    unknown = sorted(set(rows.stage) - set(BENCH_STAGES))
    if unknown:
        raise BenchError(f"{path}: unknown stage(s) {unknown}; known: {list(BENCH_STAGES)}")
    no_rate = rows[rows[["frames_per_s", "steps_per_s"]].isna().all(axis=1)]
    if len(no_rate):
        raise BenchError(f"{path}: {len(no_rate)} row(s) have neither frames_per_s nor steps_per_s")
    out = {k: v for k, v in data.items() if k != "rows"}
    out["rows"] = rows
    return out


def _registry_size(dataset_id: str) -> tuple[int, int] | None:
    try:
        from deg.data import registry

        size = registry.get(dataset_id).resize
        return tuple(size) if size else None
    except (ImportError, KeyError):
        return None


def paper_table1() -> pd.DataFrame:
    """The paper's Table 1 as a long table: dataset, dataset_id, resolution, height, width,
    gpu, preset, frames_per_s."""
    rows = []
    for name, ds_id, printed, titan, gtx in PAPER_TABLE1:
        size = _registry_size(ds_id) or (np.nan, np.nan)
        for gpu, values in (("Titan RTX", titan), ("GeForce 1080 Ti", gtx)):
            for preset, fps in zip(PRESETS, values):
                rows.append({"dataset": name, "dataset_id": ds_id, "resolution": printed, "height": size[0],
                             "width": size[1], "gpu": gpu, "preset": preset, "frames_per_s": float(fps)})
    return pd.DataFrame(rows)


def inference_table(bench: dict, paper_gpu: str = "Titan RTX") -> pd.DataFrame:
    """Table 1 layout: one row per measured (height, width, device, precision), one column per
    preset with our inference frames/s (``ours_<preset>``) and the paper's frames/s on
    ``paper_gpu`` (``paper_<preset>``, median over the paper's datasets at that resolution), and
    the paper datasets at that resolution (``paper_datasets``; empty when none, e.g. the demo's
    64 x 64). Resolutions are H x W.
    """
    rows = bench["rows"]
    inf = rows[rows.stage == "inference"].copy()
    if inf.empty:
        raise BenchError("bench.json has no inference rows")
    inf["device"] = inf["device"].fillna(bench.get("device", "?"))
    inf["precision"] = inf["precision"].fillna("?")
    wide = inf.pivot_table(index=["height", "width", "device", "precision"], columns="preset",
                           values="frames_per_s", aggfunc="mean")
    wide.columns = [f"ours_{c}" for c in wide.columns]
    wide = wide.reset_index()
    paper = paper_table1()
    paper = paper[paper.gpu == paper_gpu]
    names, medians = [], {p: [] for p in PRESETS}
    for _, r in wide.iterrows():
        match = paper[(paper.height == r["height"]) & (paper.width == r["width"])]
        names.append(", ".join(dict.fromkeys(match.dataset)))
        for p in PRESETS:
            values = match.loc[match.preset == p, "frames_per_s"]
            medians[p].append(float(values.median()) if len(values) else np.nan)
    wide.insert(0, "resolution", [f"{int(h)} x {int(w)}" for h, w in zip(wide.height, wide.width)])
    wide["paper_datasets"] = names
    for p in PRESETS:
        if f"ours_{p}" not in wide.columns:
            wide[f"ours_{p}"] = np.nan
        wide[f"paper_{p}"] = medians[p]
    wide["paper_gpu"] = paper_gpu
    order = ["resolution", "height", "width", "device", "precision", *[f"ours_{p}" for p in PRESETS],
             *[f"paper_{p}" for p in PRESETS], "paper_gpu", "paper_datasets"]
    return wide[order].sort_values(["height", "width", "device"]).reset_index(drop=True)


def backend_table(bench: dict, paper_gpu: str = "Titan RTX") -> pd.DataFrame:
    """The fastest feature-path backend per preset and resolution (``make bench``'s backend rounds).

    One row per (preset, height, width) of ``bench["backends"]``: ``eager_fps``, ``best_backend``
    (the fastest that ran as itself and agrees with eager, :func:`deg.backends.agrees`;
    eager when none does), ``best_fps``, ``speedup`` (over eager), ``max_abs_diff`` (its
    probabilities against eager's), and the paper's frames/s on ``paper_gpu`` at that resolution
    (``paper_fps``: median over the paper's datasets; NaN when none). Empty when the file has no
    backend rounds (``make bench`` on a GPU, or an older file).
    """
    from deg.backends import agrees

    columns = ["preset", "resolution", "height", "width", "eager_fps", "best_backend", "best_fps", "speedup",
               "max_abs_diff", "paper_fps"]
    rounds = pd.DataFrame(bench.get("backends") or [])
    if rounds.empty:
        return pd.DataFrame(columns=columns)
    paper = paper_table1()
    paper = paper[paper.gpu == paper_gpu]
    out = []
    for (preset, h, w), g in rounds.groupby(["preset", "height", "width"], sort=False):
        eager = g[g.backend == "eager"]
        if eager.empty:
            raise BenchError(f"backend rounds of {preset} {h}x{w} lack the eager reference")
        ok = g[[r.used == r.backend and agrees(r.backend, r.max_abs_diff) for r in g.itertuples()]]
        best = ok.loc[ok.frames_per_s.idxmax()]
        match = paper[(paper.height == h) & (paper.width == w) & (paper.preset == preset)].frames_per_s
        out.append({"preset": preset, "resolution": f"{int(h)} x {int(w)}", "height": h, "width": w,
                    "eager_fps": float(eager.frames_per_s.iloc[0]), "best_backend": best.backend,
                    "best_fps": float(best.frames_per_s),
                    "speedup": float(best.frames_per_s / eager.frames_per_s.iloc[0]),
                    "max_abs_diff": float(best.max_abs_diff),
                    "paper_fps": float(match.median()) if len(match) else np.nan})
    return pd.DataFrame(out, columns=columns)


def training_table(bench: dict) -> pd.DataFrame:
    """Training throughput rows of the benchmark: stage, preset, resolution, device, precision,
    rate (frames/s or steps/s, whichever the row has) and its unit."""
    rows = bench["rows"]
    tr = rows[rows.stage != "inference"].copy()
    if tr.empty:
        return pd.DataFrame(columns=["stage", "preset", "resolution", "device", "precision", "rate", "unit"])
    tr["unit"] = np.where(tr["steps_per_s"].notna(), "steps/s", "frames/s")
    tr["rate"] = tr["steps_per_s"].where(tr["steps_per_s"].notna(), tr["frames_per_s"])
    tr["resolution"] = [f"{int(h)} x {int(w)}" for h, w in zip(tr.height, tr.width)]
    tr["device"] = tr["device"].fillna(bench.get("device", "?"))
    return tr[["stage", "preset", "resolution", "device", "precision", "rate", "unit"]].reset_index(drop=True)


# --------------------------------------------------------------------------------------
# Table 2
# --------------------------------------------------------------------------------------
def count_parameters(module) -> int:
    """Number of parameters of a torch module (trainable or not; buffers excluded)."""
    return int(sum(p.numel() for p in module.parameters()))


def param_counts(presets: Sequence[str] | None = None, n_classes: int = DEFAULT_N_CLASSES) -> pd.DataFrame:
    """Build each preset's flow generator, two-stream feature extractor and sequence model for K =
    ``n_classes`` behaviours (background included) and count their parameters.

    Returns long rows (PARAM_COLUMNS): preset, component (flow_generator, feature_extractors,
    sequence_model, total), model (architecture name), n_params, params_m (millions),
    paper_params_m (paper Table 2; total = sum of the three), n_classes.
    """
    import torch

    from deg.models.feature import build_two_stream
    from deg.models.flow import build_flow_generator
    from deg.models.sequence import build_sequence_model

    rows = []
    with torch.device("meta"):   # shapes only: no memory, no initialisation time
        for name in presets or list(PRESETS):
            preset = PRESETS[name]
            flow = build_flow_generator(preset.flow_generator, n_frames=preset.n_flow_frames)
            feature = build_two_stream(preset.feature_extractor, n_classes=n_classes,
                                       n_flow_frames=preset.n_flow_frames - 1, n_rgb_frames=preset.n_rgb_frames)
            sequence = build_sequence_model(preset.sequence_model, n_features=2 * preset.feature_dim,
                                            n_classes=n_classes)
            counts = {"flow_generator": (preset.flow_generator, count_parameters(flow)),
                      "feature_extractors": (f"{preset.feature_extractor} x 2", count_parameters(feature)),
                      "sequence_model": (preset.sequence_model, count_parameters(sequence))}
            counts["total"] = ("", sum(n for _, n in counts.values()))
            paper = dict(zip(COMPONENTS, (*preset.paper_params_m, sum(preset.paper_params_m))))
            for component, (model, n) in counts.items():
                rows.append({"preset": name, "component": component, "model": model, "n_params": n,
                             "params_m": n / 1e6, "paper_params_m": round(paper[component], 3),
                             "n_classes": n_classes})
    return pd.DataFrame(rows, columns=PARAM_COLUMNS)


def write_param_counts(path: str | Path, n_classes: int = DEFAULT_N_CLASSES,
                       presets: Sequence[str] | None = None) -> Path:
    """Compute :func:`param_counts` and write them atomically as CSV at ``path`` (e.g.
    ``results/<profile>/param_counts.csv``); returns ``path``."""
    path = Path(path)
    io.write_csv(path, param_counts(presets, n_classes))
    return path


def read_param_counts(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by :func:`write_param_counts`; ValueError naming the file if malformed."""
    path = Path(path)
    table = pd.read_csv(path)
    missing = [c for c in PARAM_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a parameter-count table (lacks {missing})")
    return table


def table2_wide(counts: pd.DataFrame) -> pd.DataFrame:
    """Table 2 layout: one row per preset; per component 'ours (M)' and 'paper (M)' columns."""
    rows = []
    for preset, part in counts.groupby("preset", sort=False):
        part = part.set_index("component")
        row = {"preset": preset, "K": int(part["n_classes"].iloc[0])}
        for comp in COMPONENTS:
            if comp in part.index:
                model = part.at[comp, "model"]
                label = comp.replace("_", " ")
                if isinstance(model, str) and model:
                    row[f"{label}: model"] = model
                row[f"{label}: ours (M)"] = round(float(part.at[comp, "params_m"]), 2)
                row[f"{label}: paper (M)"] = float(part.at[comp, "paper_params_m"])
        rows.append(row)
    return pd.DataFrame(rows)


def render_table(ax, table: pd.DataFrame, fontsize: float = 7, decimals: int = 1) -> None:
    """Draw ``table`` as a matplotlib table on ``ax`` (axis hidden): whole numbers without decimals,
    other floats with ``decimals`` decimals, NaN as an en dash."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            if not np.isfinite(v):
                return "\u2013"
            return f"{v:.0f}" if float(v).is_integer() else f"{v:.{decimals}f}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in table.itertuples(index=False)]
    ax.axis("off")
    t = ax.table(cellText=cells or [["" for _ in table.columns]], colLabels=[str(c) for c in table.columns],
                 loc="center", cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(fontsize)
    t.auto_set_column_width(list(range(len(table.columns))))
    t.scale(1.0, 1.3)
    for (r, _), cell in t.get_celld().items():
        if r == 0:
            cell.set_text_props(fontweight="bold")
            cell.set_facecolor("#E8E8E8")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m deg.figs.tables param-counts OUT.csv [--n-classes K]`` (a workflow step)."""
    import argparse

    parser = argparse.ArgumentParser(description="Write the Table 2 parameter counts as CSV")
    parser.add_argument("what", choices=["param-counts"])
    parser.add_argument("out")
    parser.add_argument("--n-classes", type=int, default=DEFAULT_N_CLASSES,
                        help="K behaviours including background (default %(default)s)")
    args = parser.parse_args(argv)
    path = write_param_counts(args.out, n_classes=args.n_classes)
    print(f"parameter counts (K={args.n_classes}) in {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
