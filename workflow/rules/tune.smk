# Scale-out pieces of the DAG: multi-GPU / multi-node training launches and the hyperparameter search.
# Included by workflow/Snakefile (after notebook()); GPU and node counts come from the profile
# (workflow/profiles/slurm/config.yaml: resources gpu, GPUs per job, and nodes of rule `run`).
#
#   snakemake -s workflow/Snakefile --profile workflow/profiles/slurm --config profile=paper \
#       tune="mouse_ventral1/DEG_f/split0/feature" tune_trials=64 tune_workers=8 tune_all


def ddp_train(profile, overrides=None):
    """Shell prefix of rule `run`: train every stage by DDP first when the job has several GPUs.

    Under SLURM `srun` starts one process per GPU (the profile asks for one task per GPU) and
    Fabric reads ranks from SLURM; elsewhere Fabric's launcher starts the local processes. The
    notebook that follows finds every stage finished (DONE) and only evaluates.
    """
    return (
        "if [ {resources.gpu} -gt 1 ]; then "
        f"OMP_NUM_THREADS={{threads}} ${{{{SLURM_JOB_ID:+srun}}}} {PY} -m deg.train.distributed {{wildcards.ds}} {{wildcards.preset}} "
        f"{{wildcards.split}} --profile {profile} --devices $(( {{resources.gpu}} / {{resources.nodes}} )) --nodes {{resources.nodes}}"
        + (f" --overrides {_quoted(overrides)}" if overrides else "") + "; "
        "fi && "
    )


# tune="<dataset>/<preset>/<split>/<stage> ..." (space-separated); one study each
TUNE = [t.split("/") for t in str(config.get("tune", "") or "").split()]
TUNE_TRIALS = int(config.get("tune_trials", 20))
TUNE_WORKERS = int(config.get("tune_workers", 1))
TUNE_RES = str(paths.results_dir() / "tune" / PROFILE)


rule tune_all:
    input:
        [f"{TUNE_RES}/{ds}/{preset}/{split}/{stage}/best.json" for ds, preset, split, stage in TUNE],


rule tune_worker:
    """One worker of a study: trials until the study holds tune_trials (workers share study.log)."""
    input:
        f"{DATA}/{{ds}}/COMPLETE",
    output:
        f"{TUNE_RES}/{{ds}}/{{preset}}/{{split}}/{{stage}}/worker{{worker}}.done",
    wildcard_constraints:
        stage="feature|sequence",
        worker="[0-9]+",
    resources:
        gpu=PLAN.gpus_per_run,
        runtime=PLAN.minutes_per_run,
        mem_mb=PLAN.mem_mb_per_run,
    threads: PLAN.threads_per_run
    shell:
        f"OMP_NUM_THREADS={{threads}} {PY} -m deg.tune {{wildcards.ds}} {{wildcards.preset}} --stage {{wildcards.stage}} "
        f"--split {{wildcards.split}} --profile {PROFILE} --trials {TUNE_TRIALS} --worker {{wildcards.worker}} "
        "&& touch {output}"


rule tune_summary:
    """trials.csv, curves.csv and best.json of a study once its workers are done."""
    input:
        [f"{TUNE_RES}/{{ds}}/{{preset}}/{{split}}/{{stage}}/worker{k}.done" for k in range(TUNE_WORKERS)],
    output:
        f"{TUNE_RES}/{{ds}}/{{preset}}/{{split}}/{{stage}}/best.json",
    wildcard_constraints:
        stage="feature|sequence",
    shell:
        f"{PY} -m deg.tune {{wildcards.ds}} {{wildcards.preset}} --stage {{wildcards.stage}} "
        f"--split {{wildcards.split}} --profile {PROFILE} --summary"
