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

PRIORITY_FLOW_SHAPES = 6                             # flow_shapes (the longest job; gates every DEG_f split run)
PRIORITY_PRETRAIN = 5                                # selfsup_pretrain (45-120 s; gates six DEG_f runs)
PRIORITY_RUN = {"DEG_s": 4, "DEG_m": 3}              # DEG_s ~420 s, DEG_m ~275 s per demo run
PRIORITY_RUN_DEFAULT = 2                             # DEG_f ~200 s
PRIORITY_FLOW_PARENT = 4                             # a split whose flow generator Figure 6 runs reuse
PRIORITY_POSE = 4                                    # the one pose job (every dataset, ~400 s)


def run_priority(runs, preset: str, split: str, dataset: str) -> int:
    """Priority of the DEG run (``dataset``, ``preset``, ``split``) among ``runs`` ((dataset, preset,
    split) of the same rule): the flow parent of another run of ``runs`` (a Figure 6 run reuses its
    split0's flow generator) first, then the presets by their cost."""
    base = PRIORITY_RUN.get(preset, PRIORITY_RUN_DEFAULT)
    is_parent = any((ds, p, flow_parent(sp)) == (dataset, preset, split) and flow_parent(sp) != sp
                    for ds, p, sp in runs)
    return max(base, PRIORITY_FLOW_PARENT) if is_parent else base
