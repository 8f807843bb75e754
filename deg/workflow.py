"""What the DAG computes for a profile: datasets, training runs, figures and their inputs.

``workflow/Snakefile`` asks :func:`plan` and turns the answer into rules; keeping the logic here
makes it importable, unit-testable and the same for local and SLURM runs.

Dataset selection: an explicit ``DATASETS="a b"`` wins; otherwise the profile's own datasets plus
every dataset of the paper (a registry record with a ``paper_name``) already prepared on disk,
which joins the label-based panels (Figures 2, 4, 5) of every later ``make figures`` but is never
trained on by a profile that did not name it (the demo's CPU budget has no room for real videos).

Training: a chosen dataset trains when it has videos, decided from the data -- its prepared folder
(``videos/``) once it is prepared, and before that its registry record (synthetic, or a file with
the role "videos" or "archive" that preparing it brings). A prepared dataset without videos (the
Sturman label files without the Zenodo videos) is label-only.

Recomputation: every rule that computes from data has a *key file* among its inputs,
``results/<name>/.keys/<rule>/<target>/<digest>.json``, whose content is everything the rule's
outputs depend on besides the data (:class:`KeyFiles`: a run's :func:`deg.train.keys.run_settings`,
the code of the modules a notebook or command imports). When that changes the digest changes, the
file is missing, the workflow writes it while it builds the DAG (dry runs too) and -- the file
being newer than the outputs -- Snakemake re-runs exactly the affected jobs; otherwise the old file
is older than the outputs and nothing runs. Data changes reach the jobs through their ``COMPLETE`` input.

Splits: ``Profile.splits_for`` (the dataset record's count for the paper profile: Sturman-EPM 3,
others 5); a preset of ``Profile.preset_splits`` runs the first of them only (``run_splits``). Figure 6: the profile's ``subsample_datasets`` that are trained, every size of
``subsample_videos`` that leaves at least one validation video, ``subsample_draws`` draws each,
DEG_f; each such run uses the flow generator of its dataset's ``split0`` run
(:func:`deg.train.keys.flow_parent`), so it waits for that run.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

from deg import io, paths, provenance
from deg.presets import get_profile
from deg.train.keys import code_hash, flow_parent, init_kinds, run_settings

SUBSAMPLE_PRESET = "DEG_f"     # paper, Figure 6: "we used DeepEthogram-fast"

# figures of the parts of the DAG that run without overrides only (see plan())
NO_OVERRIDE_FIGURES = ("selfsup", "fig5_supp1", "fig5_supp2", "methods")

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
    # pose-based methods (deg/pose; rules in workflow/rules/pose.smk, inputs from deg.pose.plan)
    "fig5_supp1": "fig5_supp1_keypoints",
    "fig5_supp2": "fig5_supp2_unsupervised",
    "methods": "methods_table",
}


def is_prepared(dataset_id: str) -> bool:
    return (paths.dataset_dir(dataset_id) / "COMPLETE").exists()


def _prepared(dataset_id: str):
    from deg.data.datasets import open_dataset

    return open_dataset(dataset_id)


def _record(dataset_id: str):
    from deg.data import registry

    try:
        return registry.get(dataset_id)
    except KeyError:
        return None


def has_videos(dataset_id: str) -> bool:
    """Whether ``dataset_id`` can train: from its prepared folder when there is one, else from
    what its registry record says preparing it brings (see the module docstring)."""
    if is_prepared(dataset_id):
        return _prepared(dataset_id).has_videos
    if dataset_id.startswith("synthetic_"):
        return True
    record = _record(dataset_id)
    return bool(record) and record.kind != "pose" and any(f.role in ("videos", "archive") for f in record.files)


def n_videos(dataset_id: str) -> int:
    """Videos of ``dataset_id`` that can be trained on: on disk when prepared, else the record's."""
    if is_prepared(dataset_id):
        ds = _prepared(dataset_id)
        return sum(ds.video_path(v) is not None and ds.has_labels(v, ds.train_annotator) for v in ds.videos)
    if dataset_id.startswith("synthetic_"):
        from deg.data.synthetic import VARIANTS

        return VARIANTS[dataset_id].n_videos if dataset_id in VARIANTS else 0
    record = _record(dataset_id)
    return int(record.n_videos or 0) if record else 0


def annotator_count(dataset_id: str) -> int:
    """Annotators of ``dataset_id``: on disk when prepared, else the record's names or count."""
    if is_prepared(dataset_id):
        try:
            return len(_prepared(dataset_id).annotators)
        except ValueError:          # a marker without metadata: the record decides
            pass
    if dataset_id.startswith("synthetic_"):
        return 3
    record = _record(dataset_id)
    if record is None:
        return 1
    return len(record.annotators or ()) or int(record.n_annotators or 0)


def paper_datasets() -> list[str]:
    """Registry ids of the paper's datasets (records with a ``paper_name``)."""
    from deg.data import registry

    return [r.id for r in registry.records() if r.paper_name]


def notebook_modules(notebook: str | Path) -> list[str]:
    """Modules of deg that a notebook's code cells import (``import deg.x``, ``from deg import x``)."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    found: set[str] = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        try:
            tree = ast.parse(source)
        except SyntaxError:          # a cell with shell magics: its imports are not followed
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("deg")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("deg"):
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return sorted(found)


class KeyFiles:
    """Key files of one workflow (see the module docstring): ``<results>/.keys/<rule>/<target>/<digest>.json``.

    The content of a key file follows from its rule and target alone (:meth:`settings`), so the
    job that writes it (which Snakemake may run in another process) recomputes it, and refuses to
    write a file whose content no longer matches its name (the code changed while it ran).
    ``write`` (a callable) true -- the Snakefile's main process, dry runs included -- writes a
    missing key file as soon as its path is asked for: one JSON file, no job, so a workflow of
    hundreds of runs spends no time on key jobs, and a dry run reports what a real run will do
    (Snakemake does not re-run a job for a missing input when its outputs are newer than the
    others, so the new key must exist). Rule ``key`` remains for key files asked for elsewhere.
    """

    COMMANDS = {"describe": ("deg.describe",), "humans": ("deg.evaluate",),
                "param_counts": ("deg.figs.tables",), "index": ("deg.figindex",)}

    def __init__(self, plan: "Plan", results: str, write=lambda: False):
        self.plan, self.results, self.write_missing = plan, results, write
        self.profile = get_profile(plan.profile, **plan.overrides)

    def settings(self, rule: str, target: str) -> dict:
        """Everything the ``rule`` job for ``target`` depends on besides its data."""
        if rule == "run":
            ds, preset, split = target.split("/")
            return run_settings(ds, preset, split, self.profile)
        if rule == "figure":
            notebook = paths.REPO / "notebooks" / f"{self.plan.notebooks[target]}.ipynb"
            return {"notebook": provenance.config_key(notebook.read_text(encoding="utf-8")),
                    "code": code_hash(tuple(notebook_modules(notebook))), "datasets": self.plan.datasets}
        if rule in self.COMMANDS:
            return {"code": code_hash(self.COMMANDS[rule])}
        raise KeyError(f"no key files for rule {rule!r}")

    def path(self, rule: str, target: str) -> str:
        path = f"{self.results}/.keys/{rule}/{target}/{provenance.config_key(self.settings(rule, target))}.json"
        if self.write_missing() and not Path(path).exists():
            self.write(path)
        return path

    def write(self, path: str) -> None:
        """Write key file ``path`` (atomic) and remove the stale ones beside it."""
        out = Path(path)
        rel = out.relative_to(Path(self.results) / ".keys")
        rule, target = rel.parts[0], "/".join(rel.parts[1:-1])
        settings = self.settings(rule, target)
        if provenance.config_key(settings) != out.stem:
            raise RuntimeError(f"{path}: the settings of {rule} {target} changed while the workflow ran "
                               "(code edited?); run it again")
        io.write_json(out, json.loads(provenance.canonical_json(settings)))
        for stale in out.parent.glob("*.json"):
            if stale != out:
                stale.unlink(missing_ok=True)


@dataclass
class Plan:
    profile: str
    datasets: list[str]
    run_datasets: list[str]
    runs: list[tuple[str, str, str]]            # (dataset, preset, split name)
    subsample_runs: list[tuple[str, str, str]]  # Figure 6 runs
    human_datasets: list[str]
    overrides: dict = field(default_factory=dict)   # Profile fields / HPARAMS entries replaced
    results_name: str = ""                          # results/<this>/, figures/<this>/
    figures: list[str] = field(default_factory=lambda: list(FIGURES))
    notebooks: dict[str, str] = field(default_factory=lambda: dict(FIGURES))
    gpus_per_run: int = 0
    minutes_per_run: int = 30
    mem_mb_per_run: int = 8000
    threads_per_run: int = 1

    @property
    def all_runs(self) -> list[tuple[str, str, str]]:
        return self.runs + self.subsample_runs

    def run_outputs(self, results: str, runs=None) -> list[str]:
        return [f"{results}/{ds}/{preset}/{split}/metrics.csv" for ds, preset, split in (runs or self.runs)]

    def flow_parent_output(self, results: str, ds: str, preset: str, split: str) -> list[str]:
        """The run whose flow generator run (ds, preset, split) uses, when it is another run."""
        parent = flow_parent(split)
        return [] if parent == split else [f"{results}/{ds}/{preset}/{parent}/metrics.csv"]

    def flow_shapes_output(self, results: str, ds: str, preset: str, split: str) -> list[str]:
        """The moving-shapes flow pretraining (:mod:`deg.train.flow_shapes`) run (ds, preset, split)
        starts from, when it trains a flow generator of its own from it and the profile fixes the
        image size (else the run trains the stage itself, on first use)."""
        from deg.presets import get_preset
        from deg.train.keys import starts_from_shapes

        profile = get_profile(self.profile, **self.overrides).for_preset(preset)
        p = get_preset(preset)
        if flow_parent(split) != split or profile.image_size is None or not starts_from_shapes(p, profile, "flow_generator"):
            return []
        h, w = profile.image_size
        return [f"{results}/_flow_shapes/{p.flow_generator}-{h}x{w}/DONE"]

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


def selfsup_plan(plan: "Plan") -> dict:
    """What the self-supervised part of the DAG computes (deg.presets.SELFSUP_PROFILES).

    Selfee rows on every run dataset and split; DEG from self-supervised weights for the compared
    presets on the first run dataset, on the split runs and the Figure 6 sizes of ``compare_subsample``
    (their from-scratch counterparts are ordinary runs of the plan). ``pretrain``: {dataset: [kinds]}.
    """
    from deg.presets import get_selfsup_profile

    if plan.overrides:      # the self-supervised commands take no overrides: an overridden profile's
        return {"selfee": [], "embedding": [], "runs": [], "pretrain": {}}   # folder holds DEG runs only
    profile, sizes = get_profile(plan.profile), get_selfsup_profile(plan.profile)
    selfee_kind = f"{sizes.selfee_backbone}-live"
    out = {"selfee": [(ds, f"split{k}") for ds in plan.run_datasets for k in range(profile.splits_for(ds))],
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


def plan(profile_name: str, datasets: str = "", overrides: dict | None = None) -> Plan:
    """The DAG's content for a profile; ``overrides`` (Profile fields, HPARAMS entries) as for
    :func:`deg.presets.get_profile`: they size the plan (e.g. ``n_splits``, ``subsample_videos``)
    and reach every run; an overridden profile has its own results folder (``Plan.results_name``).
    Unknown or wrong-case profile / dataset names raise :class:`deg.cli.UsageError` ("unknown
    dataset 'X'; known: ...", datasets prepared under ``data/`` included)."""
    from deg import cli

    profile = get_profile(cli.check_profile(profile_name), **(overrides or {}))
    if datasets.strip():
        chosen = cli.check_datasets(datasets.split())
        extra: list[str] = []
    else:
        chosen = list(profile.datasets)
        extra = [d for d in paper_datasets() if d not in chosen and is_prepared(d)]
    run_datasets = [d for d in chosen if has_videos(d)]
    runs = [(ds, preset, f"split{k}") for ds in run_datasets for preset in profile.presets
            if ds in profile.preset_datasets.get(preset, (ds,)) for k in range(profile.run_splits(ds, preset))]
    subsample_runs: list[tuple[str, str, str]] = []
    for ds in run_datasets:
        if ds not in profile.subsample_datasets or (ds, SUBSAMPLE_PRESET, flow_parent("sub")) not in runs:
            continue
        available = n_videos(ds)
        for n_train in profile.subsample_videos:
            if n_train <= available - 1:   # at least one validation video remains
                subsample_runs += [(ds, SUBSAMPLE_PRESET, f"sub{n_train}_d{d}") for d in range(profile.subsample_draws)]
    everything = chosen + extra
    paper = profile_name == "paper"
    # The self-supervised and pose parts of the DAG (workflow/rules/selfsup.smk, pose.smk) take no
    # overrides yet: an overridden profile's folder holds the DEG runs and their figures only.
    figures = [f for f in FIGURES if not profile.overrides or f not in NO_OVERRIDE_FIGURES]
    return Plan(
        figures=figures, notebooks={f: FIGURES[f] for f in figures},
        profile=profile_name, overrides=dict(profile.overrides), results_name=profile.results_name,
        datasets=everything, run_datasets=run_datasets, runs=runs, subsample_runs=subsample_runs,
        human_datasets=[d for d in everything if annotator_count(d) >= 2],
        gpus_per_run=1 if paper else 0, minutes_per_run=24 * 60 if paper else 30,
        mem_mb_per_run=32000 if paper else 8000, threads_per_run=4 if paper else 1,
    )
