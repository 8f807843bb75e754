"""The DAG: what deg.workflow.plan schedules, and a real Snakemake dry run with the SLURM profile."""
from __future__ import annotations

import re
import subprocess
import sys

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
                for k in range(profile.n_splits) if ds in profile.preset_datasets.get(preset, (ds,))}
    assert set(p.runs) == expected and len(p.runs) == len(expected)
    assert {preset for _, preset, _ in p.runs} == {"DEG_f", "DEG_m", "DEG_s"}
    # the costly presets on their one dataset only; DEG_f everywhere
    assert {ds for ds, preset, _ in p.runs if preset == "DEG_s"} == set(profile.preset_datasets["DEG_s"])
    assert {ds for ds, preset, _ in p.runs if preset == "DEG_f"} == set(profile.datasets)
    assert p.subsample_runs and all(preset == "DEG_f" for _, preset, _ in p.subsample_runs)
    assert "fig2" in p.figures


def test_plan_adds_prepared_label_only_datasets_and_honours_explicit_list(isolated):
    assert "sturman_oft" not in plan("tiny").datasets
    (isolated / "data" / "sturman_oft").mkdir()
    (isolated / "data" / "sturman_oft" / "COMPLETE").write_text("ok\n")
    p = plan("tiny")
    assert "sturman_oft" in p.datasets and "sturman_oft" not in p.run_datasets
    assert plan("tiny", "sturman_epm").datasets == ["sturman_epm"]
    assert plan("tiny", "sturman_epm").runs == []


def _dry_run(isolated, *extra):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--dry-run", "--config", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=paths.REPO, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_slurm_profile_dry_run_plans_multi_gpu_training_jobs(isolated):
    out = _dry_run(isolated, "profile=paper", "datasets=sturman_oft mouse_openfield",
                   "tune=mouse_openfield/DEG_s/split0/feature", "tune_workers=3", "tune_trials=24",
                   "--profile", str(SLURM), "all", "tune_all")   # targets: the figures and a search
    counts = _job_counts(out)
    profile = get_profile("paper")
    assert counts["run"] == len(profile.presets) * profile.n_splits + len(plan("paper", "sturman_oft mouse_openfield").subsample_runs)
    assert counts["data"] == 2
    run_blocks = [b for b in out.split("\n\n") if "rule run:" in b]
    assert len(run_blocks) == counts["run"]
    for block in run_blocks:
        resources = re.search(r"resources: (.*)", block).group(1)
        assert "gpu=4" in resources and "slurm_partition=gpu" in resources and "runtime=1440" in resources, resources
        assert "nodes=1" in resources and "tasks_per_node=4" in resources and "mpi=srun" in resources, resources
        # 4 GPUs: srun starts the DDP processes before the notebook evaluates the finished run
        assert re.search(r"srun}? \S+ -m deg.train.distributed \S+ DEG_\w \S+ --profile paper --devices \$\(\( 4 / 1 \)\) "
                         r"--nodes 1; fi && ", block), block
    other = [b for b in out.split("\n\n") if "rule data:" in b]
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
