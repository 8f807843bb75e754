"""The DAG: what deg.workflow.plan schedules, and a real Snakemake dry run with the SLURM profile."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from deg import paths
from deg.presets import get_profile
from deg.workflow import plan

SNAKEFILE = paths.REPO / "workflow" / "Snakefile"
SLURM = paths.REPO / "workflow" / "profiles" / "slurm"


def test_plan_demo_runs_every_preset_and_split(isolated):
    p = plan("demo")
    profile = get_profile("demo")
    assert p.datasets == list(profile.datasets)
    expected = {(ds, preset, f"split{k}") for ds in profile.datasets for preset in profile.presets
                for k in range(profile.preset_splits.get(preset, profile.n_splits))
                if ds in profile.preset_datasets.get(preset, (ds,))}
    assert set(p.runs) == expected and len(p.runs) == len(expected)
    # the costly presets on split0 only: the same videos as DEG_f's split0 (a paired comparison)
    assert {split for _, preset, split in p.runs if preset == "DEG_f"} == {f"split{k}" for k in range(profile.n_splits)}
    assert {preset for _, preset, _ in p.runs} == {"DEG_f"}          # DEG_m, DEG_s: opt-in (presets override)
    with_s = plan("demo", overrides={"presets": ["DEG_f", "DEG_m", "DEG_s"]})
    assert {split for _, preset, split in with_s.runs if preset in ("DEG_m", "DEG_s")} == {"split0"}
    # the costly presets on their one dataset only; DEG_f everywhere
    assert {ds for ds, preset, _ in with_s.runs if preset == "DEG_s"} == set(profile.preset_datasets["DEG_s"])
    assert {ds for ds, preset, _ in p.runs if preset == "DEG_f"} == set(profile.datasets)
    assert p.subsample_runs and all(preset == "DEG_f" for _, preset, _ in p.subsample_runs)
    assert "fig2" in p.figures


def _label_only(isolated, dataset_id: str) -> None:
    """A prepared dataset without videos (as the Sturman labels are without the Zenodo videos)."""
    from deg.data.datasets import Dataset

    Dataset(id=dataset_id, fps=25.0, behaviours=["background", "a"], annotators=["x"], train_annotator="x",
            videos=["v1"], root=isolated / "data" / dataset_id).save()


def test_plan_adds_prepared_label_only_datasets_and_honours_explicit_list(isolated):
    assert "sturman_oft" not in plan("tiny").datasets
    (isolated / "data" / "sturman_oft").mkdir()
    (isolated / "data" / "sturman_oft" / "COMPLETE").write_text("ok\n")
    p = plan("tiny")
    # prepared datasets of the paper join the label panels, never the training of a profile
    # that did not name them
    assert "sturman_oft" in p.datasets and "sturman_oft" not in p.run_datasets
    assert plan("tiny", "sturman_epm").datasets == ["sturman_epm"]
    # label-only is decided from the data: before preparation the record's videos count; a
    # prepared folder without videos is label-only
    assert plan("tiny", "sturman_epm").runs == [("sturman_epm", "DEG_f", "split0")]
    _label_only(isolated, "sturman_epm")
    assert plan("tiny", "sturman_epm").runs == [] and plan("tiny", "sturman_epm").run_datasets == []
    assert "sturman_epm" in plan("demo").datasets and "sturman_epm" not in plan("demo").run_datasets


def test_paper_plan_is_the_papers(isolated):
    """Bohnslav et al. 2021: nine datasets x DEG_f/m/s x five random splits (three for
    Sturman-EPM); Figure 6 on Mouse-Ventral1, Mouse-Ventral2 and Fly with 1-16 training videos x
    five draws, DEG_f, the flow generator trained once per dataset; human agreement wherever
    there is more than one annotator."""
    from deg.train.keys import run_settings

    nine = ["mouse_ventral1", "mouse_ventral2", "mouse_openfield", "mouse_homecage", "mouse_social",
            "sturman_epm", "sturman_fst", "sturman_oft", "fly"]
    p = plan("paper")
    assert sorted(p.datasets) == sorted(nine) and sorted(p.run_datasets) == sorted(nine)
    expected = {(ds, preset, f"split{k}") for ds in nine for preset in ("DEG_f", "DEG_m", "DEG_s")
                for k in range(3 if ds == "sturman_epm" else 5)}
    assert set(p.runs) == expected and len(p.runs) == len(expected) == 129
    # 16 training videos need a 17th to evaluate on: Mouse-Ventral2 has 16 videos, so 1-12 there
    sizes = {"mouse_ventral1": (1, 2, 4, 8, 12, 16), "mouse_ventral2": (1, 2, 4, 8, 12), "fly": (1, 2, 4, 8, 12, 16)}
    sweep = {(ds, "DEG_f", f"sub{n}_d{d}") for ds, ns in sizes.items() for n in ns for d in range(5)}
    assert set(p.subsample_runs) == sweep and len(p.subsample_runs) == 85
    # one flow generator per dataset's split0 run, reused by all its subsample runs (same flow settings)
    assert {p.flow_parent_output("R", *run)[0] for run in p.subsample_runs} == {
        f"R/{ds}/DEG_f/split0/metrics.csv" for ds in sizes}
    assert all(p.flow_parent_output("R", *run) == [] for run in p.runs)
    prof = get_profile("paper")
    for ds in sizes:
        parent = run_settings(ds, "DEG_f", "split0", prof)
        for n in sizes[ds]:
            sub = run_settings(ds, "DEG_f", f"sub{n}_d4", prof)
            assert sub["split"]["flow_parent"] == "split0" and sub["stages"]["flow"] == parent["stages"]["flow"]
    assert sorted(p.human_datasets) == sorted(d for d in nine if d != "fly")   # the fly: one labeller
    assert p.gpus_per_run == 1


def _dry_run(isolated, *extra):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--dry-run", "--config", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=paths.REPO, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_slurm_profile_dry_run_plans_multi_gpu_training_jobs(isolated):
    """The complete paper plan through Snakemake with the SLURM profile (dry run), and a search."""
    out = _dry_run(isolated, "profile=paper", "tune=mouse_openfield/DEG_s/split0/feature", "tune_workers=3",
                   "tune_trials=24", "--profile", str(SLURM), "all", "tune_all")   # targets: the figures and a search
    counts = _job_counts(out)
    p = plan("paper")
    assert counts["run"] == len(p.runs) + len(p.subsample_runs) == 214
    assert (counts["data"], counts["describe"], counts["humans"]) == (9, 9, 8)
    assert counts["figure"] + counts.get("pose_figure", 0) == len(p.figures)
    run_blocks = [b for b in out.split("\n\n") if "rule run:" in b]
    assert len(run_blocks) == counts["run"]
    for block in run_blocks:
        resources = re.search(r"resources: (.*)", block).group(1)
        assert "gpu=4" in resources and "slurm_partition=gpu" in resources and "runtime=1440" in resources, resources
        assert "nodes=1" in resources and "tasks_per_node=4" in resources and "mpi=srun" in resources, resources
        # 4 GPUs: srun starts the DDP processes before the notebook evaluates the finished run
        assert re.search(r"srun}? \S+ -m deg.train.distributed \S+ DEG_\w \S+ --profile paper --devices \$\(\( 4 / 1 \)\) "
                         r"--nodes 1; fi && ", block), block
    other = [b for b in out.split("\n\n") if "rule data:" in b or "rule describe:" in b]
    assert other and all("gpu=1" not in b for b in other)
    # the search: 3 workers with a GPU each share one study, then its summary writes best.json
    workers = sorted((b for b in out.split("\n\n") if "rule tune_worker:" in b),
                     key=lambda b: re.search(r"worker=(\d+)", b).group(1))
    assert len(workers) == 3
    for k, block in enumerate(workers):
        resources = re.search(r"resources: (.*)", block).group(1)
        assert "gpu=1" in resources and "runtime=1440" in resources and "mem_mb=32000" in resources, resources
        assert re.search(rf"-m deg.tune mouse_openfield DEG_s --stage feature --split split0 --profile paper "
                         rf"--trials 24 --worker {k} ", block), block
    summary = [b for b in out.split("\n\n") if "rule tune_summary:" in b]
    assert len(summary) == 1 and "best.json" in summary[0] and "--summary" in summary[0]


def test_tables_figure_reads_the_benchmark_when_there_is_one(isolated):
    p = plan("demo")
    results = str(isolated / "results" / "demo")
    assert p.figure_inputs("tables", results) == [f"{results}/param_counts.csv"]
    (isolated / "results" / "bench.json").write_text("{}")
    assert p.figure_inputs("tables", results)[-1] == str(isolated / "results" / "bench.json")


# --------------------------------------------------------------------------------------
# Recompute exactly what changed (key files as inputs; a temporary copy of the package)
# --------------------------------------------------------------------------------------
def _jobs(output: str) -> list[tuple[str, str, str]]:
    """(rule, wildcards, output) of every job a dry run lists."""
    jobs = []
    for block in re.split(r"\n(?=localrule |rule )", output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if head:
            wc, out = re.search(r"wildcards: (.*)", block), re.search(r"output: (.*)", block)
            jobs.append((head.group(1), wc.group(1) if wc else "", out.group(1) if out else ""))
    return jobs


def _blocks(output: str) -> list[tuple[str, str]]:
    return [(rule, wc) for rule, wc, _ in _jobs(output)]


def _snake(repo, *args, dry=True):
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "workflow" / "Snakefile"), "--cores", "1",
           *(["--dry-run"] if dry else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _scheduled_runs(output: str) -> set[str]:
    return {wc for rule, wc in _blocks(output) if rule == "run"}


def test_every_figure_6_run_waits_for_the_run_whose_flow_generator_it_reuses(isolated):
    """A subsample run (scratch or from self-supervised weights) reads the flow stage of its parent
    split's run, under that run's lock: without the dependency the two ran at once in a demo
    make figures and the subsample run failed with RunBusyError."""
    from deg.data import synthetic

    synthetic.generate("synthetic_tiny", progress=False)
    jobs = re.split(r"\n(?=localrule |rule )", _dry_run(isolated, "profile=tiny", "datasets=synthetic_tiny"))
    checked = set()
    for block in jobs:
        head = re.match(r"(?:local)?rule (run|selfsup_run):", block)
        split = re.search(r"split=(sub\d+_d\d+)", block)
        if head and split:
            folder = "selfsup/DEG_f" if head.group(1) == "selfsup_run" else "DEG_f"
            inputs = re.search(r"input: (.*)", block).group(1).split(", ")
            assert any(i.endswith(f"synthetic_tiny/{folder}/split0/metrics.csv") for i in inputs), block
            checked.add((head.group(1), split.group(1)))
    # tiny: both sizes from scratch, the first from self-supervised weights (deg.workflow.selfsup_plan)
    assert checked == {("run", "sub1_d0"), ("run", "sub2_d0"), ("selfsup_run", "sub1_d0")}


def test_long_and_gating_jobs_get_the_higher_snakemake_priority(isolated):
    """Snakemake reads the priorities of deg.schedule: pretraining and the flow-parent split first,
    then the runs by preset cost (equal priorities let a DEG_s run start last and run alone for 382 s
    of the demo's make figures)."""
    from deg.data import synthetic
    from deg.schedule import PRIORITY_FLOW_PARENT, PRIORITY_PRETRAIN, PRIORITY_RUN, PRIORITY_RUN_DEFAULT

    synthetic.generate("synthetic_tiny", progress=False)
    jobs = re.split(r"\n(?=localrule |rule )", _dry_run(isolated, "profile=tiny", "datasets=synthetic_tiny"))
    seen: dict[tuple[str, str, str], int] = {}
    for block in jobs:
        head = re.match(r"(?:local)?rule (run|selfsup_run|selfsup_pretrain):", block)
        if not head:
            continue
        prio = re.search(r"priority: (\d+)", block)
        preset = re.search(r"preset=(\w+)", block)
        split = re.search(r"split=(\w+)", block)
        seen[(head.group(1), preset.group(1) if preset else "", split.group(1) if split else "")] = \
            int(prio.group(1)) if prio else 0
    assert seen, "the dry run listed no training jobs"
    for (rule, preset, split), prio in seen.items():
        if rule == "selfsup_pretrain":
            expect = PRIORITY_PRETRAIN
        elif preset == "DEG_f" and split == "split0":       # parent of the Figure 6 runs (tiny has them)
            expect = PRIORITY_FLOW_PARENT
        else:
            expect = PRIORITY_RUN.get(preset, PRIORITY_RUN_DEFAULT)
        assert prio == expect, (rule, preset, split, prio)
    assert seen[("run", "DEG_f", "split0")] > seen[("run", "DEG_f", "sub1_d0")]
    assert any(rule == "selfsup_pretrain" for rule, _, _ in seen)


def test_workflow_modules_stay_out_of_the_runs_code_keys():
    """Editing the DAG (figure lists, scheduling) must not re-train runs: deg.workflow was in every
    run's code key through deg.train.selfsup's import of init_kinds, so a priority added there
    re-keyed all twelve demo split runs in a dry run."""
    from deg.train.keys import RUN_ROOTS, STAGE_ROOTS, code_hashes

    assert "deg.train.selfsup" in code_hashes(RUN_ROOTS)       # the closure is followed at all
    for roots in [RUN_ROOTS, ("deg.train.selfsup",), *STAGE_ROOTS.values()]:
        closure = code_hashes(tuple(roots))
        assert "deg.workflow" not in closure and "deg.schedule" not in closure, roots


def test_a_change_recomputes_exactly_the_affected_jobs(isolated):
    """Every computing rule has a key file input: settings + code of what it runs. In a copy of the
    package: a TinyMotionNet3D-only hyperparameter re-runs exactly the DEG_s run; a figure module
    re-runs exactly its figure's jobs; a docstring edit nothing; new overrides a new folder."""
    from deg.data import synthetic

    repo = isolated / "repo"
    for part in ("deg", "workflow", "notebooks"):
        shutil.copytree(paths.REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    synthetic.generate("synthetic_tiny", progress=False)
    overrides = {"presets": ["DEG_f", "DEG_s"]}
    config = ["--config", "profile=tiny", f"overrides={json.dumps(overrides)}"]
    first = _snake(repo, *config)
    runs = _scheduled_runs(first)
    assert runs == {"ds=synthetic_tiny, preset=DEG_f, split=split0", "ds=synthetic_tiny, preset=DEG_s, split=split0",
                    "ds=synthetic_tiny, preset=DEG_f, split=sub1_d0", "ds=synthetic_tiny, preset=DEG_f, split=sub2_d0"}
    # Bring the workflow to "done" without training: the dry run wrote the key files (their
    # content: what the job depends on); every output, newer than its inputs.
    results = paths.results_dir() / get_profile("tiny", **overrides).results_name
    assert len(list((results / ".keys").rglob("*.json"))) == 17   # 4 runs, describe, humans, param_counts, 9 figures, index
    outputs = [out for rule, _, out in _jobs(first) if rule not in ("key", "all")]

    def all_done():          # as if every scheduled job had run just now (after its inputs)
        stamp = time.time()
        for out in outputs:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).touch()
            os.utime(out, (stamp, stamp))

    all_done()
    assert "Nothing to be done" in _snake(repo, *config)

    # 1. a hyperparameter of TinyMotionNet3D's loss (deg/presets.py, the one table): the DEG_s run only
    presets_py = repo / "deg" / "presets.py"
    original = presets_py.read_text()
    presets_py.write_text(original.replace('"flow3d_sparsity_weight": 0.05,', '"flow3d_sparsity_weight": 0.06,'))
    changed = _snake(repo, *config)
    assert _scheduled_runs(changed) == {"ds=synthetic_tiny, preset=DEG_s, split=split0"}
    assert {r for r, _ in _blocks(changed)} == {"run", "figure", "index", "all"}   # and what reads it
    all_done()

    # 2. code: a figure module re-runs its figure only; a docstring edit in a stage module nothing
    tables_py = repo / "deg" / "figs" / "tables.py"
    tables_py.write_text(tables_py.read_text() + "\nUNUSED_CONSTANT = 1\n")
    seq_py = repo / "deg" / "train" / "sequence.py"
    seq_py.write_text(seq_py.read_text().replace('"""', '"""Edited docstring. ', 1))
    changed = _snake(repo, *config)
    assert _scheduled_runs(changed) == set()
    assert {wc for r, wc in _blocks(changed) if r == "figure"} == {"fig=tables"}
    assert any(r == "param_counts" for r, _ in _blocks(changed))

    # 3. other overrides: another results folder, computed from scratch there; this one untouched
    other = _snake(repo, "--config", "profile=tiny", f"overrides={json.dumps({**overrides, 'flow3d_sparsity_weight': 0.06})}")
    other_name = get_profile("tiny", **overrides, flow3d_sparsity_weight=0.06).results_name
    assert _scheduled_runs(other) == runs and other_name != results.name
    assert f"/{other_name}/" in other and f"/{results.name}/synthetic_tiny" not in other
