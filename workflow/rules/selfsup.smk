# Self-supervised pretraining (Selfee, deg.train.selfsup), the Selfee method rows (deg.selfee) and DEG runs
# started from self-supervised weights. Included by workflow/Snakefile; the "selfsup" figure reads their outputs
# (deg.workflow.selfsup_outputs). Pretraining is once per (profile, dataset, kind) and shared by every split.
from deg.schedule import PRIORITY_PRETRAIN, run_priority
from deg.train.keys import flow_parent, init_kinds
from deg.workflow import selfsup_plan

SELFSUP = selfsup_plan(PLAN)


wildcard_constraints:
    kind="[a-z0-9]+-[a-z0-9]+",


rule selfsup_pretrain:
    input:
        f"{DATA}/{{ds}}/COMPLETE",
    output:
        f"{RES}/{{ds}}/selfsup/{{kind}}/DONE",
    resources:
        gpu=PLAN.gpus_per_run,
        runtime=PLAN.minutes_per_run,
        mem_mb=PLAN.mem_mb_per_run,
    threads: PLAN.threads_per_run
    priority: PRIORITY_PRETRAIN
    shell:
        f"OMP_NUM_THREADS={{threads}} {PY} -m deg.train.selfsup pretrain {{wildcards.ds}} --kinds {{wildcards.kind}} "
        f"--profile {PROFILE}"


def _selfee_kind(wildcards):
    return [f"{RES}/{wildcards.ds}/selfsup/{SELFSUP['pretrain'][wildcards.ds][0]}/DONE"]


rule selfee_split:
    input:
        f"{DATA}/{{ds}}/COMPLETE",
        _selfee_kind,
    output:
        f"{RES}/{{ds}}/selfee/{{split}}/metrics.csv",
    threads: PLAN.threads_per_run
    shell:
        f"OMP_NUM_THREADS={{threads}} {PY} -m deg.selfee split {{wildcards.ds}} {{wildcards.split}} --profile {PROFILE}"


rule selfee_embedding:
    input:
        f"{DATA}/{{ds}}/COMPLETE",
        _selfee_kind,
    output:
        f"{RES}/{{ds}}/selfee/embedding.csv",
    threads: PLAN.threads_per_run
    shell:
        f"OMP_NUM_THREADS={{threads}} {PY} -m deg.selfee embedding {{wildcards.ds}} --profile {PROFILE}"


def _init_kinds(wildcards):
    return [f"{RES}/{wildcards.ds}/selfsup/{kind}/DONE" for kind in init_kinds(wildcards.preset).values()]


def _flow_parent_run(wildcards):
    """A Figure 6 run from self-supervised weights reuses the flow generator of its parent split's
    run (deg.train.keys.flow_parent), as the scratch runs do (rule run): that run first, or the two
    collide on its lock. ancient: the parent's key, not its time, decides a recomputation."""
    parent = flow_parent(wildcards.split)
    return [] if parent == wildcards.split else [
        ancient(f"{RES}/{wildcards.ds}/selfsup/{wildcards.preset}/{parent}/metrics.csv")]


rule selfsup_run:
    input:
        f"{DATA}/{{ds}}/COMPLETE",
        _init_kinds,
        _flow_parent_run,
    output:
        f"{RES}/{{ds}}/selfsup/{{preset}}/{{split}}/metrics.csv",
    resources:
        gpu=PLAN.gpus_per_run,
        runtime=PLAN.minutes_per_run,
        mem_mb=PLAN.mem_mb_per_run,
    threads: PLAN.threads_per_run
    # the same tiers as the scratch runs (rule run): its split0 gates its own Figure 6 runs
    priority: lambda w: run_priority(SELFSUP["runs"], w.preset, w.split, w.ds)
    shell:
        f"OMP_NUM_THREADS={{threads}} {PY} -m deg.train.selfsup run {{wildcards.ds}} {{wildcards.preset}} "
        f"{{wildcards.split}} --profile {PROFILE}"
