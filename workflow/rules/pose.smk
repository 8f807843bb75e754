# Pose-based methods (deg/pose): the paper's keypoint MLP, its unsupervised baseline, ContrastivePose
# and random forests, on the synthetic datasets' pose and on the real pose datasets that are on disk
# or reachable (deg.pose.plan). Included by workflow/Snakefile; uses its PLAN, PROFILE, PY, DATA, RES,
# FIG and notebook().
from deg.pose.plan import METHODS as POSE_METHODS, POSE_FIGURES, pose_plan
from deg.schedule import pose_priority

POSE = pose_plan(PROFILE, str(config.get("datasets", "") or ""), PLAN)


rule pose_all:
    input:
        [f"{FIG}/{fig}/manifest.json" for fig in POSE_FIGURES],


# One job per dataset running all its splits: the pose is read once and umap-learn's numba
# kernels compile once (they compile in every new process, 30-100 s on 2 cores: more than a demo
# split's own UMAP). A rule per dataset, because each has its own split count.
for _ds in POSE.datasets:
    rule:
        name:
            f"pose_{_ds}"
        input:
            f"{DATA}/{_ds}/COMPLETE",
        output:
            [f"{RES}/{_ds}/{m}/split{k}/metrics.csv" for k in range(POSE.n_splits[_ds]) for m in POSE_METHODS],
        log:
            f"{RES}/{_ds}/pose.log",
        params:
            dataset=_ds,
            splits=" ".join(f"split{k}" for k in range(POSE.n_splits[_ds])),
        resources:
            runtime=60,
        threads: 1
        priority: pose_priority(_ds)
        shell:
            f"OMP_NUM_THREADS={{threads}} NUMBA_NUM_THREADS={{threads}} {PY} -m deg.pose.run --profile {PROFILE} "
            f"{{params.dataset}} {{params.splits}} > {{log}} 2>&1"


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
