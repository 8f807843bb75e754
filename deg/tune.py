"""Hyperparameter search as in the paper (Methods: Hyperparameter optimization), with Optuna.

The paper tuned feature extractors and sequence models with Ray Tune: random search, the
asynchronous successive halving algorithm (ASHA, Li et al. 2020) terminating poor runs, target =
validation F1 averaged over behaviours without background. Here: Optuna's ``RandomSampler`` and
``SuccessiveHalvingPruner`` (its ASHA), over ``deg.presets.SEARCH_SPACES[stage]``, the validation
metric of :func:`deg.train.common.mean_f1` reported at every validation of the tuned stage.

A study lives in ``results/tune/<profile>/<dataset>/<preset>/<split>/<stage>/``:

* ``study.log``: Optuna's journal storage (a file with its own locking, so any number of
  workers -- local processes (``--jobs``) or SLURM jobs (``workflow/rules/tune.smk``) -- share
  the study; a worker killed mid-trial leaves that trial RUNNING/FAIL and the others go on);
* ``trial0003/``: a trial's run folder. The stages before the tuned one are hard links to the
  ordinary run's folders (trained once, by the first worker): the search's names are per-stage
  (``fe_lr``, ``sequence_lr``, ... in ``HPARAMS``), so their keys match and nothing upstream is
  recomputed; the tuned stage trains there (its ``log.csv`` / ``steps.csv`` stay, weights go);
* ``trials.csv`` (one row per trial: state, F1, steps trained, each parameter),
  ``curves.csv`` (trial, step, validation F1) and ``best.json`` (the best trial's HPARAMS
  overrides: ``deg.pipeline.run(..., **read_overrides(path))``, or
  ``python -m deg.train.distributed ... --hparams path``). ``notebooks/tune.ipynb`` plots them.

``make tune DATASET=... PRESET=... STAGE=feature|sequence TRIALS=... JOBS=...``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from deg import io, paths, presets

# the stage a tuned stage reads from: the ordinary run is computed up to it, once
UPSTREAM = {"feature": "flow", "sequence": "features"}
LINKED = {"feature": ("flow",), "sequence": ("flow", "feature", "features")}


def study_dir(profile: str, dataset: str, preset: str, split: int | str, stage: str) -> Path:
    from deg.pipeline import split_name

    return paths.results_dir() / "tune" / profile / dataset / preset / split_name(split) / stage


def suggest(trial, space: dict[str, tuple]) -> dict[str, Any]:
    """One random configuration of ``space`` (``deg.presets.SEARCH_SPACES`` format) from an Optuna trial."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "log":
            out[name] = trial.suggest_float(name, spec[1], spec[2], log=True)
        elif kind == "float":
            out[name] = trial.suggest_float(name, spec[1], spec[2])
        elif kind == "int":
            out[name] = trial.suggest_int(name, spec[1], spec[2], step=spec[3] if len(spec) > 3 else 1)
        elif kind == "choice":
            out[name] = trial.suggest_categorical(name, list(spec[1]))
        else:
            raise ValueError(f"search space entry {name!r}: unknown kind {kind!r} (log, float, int, choice)")
    return out


def read_overrides(path: str | os.PathLike) -> dict[str, Any]:
    """The HPARAMS overrides of a ``best.json`` (checked against ``HPARAMS``)."""
    path = Path(path)
    try:
        record = io.read_json(path)
        overrides = dict(record["overrides"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a tuning result with an 'overrides' mapping ({exc})") from None
    unknown = sorted(set(overrides) - set(presets.HPARAMS))
    if unknown:
        raise ValueError(f"{path}: overrides name unknown HPARAMS entries {unknown}")
    return overrides


class Pruning:
    """A Fabric callback: report the tuned stage's validation F1 to the trial; stop it when ASHA says so."""

    def __init__(self, trial, stage: str):
        self.trial, self.stage = trial, stage

    def on_validation(self, stage: str, step: int, metric: float) -> None:
        import optuna

        if stage != self.stage or not np.isfinite(metric):
            return
        self.trial.report(float(metric), step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"validation F1 {metric:.3f} at step {step}: below its rung")


def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` = ``src`` as hard links (copies across file systems); the original is never modified."""
    for path in src.rglob("*"):
        if path.is_dir() or path.name.startswith(".tmp-"):
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)


def _base_run(dataset, preset, split, profile, stage, seed, device, overrides) -> Path:
    """The ordinary run, computed up to the stage the tuned one reads from (workers wait for each other)."""
    from deg import pipeline

    while True:
        try:
            return pipeline.run(dataset, preset, split, profile=profile, seed=seed, device=device, progress=False,
                                stop_after=UPSTREAM[stage], **overrides)
        except pipeline.RunBusyError:       # another worker is computing it: wait, then reuse it
            time.sleep(5)


def _storage(folder: Path):
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    folder.mkdir(parents=True, exist_ok=True)
    log = str(folder / "study.log")
    # an open(O_EXCL) lock file: works on the network file systems SLURM nodes share
    return JournalStorage(JournalFileBackend(log, lock_obj=JournalFileOpenLock(log)))


def tune(dataset: str, preset: str, stage: str, trials: int, profile: str = "demo", split: int | str = 0,
         seed: int = 0, worker: int = 0, device: str | None = None, progress: bool = True,
         space: dict[str, tuple] | None = None, **profile_overrides: Any) -> Path:
    """Run trials until the study holds ``trials`` of them (all workers together); returns the study folder.

    ``worker``: this process's index (seeds its random sampler, so parallel workers draw different
    configurations). ``space``: defaults to ``SEARCH_SPACES[stage]``. ``profile_overrides``:
    Profile fields or HPARAMS entries applied to every trial and to the base run (e.g. fewer steps).
    """
    import optuna
    import torch

    from deg import pipeline
    from deg.train.common import choose_precision
    from deg.train.distributed import make_fabric

    if stage not in UPSTREAM:
        raise ValueError(f"stage must be one of {sorted(UPSTREAM)} (the paper did not tune flow generators), got {stage!r}")
    space = dict(space or presets.SEARCH_SPACES[stage])
    clash = sorted(set(space) & set(profile_overrides))
    if clash:
        raise ValueError(f"{clash} are both searched and fixed")
    folder = study_dir(profile, dataset, preset, split, stage)
    base = _base_run(dataset, preset, split, profile, stage, seed, device, profile_overrides)
    prof = presets.get_profile(profile).for_preset(preset)
    val_every = int(profile_overrides.get("val_every", prof.val_every))
    study = open_study(folder, seed=seed, worker=worker, val_every=val_every)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = choose_precision(torch.device(dev), bool(profile_overrides.get("bf16", prof.bf16)))

    def objective(trial) -> float:
        overrides = suggest(trial, space)
        trial_dir = folder / f"trial{trial.number:04d}"
        for name in LINKED[stage]:
            _link_tree(base / name, trial_dir / name)
        if (base / "flow_example.npz").exists() and not (trial_dir / "flow_example.npz").exists():
            os.link(base / "flow_example.npz", trial_dir / "flow_example.npz")
        fabric = make_fabric(dev, precision, callbacks=[Pruning(trial, stage)])
        try:
            pipeline.run(dataset, preset, split, profile=profile, seed=seed, device=dev, progress=progress,
                         fabric=fabric, run_dir=trial_dir, stop_after=stage, **profile_overrides, **overrides)
        finally:
            for weights in ("last.pt", "best.pt"):      # a trial's weights are not kept: best.json re-runs
                (trial_dir / stage / weights).unlink(missing_ok=True)
        done = io.read_json(trial_dir / stage / "DONE")
        metric = done.get("best_metric")
        return float("nan") if metric is None else float(metric)

    study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(trials, states=None)],
                   catch=(FloatingPointError,), gc_after_trial=True)
    write_results(study, folder, stage, space)
    return folder


def open_study(folder: Path, seed: int = 0, worker: int = 0, val_every: int = 1):
    """The study of ``folder`` (created on first use): random search, ASHA on the reported steps."""
    import optuna

    settings = presets.TUNING
    return optuna.create_study(
        study_name="/".join(folder.parts[-5:]), storage=_storage(folder), direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=int(seed) * 100_003 + int(worker)),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=settings["min_validations"] * val_every,
                                                      reduction_factor=settings["reduction_factor"]))


def trials_table(study, space: dict[str, tuple]) -> pd.DataFrame:
    """One row per trial: trial, state, val_f1 (the objective: best validation F1; NaN unless
    complete), last_f1 and last_step (the last reported validation, where a pruned trial stopped),
    duration_s, then each searched entry."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        steps = max(t.intermediate_values) if t.intermediate_values else 0
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else np.nan
        complete = t.state.name == "COMPLETE" and t.value is not None
        rows.append({"trial": t.number, "state": t.state.name, "val_f1": t.value if complete else np.nan,
                     "last_f1": t.intermediate_values[steps] if steps else np.nan, "last_step": steps,
                     "duration_s": duration, **{k: t.params.get(k) for k in space}})
    return pd.DataFrame(rows, columns=["trial", "state", "val_f1", "last_f1", "last_step", "duration_s", *space])


def curves_table(study) -> pd.DataFrame:
    """Long table (trial, state, step, val_f1) of every reported validation: what ASHA compared."""
    rows = [{"trial": t.number, "state": t.state.name, "step": step, "val_f1": value}
            for t in study.get_trials(deepcopy=False) for step, value in sorted(t.intermediate_values.items())]
    return pd.DataFrame(rows, columns=["trial", "state", "step", "val_f1"])


def write_results(study, folder: Path, stage: str, space: dict[str, tuple]) -> None:
    """trials.csv, curves.csv and (once a trial is complete) best.json, atomically."""
    import optuna

    io.write_csv(folder / "trials.csv", trials_table(study, space))
    io.write_csv(folder / "curves.csv", curves_table(study))
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.value is not None and np.isfinite(t.value)]
    if complete:
        best = max(complete, key=lambda t: t.value)
        io.write_json(folder / "best.json", {
            "stage": stage, "study": study.study_name, "trial": best.number, "val_f1": best.value,
            "n_trials": len(study.trials), "overrides": dict(best.params)})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deg.tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("preset")
    parser.add_argument("--stage", required=True, choices=sorted(UPSTREAM))
    parser.add_argument("--trials", type=int, default=20, help="trials in the study, all workers together")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--split", default="0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="local worker processes sharing the study")
    parser.add_argument("--worker", type=int, default=0, help="this worker's index (SLURM array task)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--summary", action="store_true", help="only write trials.csv, curves.csv, best.json")
    args = parser.parse_args(argv)
    split: int | str = int(args.split) if args.split.isdigit() else args.split
    if args.summary:
        folder = study_dir(args.profile, args.dataset, args.preset, split, args.stage)
        if not (folder / "study.log").exists():
            raise SystemExit(f"deg.tune: no study in {folder} (run the workers first)")
        write_results(open_study(folder), folder, args.stage, presets.SEARCH_SPACES[args.stage])
        if not (folder / "best.json").exists():
            raise SystemExit(f"deg.tune: no trial of {folder} completed; nothing to write to best.json")
    elif args.jobs > 1:
        # the base run first (once), then one process per job, each with its share of the cores
        _base_run(args.dataset, args.preset, split, args.profile, args.stage, args.seed, args.device, {})
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        cmd = [sys.executable, "-m", "deg.tune", *(argv if argv is not None else sys.argv[1:])]
        procs = [subprocess.Popen([*cmd, "--jobs", "1", "--worker", str(args.worker * args.jobs + k)], env=env)
                 for k in range(args.jobs)]
        codes = [p.wait() for p in procs]
        folder = study_dir(args.profile, args.dataset, args.preset, split, args.stage)
        write_results(open_study(folder), folder, args.stage, presets.SEARCH_SPACES[args.stage])  # all workers' trials
        if any(codes):
            raise SystemExit(f"deg.tune: worker exit codes {codes}")
    else:
        folder = tune(args.dataset, args.preset, args.stage, args.trials, profile=args.profile, split=split,
                      seed=args.seed, worker=args.worker, device=args.device)
    best = folder / "best.json"
    print(f"deg tune: {folder / 'trials.csv'}; best configuration: "
          f"{best if best.exists() else 'none yet (no trial completed)'}")


if __name__ == "__main__":
    main()
