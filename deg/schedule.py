"""Snakemake priorities of the DAG's long jobs (``priority:`` in ``workflow/Snakefile`` and
``workflow/rules/*.smk``): among ready jobs the scheduler starts the highest first.

Longest (or most depended-on) first packs the cores: in the fresh demo ``make figures`` of
2026-12-01, with equal priorities, a DEG_s run happened to start last and ran alone for 382 of
the workflow's 3,548 s. The tiers follow that run's one-thread wall times on the 2-core AVX2 EPYC;
a wrong tier costs packing only, never a result. Pretraining and a Figure 6 parent split gate
other runs, so they go early.

A module of its own, imported by the workflow files only, so that no run's code key contains it:
scheduling must not re-key results (``tests/test_workflow.py`` checks the closures).
"""
from __future__ import annotations

from deg.train.keys import flow_parent

PRIORITY_DATA = 7                                    # data (3-12 s each): in the second DAG pass the real pose
                                                     # datasets, which gate the pose job (fresh demo of 2026-12-03:
                                                     # at priority 0 they waited for every run, and the 548 s pose
                                                     # job ran alone at the end for ~7 minutes)
PRIORITY_FLOW_SHAPES = 6                             # flow_shapes (the longest job; gates every DEG_f split run)
PRIORITY_PRETRAIN = 5                                # selfsup_pretrain (55-113 s; gates four DEG_f runs)
PRIORITY_RUN = {"DEG_s": 4, "DEG_m": 3}              # DEG_s 214 s, DEG_m 193 s per demo run (16x16)
PRIORITY_RUN_DEFAULT = 2                             # DEG_f 184-211 s
PRIORITY_FLOW_PARENT = 4                             # a split whose flow generator Figure 6 runs reuse
PRIORITY_POSE = 5                                    # the one pose job (every dataset: 548 s in the demo)


def run_priority(runs, preset: str, split: str, dataset: str) -> int:
    """Priority of the DEG run (``dataset``, ``preset``, ``split``) among ``runs`` ((dataset, preset,
    split) of the same rule): the flow parent of another run of ``runs`` (a Figure 6 run reuses its
    split0's flow generator) first, then the presets by their cost."""
    base = PRIORITY_RUN.get(preset, PRIORITY_RUN_DEFAULT)
    is_parent = any((ds, p, flow_parent(sp)) == (dataset, preset, split) and flow_parent(sp) != sp
                    for ds, p, sp in runs)
    return max(base, PRIORITY_FLOW_PARENT) if is_parent else base
