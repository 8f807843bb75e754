"""What the DAG computes for the pose methods (``workflow/rules/pose.smk`` asks :func:`pose_plan`).

Datasets: the synthetic datasets of the run (their pose lies on the very videos DEG trains on)
always; the real pose datasets (:data:`REAL_POSE_DATASETS`) when ``DATASETS`` names them, or,
without ``DATASETS``, whenever one is prepared on disk with pose or its files are reachable (the
``DEG_DATA_MIRROR`` mirror, else the public origin, probed with a short timeout). Every dataset
left out gets a reason, which the figures print in the index. Offline without a mirror the plan
is the synthetic datasets alone, so ``make figures`` still finishes.

Kept free of torch imports: the Snakefile imports it at parse time.
"""
from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from deg import paths
from deg.presets import get_profile

REAL_POSE_DATASETS = ("rat_social", "behaviordepot_freezing", "ethome_social", "sturman_oft_pose")
# keep in step with deg.pose.run.METHODS (not imported: it would import numpy/pandas only, but
# the run module is the one place that defines them)
METHODS = ("pose_mlp", "pose_unsup", "contrastive_pose", "rf_features", "rf_coords")
# figure id -> notebook (notebooks/<name>.ipynb)
POSE_FIGURES = {"fig5_supp1": "fig5_supp1_keypoints", "fig5_supp2": "fig5_supp2_unsupervised",
                "methods": "methods_table"}
PROBE_TIMEOUT_S = 3.0


def _prepared_with_pose(dataset_id: str) -> bool:
    root = paths.dataset_dir(dataset_id)
    return (root / "COMPLETE").exists() and (root / "pose").is_dir() and any((root / "pose").iterdir())


def _reachable(source) -> bool:
    if isinstance(source, Path):
        return source.exists()
    try:
        request = urllib.request.Request(str(source), method="HEAD")
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            return 200 <= response.status < 400
    except (OSError, ValueError):
        return False


def availability(dataset_id: str) -> tuple[bool, str]:
    """(usable, why): prepared on disk, reachable through the mirror or origin, or not."""
    if _prepared_with_pose(dataset_id):
        return True, "prepared on disk"
    if (paths.dataset_dir(dataset_id) / "COMPLETE").exists():
        return False, "prepared on disk without pose files (prepare it again to add them)"
    try:
        from deg.data import download, registry

        record = registry.get(dataset_id)
    except (ImportError, KeyError):
        return False, "no registry record in this checkout"
    pose_files = [f for f in record.files if f.role == "pose"]
    if not pose_files:
        return False, "its registry record lists no pose file"
    mirror = os.environ.get(download.MIRROR_ENV, "")
    source = download.resolve_source(pose_files[0], dataset_id)
    if source is None:
        return False, "no origin URL and no mirror (DEG_DATA_MIRROR) set"
    if _reachable(source):
        return True, f"reachable through {'the mirror ' + mirror if mirror else 'its origin'}"
    where = f"the mirror {mirror}" if mirror else "its origin (offline?) and no mirror (DEG_DATA_MIRROR) set"
    return False, f"not prepared and not reachable through {where}"


@dataclass
class PosePlan:
    profile: str
    synthetic: list[str]
    real: list[str]
    skipped: dict[str, str]
    n_splits: int
    deg_runs: list[tuple[str, str, str]] = field(default_factory=list)   # the main plan's (ds, preset, split)
    human_datasets: list[str] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        return self.synthetic + self.real

    @property
    def skipped_lines(self) -> list[str]:
        """``"dataset: reason"`` per skipped real dataset (a notebook parameter without braces)."""
        return [f"{ds}: {why}" for ds, why in self.skipped.items()]

    @property
    def runs(self) -> list[tuple[str, str]]:
        return [(ds, f"split{k}") for ds in self.datasets for k in range(self.n_splits)]

    def run_outputs(self, results: str, methods=METHODS) -> list[str]:
        return [f"{results}/{ds}/{m}/{split}/metrics.csv" for ds, split in self.runs for m in methods]

    def figure_inputs(self, figure: str, results: str) -> list[str]:
        deg_f = [f"{results}/{ds}/{p}/{s}/metrics.csv" for ds, p, s in self.deg_runs
                 if p == "DEG_f" and ds in self.synthetic]
        if figure == "fig5_supp1":
            return self.run_outputs(results, ("pose_mlp",)) + deg_f
        if figure == "fig5_supp2":
            return self.run_outputs(results, ("pose_unsup", "pose_mlp")) + deg_f
        if figure == "methods":
            deg_all = [f"{results}/{ds}/{p}/{s}/metrics.csv" for ds, p, s in self.deg_runs]
            humans = [f"{results}/{ds}/humans/metrics.csv" for ds in self.human_datasets]
            return self.run_outputs(results) + deg_all + humans
        raise KeyError(f"unknown pose figure {figure!r}; known: {', '.join(POSE_FIGURES)}")


def pose_plan(profile_name: str, datasets: str = "", main_plan=None) -> PosePlan:
    """The pose datasets of a ``make figures`` run; ``main_plan``: :func:`deg.workflow.plan`'s answer."""
    profile = get_profile(profile_name)
    requested = datasets.split()
    base = list(main_plan.datasets) if main_plan is not None else (requested or list(profile.datasets))
    synthetic = [d for d in base if d.startswith("synthetic_")]
    real, skipped = [], {}
    for ds in REAL_POSE_DATASETS:
        if requested and ds not in requested:
            skipped[ds] = f"not in DATASETS={' '.join(requested)!r}"
            continue
        ok, why = availability(ds)
        if ok:
            real.append(ds)
        else:
            skipped[ds] = why
    runs = [r for r in (main_plan.runs if main_plan is not None else []) if r[0] in synthetic or r[0] in real]
    humans = [d for d in (main_plan.human_datasets if main_plan is not None else [])]
    return PosePlan(profile=profile_name, synthetic=synthetic, real=real, skipped=skipped,
                    n_splits=profile.n_splits, deg_runs=list(runs), human_datasets=humans)
