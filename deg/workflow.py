"""What the DAG computes for a profile: datasets, training runs, figures and their inputs.

``workflow/Snakefile`` asks :func:`plan` and turns the answer into rules; keeping the logic here
makes it importable, unit-testable and the same for local and SLURM runs.

Dataset selection: an explicit ``DATASETS="a b"`` wins; otherwise the profile's own datasets plus
every real label-only dataset already prepared on disk (so Sturman labels fetched once, through a
download or a mirror, join every later ``make figures``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from deg import paths
from deg.presets import get_profile

# Real datasets whose videos are not reachable offline: they feed label-based panels only.
LABEL_ONLY = ("sturman_oft", "sturman_epm", "rat_social", "behaviordepot_freezing", "ethome_social",
              "sturman_oft_pose")

# figure id -> notebook name (notebooks/<name>.ipynb) and what it reads.
FIGURES: dict[str, str] = {
    "fig1": "fig1_flow",
    "fig2": "fig2_datasets",
    "fig3": "fig3_performance",
    "fig3_supp": "fig3_supplements",
    "fig4": "fig4_bouts",
    "fig5": "fig5_humans",
    "fig6": "fig6_training_size",
    "tables": "tables",
    "videos": "videos",
    # pose-based methods (deg/pose; rules in workflow/rules/pose.smk, inputs from deg.pose.plan)
    "fig5_supp1": "fig5_supp1_keypoints",
    "fig5_supp2": "fig5_supp2_unsupervised",
    "methods": "methods_table",
}


def _annotator_count(dataset_id: str) -> int:
    if dataset_id.startswith("synthetic_"):
        return 3
    try:
        from deg.data import registry

        return len(registry.get(dataset_id).annotators or ())
    except (ImportError, KeyError):
        return 1


def _n_videos(dataset_id: str) -> int:
    try:
        if dataset_id.startswith("synthetic_"):
            from deg.data.synthetic import VARIANTS

            return VARIANTS[dataset_id].n_videos
        from deg.data import registry

        return int(registry.get(dataset_id).n_videos or 0)
    except (ImportError, KeyError, TypeError):
        return 0


@dataclass
class Plan:
    profile: str
    datasets: list[str]
    run_datasets: list[str]
    runs: list[tuple[str, str, str]]            # (dataset, preset, split name)
    subsample_runs: list[tuple[str, str, str]]  # Figure 6 runs
    human_datasets: list[str]
    figures: list[str] = field(default_factory=lambda: list(FIGURES))
    notebooks: dict[str, str] = field(default_factory=lambda: dict(FIGURES))
    gpus_per_run: int = 0
    minutes_per_run: int = 30
    mem_mb_per_run: int = 8000
    threads_per_run: int = 1

    def run_outputs(self, results: str, runs=None) -> list[str]:
        return [f"{results}/{ds}/{preset}/{split}/metrics.csv" for ds, preset, split in (runs or self.runs)]

    def figure_inputs(self, figure: str, results: str, data: str = "") -> list[str]:
        describe = [f"{results}/{ds}/describe/time_spent.csv" for ds in self.datasets]
        humans = [f"{results}/{ds}/humans/metrics.csv" for ds in self.human_datasets]
        if figure == "fig2":
            return describe + humans
        if figure == "fig6":
            return describe + self.run_outputs(results, self.subsample_runs)
        if figure == "tables":
            # Table 1 reads `make bench`'s file when there is one (a new benchmark redraws it)
            bench = paths.results_dir() / "bench.json"
            return [f"{results}/param_counts.csv"] + ([str(bench)] if bench.exists() else [])
        if figure == "videos":   # the one figure that reads data/: raw frames under the ethograms
            return self.run_outputs(results) + [f"{data}/{ds}/COMPLETE" for ds in self.run_datasets]
        return describe + humans + self.run_outputs(results)


def plan(profile_name: str, datasets: str = "") -> Plan:
    profile = get_profile(profile_name)
    if datasets.strip():
        chosen = datasets.split()
    else:
        chosen = list(profile.datasets) + [d for d in LABEL_ONLY
                                           if (paths.dataset_dir(d) / "COMPLETE").exists() and d not in profile.datasets]
    run_datasets = [d for d in chosen if d not in LABEL_ONLY]
    runs = [(ds, preset, f"split{k}") for ds in run_datasets for preset in profile.presets
            if ds in profile.preset_datasets.get(preset, (ds,)) for k in range(profile.n_splits)]
    subsample_runs: list[tuple[str, str, str]] = []
    if run_datasets:
        first = run_datasets[0]
        available = _n_videos(first)
        for n_train in profile.subsample_videos:
            if available and n_train <= available - 1:   # at least one validation video remains
                subsample_runs += [(first, "DEG_f", f"sub{n_train}_d{d}") for d in range(profile.subsample_draws)]
    paper = profile_name == "paper"
    return Plan(
        profile=profile_name, datasets=chosen, run_datasets=run_datasets, runs=runs, subsample_runs=subsample_runs,
        human_datasets=[d for d in chosen if _annotator_count(d) >= 2],
        gpus_per_run=1 if paper else 0, minutes_per_run=24 * 60 if paper else 30,
        mem_mb_per_run=32000 if paper else 8000, threads_per_run=4 if paper else 1,
    )
