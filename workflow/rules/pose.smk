# Pose-based methods (deg/pose): the paper's keypoint MLP, its unsupervised baseline, ContrastivePose
# and random forests, on the synthetic datasets' pose and on the real pose datasets that are on disk
# or reachable (deg.pose.plan). Included by workflow/Snakefile; uses its PLAN, PROFILE, PY, DATA, RES,
# FIG and notebook().
from deg.pose.plan import METHODS as POSE_METHODS, POSE_FIGURES, pose_plan
from deg.schedule import PRIORITY_POSE

POSE = pose_plan(PROFILE, str(config.get("datasets", "") or ""), PLAN)


rule pose_all:
    input:
        [f"{FIG}/{fig}/manifest.json" for fig in POSE_FIGURES],


# One job for every dataset and split: the pose of each is read once, and umap-learn's numba
# kernels compile once (they compile in every new process, 18 s alone and ~50 s beside a training
# job on one AVX2 core: more than a demo split's own UMAP; the five demo datasets took 525-548 s as
# one job against ~600 s as five). Each (dataset, method, split) is its own cached run (deg.pose.run), so a
# re-run computes only what is missing or changed.
if POSE.datasets:
    rule pose:
        input:
            [f"{DATA}/{ds}/COMPLETE" for ds in POSE.datasets],
        output:
            POSE.run_outputs(RES),
        log:
            f"{RES}/pose.log",
        params:
            each=" ".join(f"--each {ds}=" + ",".join(f"split{k}" for k in range(POSE.n_splits[ds]))
                          for ds in POSE.datasets),
        resources:
            runtime=60,
        threads: 1
        priority: PRIORITY_POSE
        shell:
            f"OMP_NUM_THREADS={{threads}} NUMBA_NUM_THREADS={{threads}} {PY} -m deg.pose.run --profile {PROFILE} "
            f"{{params.each}} > {{log}} 2>&1"


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
