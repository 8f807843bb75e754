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
LABEL_ONLY = ("sturman_oft", "sturman_epm")

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
    "selfsup": "fig_selfsup",
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
        if figure == "selfsup":  # Selfee rows and the scratch vs self-supervised runs (workflow/rules/selfsup.smk)
            return describe + humans + selfsup_outputs(self, results)
        if figure == "videos":   # the one figure that reads data/: raw frames under the ethograms
            return self.run_outputs(results) + [f"{data}/{ds}/COMPLETE" for ds in self.run_datasets]
        return describe + humans + self.run_outputs(results)


def init_kinds(preset: str) -> dict[str, str]:
    """Pretraining stages (deg.train.selfsup) that a run of ``preset`` with pretrained="selfsup" starts from."""
    from deg.presets import get_preset

    p = get_preset(preset)
    return {"flow_generator": f"flow-{p.flow_generator}", "feature_extractor": f"{p.feature_extractor}-rgb"}


def selfsup_plan(plan: "Plan") -> dict:
    """What the self-supervised part of the DAG computes (deg.presets.SELFSUP_PROFILES).

    Selfee rows on every run dataset and split; DEG from self-supervised weights for the compared
    presets on the first run dataset, on the split runs and the Figure 6 sizes of ``compare_subsample``
    (their from-scratch counterparts are ordinary runs of the plan). ``pretrain``: {dataset: [kinds]}.
    """
    from deg.presets import get_selfsup_profile

    profile, sizes = get_profile(plan.profile), get_selfsup_profile(plan.profile)
    selfee_kind = f"{sizes.selfee_backbone}-live"
    out = {"selfee": [(ds, f"split{k}") for ds in plan.run_datasets for k in range(profile.n_splits)],
           "embedding": list(plan.run_datasets), "runs": [], "pretrain": {ds: [selfee_kind] for ds in plan.run_datasets}}
    if not plan.run_datasets:
        return out
    first = plan.run_datasets[0]
    for preset in sizes.compare_presets:
        splits = [s for ds, p, s in plan.runs if ds == first and p == preset]
        splits += [s for ds, p, s in plan.subsample_runs if ds == first and p == preset
                   and int(s[3:].split("_")[0]) in sizes.compare_subsample]
        if splits:
            out["runs"] += [(first, preset, s) for s in splits]
            out["pretrain"][first] += list(init_kinds(preset).values())
    return out


def selfsup_outputs(plan: "Plan", results: str) -> list[str]:
    """Files the "selfsup" figure reads: Selfee tables, embeddings, both conditions' run metrics."""
    sp = selfsup_plan(plan)
    files = [f"{results}/{ds}/selfee/{split}/metrics.csv" for ds, split in sp["selfee"]]
    files += [f"{results}/{ds}/selfee/embedding.csv" for ds in sp["embedding"]]
    files += [f"{results}/{ds}/selfsup/{preset}/{split}/metrics.csv" for ds, preset, split in sp["runs"]]
    if sp["runs"]:      # (run_outputs of an empty list would list every run)
        files += plan.run_outputs(results, sp["runs"])
    return files


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
