# Pose-based methods (deg/pose): the paper's keypoint MLP, its unsupervised baseline, ContrastivePose
# and random forests, on the synthetic datasets' pose and on the real pose datasets that are on disk
# or reachable (deg.pose.plan). Included by workflow/Snakefile; uses its PLAN, PROFILE, PY, DATA, RES,
# FIG and notebook().
from deg.pose.plan import METHODS as POSE_METHODS, POSE_FIGURES, pose_plan

POSE = pose_plan(PROFILE, str(config.get("datasets", "") or ""), PLAN)


rule pose_all:
    input:
        [f"{FIG}/{fig}/manifest.json" for fig in POSE_FIGURES],


rule pose_run:
    input:
        f"{DATA}/{{ds}}/COMPLETE",
    output:
        [f"{RES}/{{ds}}/{m}/{{split}}/metrics.csv" for m in POSE_METHODS],
    log:
        f"{RES}/{{ds}}/pose_{{split}}.log",
    wildcard_constraints:
        split="split[0-9]+",
    resources:
        runtime=30,
    threads: 1
    shell:
        f"OMP_NUM_THREADS={{threads}} NUMBA_NUM_THREADS={{threads}} {PY} -m deg.pose.run --profile {PROFILE} "
        f"{{wildcards.ds}} {{wildcards.split}} > {{log}} 2>&1"


rule pose_figure:
    input:
        lambda wildcards: POSE.figure_inputs(wildcards.posefig, RES),
    output:
        f"{FIG}/{{posefig}}/manifest.json",
    log:
        f"{FIG}/{{posefig}}/{{posefig}}.ipynb",
    wildcard_constraints:
        posefig="|".join(POSE_FIGURES),
    run:
        shell(notebook(POSE_FIGURES[wildcards.posefig], "{log}", profile=PROFILE, datasets=POSE.datasets,
                       skipped=POSE.skipped_lines))


ruleorder: pose_figure > figure
