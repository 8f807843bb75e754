"""One run = (dataset, preset, split, profile) -> ``results/<profile>/<dataset>/<preset>/<split>/``.

Stages, in series as in the paper (Methods: End-to-end training):

1. ``flow/``: flow generator, self-supervised (MotionNet loss); best = lowest validation loss.
2. ``feature/``: two-stream feature extractor on the frozen flow generator; best = highest
   validation mean F1 (background excluded).
3. ``features/<video>.npz``: spatial (T, 512), flow (T, 512) features and fused logits (T, K)
   of every frame of every video.
4. ``sequence/``: TGM on feature snippets; best = highest validation mean F1.
5. ``predictions/<video>.npz`` + ``thresholds.json``: per-behaviour thresholds maximising F1
   on the validation videos, bouts shorter than the 1st percentile of the training set's bout
   lengths removed, background = no other behaviour.

A Figure 6 run ``sub<n>_d<draw>`` trains no flow generator of its own: its flow stage is the one
of its parent split's run (``split0``, :func:`deg.train.keys.flow_parent`; paper: "we trained the
flow generator only once and kept it fixed"), same folder and key, trained there when missing.

Also ``split.json``, ``run.json`` (provenance) and ``flow_example.npz`` (an 11-frame validation
clip and its 10 flows, for Figure 1C); ``split.json`` and ``run.json`` list under ``left_out``
the labelled items without a video (:meth:`deg.data.datasets.Dataset.left_out`), and so does
the run's last log line. The stages' code is in :mod:`deg.train` (one module per
stage, :mod:`deg.train.keys` for the keys, :mod:`deg.train.store` for the folders).

Caching: each stage stores a *configuration key* (hash of its settings, the code of the modules
that compute it, and the key of the stage it reads from) in ``config.json`` and ``DONE``. A stage
whose ``DONE`` carries the current key is reused; one with another key is deleted and recomputed;
one without ``DONE`` resumes from its ``last.pt``. So changing a sequence-model hyperparameter
re-runs only the sequence model, calibration and predictions. Every file is written atomically
(:mod:`deg.io`), ``DONE`` last, so a run killed at any moment (``kill -9``) is resumed by the same
command. ``run.json`` records parameters, versions, git commit, device, seeds, wall time and steps
per stage.

Overrides: ``run(..., feature_steps=50)`` replaces a profile field; ``run(..., tgm_n_filters=4)``
replaces an ``HPARAMS`` entry for this run (passed explicitly to every stage; nothing global
changes). A run with overrides lives in ``results/<profile>+<digest>/`` (:func:`deg.presets.results_name`;
``profile.json`` there lists them), never beside the profile's own runs; a stage whose key matches
a finished stage of the same run in another folder of the same profile is copied from there, so
changing a sequence-model hyperparameter still trains only the sequence model.

Threads: torch uses as many threads as ``OMP_NUM_THREADS`` says (default: every core). When
several runs share a machine, give each ``OMP_NUM_THREADS = cores / runs``: oversubscribed
OpenMP threads wait on each other at every operation (measured: 3-10x slower).
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from deg import io, paths, presets, provenance
from deg.train import common, loop
from deg.train.keys import STAGES, flow_parent, keys_of, stage_configs
from deg.train.store import RunBusyError, StageDir, run_lock

__all__ = ["STAGES", "RunBusyError", "flow_parent", "resolve_profile", "resolve_split", "run", "split_name",
           "stage_configs", "stage_keys"]

# --------------------------------------------------------------------------------------
# Overrides and context
# --------------------------------------------------------------------------------------
def resolve_profile(profile: str, overrides: dict[str, Any], preset: str | None = None):
    """(profile for ``preset`` with the caller's overrides, the complete HPARAMS of the run).

    ``overrides``: Profile fields and HPARAMS entries (:func:`deg.presets.get_profile`); the
    caller's values win over the profile's per-preset replacements and its ``hparams``. Nothing
    global is changed: the returned dict is passed to every stage.
    """
    prof = presets.get_profile(profile, **overrides)
    if preset is not None:
        prof = prof.for_preset(preset)
    return prof, {**presets.HPARAMS, **prof.hparams}


def split_name(split: int | str) -> str:
    if isinstance(split, (int, np.integer)) or str(split).isdigit():   # "0" from a command line is split0
        return f"split{int(split)}"
    if re.fullmatch(r"split\d+|sub\d+_d\d+", str(split)):
        return str(split)
    raise ValueError(f"split must be an int k, 'split<k>' or 'sub<n>_d<draw>', got {split!r}")


def resolve_split(dataset: str, split: int | str, profile: str = "demo", seed: int = 0, **overrides: Any):
    """The :class:`deg.data.splits.Split` a run with these arguments trains on (nothing is computed)."""
    from deg.data.datasets import open_dataset

    prof, hparams = resolve_profile(profile, overrides)
    ds = open_dataset(dataset)
    labels = {v: ds.labels(v) for v in ds.videos
              if ds.video_path(v) is not None and ds.has_labels(v, ds.train_annotator)}
    return _choose_split(split_name(split), ds, labels, prof, seed, hparams)


def _choose_split(name: str, dataset, labels: dict[str, np.ndarray], profile, seed: int, hparams):
    from deg.data.splits import make_splits, subsample_splits

    videos = sorted(labels)
    match = re.fullmatch(r"split(\d+)", name)
    if match:
        k, n_splits = int(match.group(1)), profile.splits_for(dataset.id)
        if k >= n_splits:
            raise ValueError(f"{name}: profile {profile.name!r} has {n_splits} split(s) of {dataset.id} (0..{n_splits - 1})")
        return make_splits(videos, labels, n_splits=n_splits, seed=seed,
                           fractions=hparams["split_fractions"], behaviours=dataset.behaviours)[k]
    n_train, draw = (int(g) for g in re.fullmatch(r"sub(\d+)_d(\d+)", name).groups())
    subs = subsample_splits(videos, labels, profile.subsample_videos, profile.subsample_draws, seed,
                            behaviours=dataset.behaviours)
    for n, d, split in subs:
        if (n, d) == (n_train, draw):
            return split
    have = ", ".join(f"sub{n}_d{d}" for n, d, _ in subs)
    notes = "; ".join(subs.notes)
    raise ValueError(f"{dataset.id}: no subsample split {name} (available: {have or 'none'}){'; ' + notes if notes else ''}")


def _context(dataset: str, preset: str, split: int | str, profile, seed: int, device: str | None,
             progress: bool, hparams: dict[str, Any]) -> common.RunContext:
    from deg.data.datasets import open_dataset
    from deg.data.video import video_info
    from deg.train.clips import resolve_image_size

    ds = open_dataset(dataset)
    videos = [v for v in ds.videos if ds.video_path(v) is not None]
    if not videos:
        raise ValueError(f"dataset {dataset!r} ({ds.root}) has no video files: it can feed label-based "
                         "analyses only, not training")
    labels = {v: ds.labels(v) for v in videos if ds.has_labels(v, ds.train_annotator)}
    name = split_name(split)
    the_split = _choose_split(name, ds, labels, profile, seed, hparams)
    parent = flow_parent(name)
    flow_split = the_split if parent == name else _choose_split(parent, ds, labels, profile, seed, hparams)
    native = video_info(ds.video_path(videos[0]))
    size = resolve_image_size(profile.image_size, ds.image_size, (native.height, native.width))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return common.RunContext(dataset=ds, preset=presets.get_preset(preset), profile=profile, hparams=hparams,
                             split=the_split, flow_split=flow_split, labels=labels, videos=videos, image_size=size, device=dev,
                             precision=common.choose_precision(dev, profile.bf16), seed=int(seed), progress=progress)


# --------------------------------------------------------------------------------------
# Stage configurations and keys
# --------------------------------------------------------------------------------------
def stage_keys(dataset: str, preset: str, split: int | str = 0, profile: str = "demo", seed: int = 0,
               **overrides: Any) -> dict[str, str]:
    """The configuration key of every stage for these arguments (nothing is trained)."""
    prof, hparams = resolve_profile(profile, overrides, preset)
    ctx = _context(dataset, preset, split, prof, seed, "cpu", False, hparams)
    return keys_of(stage_configs(ctx))


def _fit_record(result: loop.FitResult) -> dict[str, Any]:
    return {"steps": result.steps, "best_metric": result.best_metric, "best_step": result.best_step,
            "stopped": result.stopped, "resumed_from": result.resumed_from, "train_wall_s": round(result.wall_s, 3)}


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------
def run(dataset: str, preset: str, split: int | str, profile: str = "demo", seed: int = 0,
        device: str | None = None, progress: bool = True, fabric=None, run_dir: Path | None = None,
        stop_after: str | None = None, **profile_overrides: Any) -> Path:
    """Run (or resume, or reuse) every stage of one run; returns the run folder.

    ``split``: int k or "split<k>" (the k-th of ``make_splits(..., n_splits=profile.n_splits,
    seed=seed)``), or "sub<n>_d<d>" (Figure 6: n training videos, draw d; no test set).
    ``seed`` seeds the split; each stage's model initialisation and sampling use a seed derived
    from it and the stage name. ``profile_overrides``: Profile fields or HPARAMS entries.
    ``fabric``: a launched DDP Fabric (``python -m deg.train.distributed``): every process calls
    ``run`` alike; they train together, each extracts the features of a share of the videos, and
    process 0 alone writes the run's files and predicts. ``run_dir``: another folder than the
    run's own (``deg.tune``'s trials); ``stop_after``: a stage of :data:`STAGES` to end with.
    """
    t_run = time.perf_counter()
    started = provenance.now_iso()
    prof, hparams = resolve_profile(profile, profile_overrides, preset)
    if fabric is not None:
        device = str(fabric.device)
    ctx = _context(dataset, preset, split, prof, seed, device, progress and _rank0(fabric), hparams)
    ctx.fabric = fabric
    if _rank0(fabric):
        _record_overrides(prof)
    if run_dir is None:
        run_dir = paths.run_dir(prof.results_name, dataset, preset, split_name(split))
        if prof.pretrained == "selfsup":      # beside the from-scratch run, never over it
            from deg.train import selfsup

            run_dir = selfsup.run_dir(prof.results_name, dataset, preset, split_name(split))
    run_dir = Path(run_dir)
    lock = run_lock(run_dir) if _rank0(fabric) else contextlib.nullcontext()   # one run, many processes
    with lock, _deterministic(ctx.device):
        try:
            return _run_stages(ctx, run_dir, t_run, started, stop_after)
        except _StopAfter:
            return run_dir


def _record_overrides(prof: presets.Profile) -> None:
    """``results/<profile>+<digest>/profile.json``: the profile and the overrides the digest stands for."""
    if prof.results_name == prof.name:       # no folder of its own (no overrides, or pretrained= only)
        return
    path = paths.results_dir() / prof.results_name / "profile.json"
    if not path.exists():
        io.write_json(path, {"profile": prof.name, "overrides": prof.overrides,
                             "results_name": prof.results_name})


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """CUDA: deterministic algorithms where they exist (warn otherwise), no cuDNN autotuning.

    The CPU kernels used here are deterministic already; the flag would only switch some of
    them to slower paths (measured: ResNet18 backward 2x slower), so it is left off on the CPU.
    """
    if device.type != "cuda":
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = benchmark


def _run_stages(ctx: common.RunContext, run_dir: Path, t_run: float, started: str,
                stop_after: str | None = None) -> Path:
    from deg.train import calibrate, feature, flow, sequence

    configs = stage_configs(ctx)
    keys = keys_of(configs)
    fabric, rank0 = ctx.fabric, _rank0(ctx.fabric)      # DDP: process 0 writes every file
    left_out = ctx.dataset.left_out()   # labelled items without a video: recorded, never silently dropped
    if rank0:
        _write_if_changed(run_dir / "split.json", {"train": ctx.split.train, "val": ctx.split.val,
                                                   "test": ctx.split.test, "missing": ctx.split.missing,
                                                   "left_out": left_out})
    previous = _previous_record(run_dir / "run.json", keys)
    dirs = {s: StageDir(run_dir / s, keys[s], configs[s]) for s in STAGES}
    # Figure 6 runs use the flow generator of their parent split's run (its folder, its key)
    flow_run_dir = run_dir.parent / flow_parent(run_dir.name)
    dirs["flow"] = StageDir(flow_run_dir / "flow", keys["flow"], configs["flow"])
    dirs["flow"].extra_outputs = (flow_run_dir / "flow_example.npz",)
    dirs["predictions"].extra_outputs = (run_dir / "thresholds.json",)
    records: dict[str, dict[str, Any]] = {}
    models: dict[str, Any] = {}
    computed: list[str] = []

    def write_run_json(complete: bool) -> None:
        if not rank0:
            return
        provenance.write_run_json(run_dir / "run.json", {
            "dataset": ctx.dataset.id, "preset": ctx.preset.name, "split": _split_name_of(run_dir),
            "profile": ctx.profile.to_dict(), "results_name": ctx.profile.results_name,
            "overrides": ctx.profile.overrides, "hparams": ctx.hparams,
            "preset_config": dataclasses.asdict(ctx.preset), "image_size": list(ctx.image_size),
            "normalisation": ctx.norm, "seed": ctx.seed,
            "seeds": {"split": ctx.seed, **{s: common.stage_seed(ctx.seed, s) for s in ("flow", "feature", "sequence")}},
            "device": provenance.device_info(str(ctx.device)), "precision": ctx.precision.name,
            "processes": 1 if fabric is None else fabric.world_size,      # DDP processes that trained
            "left_out": left_out, "stages": records, "stage_keys": keys,
            **_timing(previous, started, time.perf_counter() - t_run),
            "complete": complete})

    def stage(name: str, compute, every_process: bool = True) -> dict[str, Any]:
        sd = dirs[name]
        elsewhere = sd.path.parent != run_dir          # the parent split's flow generator
        with run_lock(sd.path.parent) if (elsewhere and rank0) else contextlib.nullcontext():
            done = sd.done()
            if done is None and rank0:
                done = sd.adopt(_same_run_elsewhere(ctx.profile, sd.path.parent, sd.path))
            done = _agree(fabric, done)
            if done is not None:
                records[name] = dict(done, cached=True)
            else:
                if rank0:
                    sd.prepare()
                _barrier(fabric)
                t0 = time.perf_counter()
                extra = (compute(sd.path) or {}) if (every_process or rank0) else {}
                _barrier(fabric)
                if rank0:
                    records[name] = dict(sd.finish(wall_s=round(time.perf_counter() - t0, 3), **extra), cached=False)
                computed.append(name)
        if elsewhere and name in records:
            records[name]["path"] = str(sd.path)
        if computed:                     # a re-run that computes nothing leaves the provenance alone
            write_run_json(complete=False)
        if name == stop_after:
            raise _StopAfter(name)
        return records.get(name, {})

    def flow_model():
        if "flow" not in models:
            models["flow"] = flow.load(ctx, dirs["flow"].path)
        return models["flow"]

    def feature_model():
        if "feature" not in models:
            models["feature"] = feature.load(ctx, dirs["feature"].path)
        return models["feature"]

    # 1. flow generator
    def do_flow(path: Path):
        norm_path = path / "norm.json"
        if norm_path.exists():
            ctx.norm = io.read_json(norm_path)
        else:
            norm = ctx.compute_norm()
            if rank0:
                io.write_json(norm_path, norm)
        result = flow.train(ctx, path, keys["flow"])
        if rank0:
            example = flow.example(ctx, flow.load(ctx, path))
            io.write_npz(path.parent / "flow_example.npz", key=np.array(keys["flow"]), **example)
        return _fit_record(result)

    stage("flow", do_flow)
    ctx.norm = io.read_json(dirs["flow"].path / "norm.json")
    if rank0 and not (run_dir / "flow_example.npz").exists():
        io.write_npz(run_dir / "flow_example.npz", key=np.array(keys["flow"]), **flow.example(ctx, flow_model()))

    # 2. feature extractor
    stage("feature", lambda path: _fit_record(feature.train(ctx, path, keys["feature"], flow_model())))

    # 3. features of every frame of every video
    def do_features(path: Path):
        share = None if fabric is None else ctx.videos[fabric.global_rank::fabric.world_size]  # DDP: a share each
        written = feature.extract(ctx, path, flow_model(), feature_model(), batch=ctx.profile.infer_batch,
                                  videos=share)
        return {"steps": len(ctx.videos), "videos_written_last_attempt": len(written)}

    stage("features", do_features)
    models.clear()                       # image models are no longer needed: free their memory

    def features() -> dict[str, dict[str, np.ndarray]]:
        if "features" not in models:
            models["features"] = sequence.load_features(dirs["features"].path, ctx.videos)
        return models["features"]

    # 4. sequence model
    stage("sequence", lambda path: _fit_record(sequence.train(ctx, path, keys["sequence"], features())))

    # 5. calibration + predictions
    def do_predictions(path: Path):
        n_features = next(iter(features().values()))["x"].shape[1]
        seq_model = sequence.load(ctx, dirs["sequence"].path, n_features)
        thresholds = calibrate.predict_all(ctx, path, run_dir, seq_model, features())
        return {"steps": len(ctx.videos), "thresholds": thresholds}

    stage("predictions", do_predictions, every_process=False)
    if not rank0:
        return run_dir
    if computed or previous is None or not previous.get("complete"):
        write_run_json(complete=True)
    else:
        _mark_checked(run_dir / "run.json", previous)
    wall = time.perf_counter() - t_run
    fe_f1, seq_f1 = records["feature"].get("best_metric"), records["sequence"].get("best_metric")
    cached = sum(bool(r.get("cached")) for r in records.values())
    print(f"deg run {ctx.dataset.id}/{ctx.preset.name}/{_split_name_of(run_dir)} [{ctx.profile.results_name}]: "
          f"{wall:.1f} s, val F1 {_fmt(seq_f1)} (feature extractor {_fmt(fe_f1)}), "
          f"{cached}/{len(STAGES)} stages cached -> {run_dir}"
          + "".join(f"\n  left out {name}: {why}" for name, why in left_out.items()))
    return run_dir


def _same_run_elsewhere(profile: presets.Profile, run_dir: Path, stage_dir: Path) -> list[tuple[Path, Path]]:
    """(stage folder, run folder) of this run under the profile's other results folders: the
    profile itself and each of its override sets (``results/<name>`` and ``results/<name>+*``)."""
    root = paths.results_dir()
    own = root / profile.results_name
    try:
        rel_run, rel_stage = run_dir.relative_to(own), stage_dir.relative_to(own)
    except ValueError:
        return []
    folders = [root / profile.name] + sorted(root.glob(f"{profile.name}+*"))
    return [(f / rel_stage, f / rel_run) for f in folders if f != own and (f / rel_stage / "DONE").exists()]


def _write_if_changed(path: Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` unless ``path`` already holds it (a finished run on a read-only disk still loads)."""
    try:
        if path.exists() and provenance.canonical_json(io.read_json(path)) == provenance.canonical_json(obj):
            return
    except ValueError:
        pass                             # damaged: rewrite it
    try:
        io.write_json(path, obj)
    except io.ReadOnlyError:
        if not path.exists():
            raise
        # a finished run from before a field was added, on a read-only disk: it still loads (a
        # stage that has to be computed stops with the same error, naming the folder)


def _previous_record(path: Path, keys: dict[str, str]) -> dict[str, Any] | None:
    """The run.json of an earlier attempt at this very configuration (same stage keys), if any."""
    try:
        record = io.read_json(path) if path.exists() else None
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("stage_keys") == keys else None


def _timing(previous: dict[str, Any] | None, started: str, wall_s: float) -> dict[str, Any]:
    """started_at / wall_s of the computation: a resumed run keeps its first start and adds up walls."""
    if previous is None or previous.get("complete"):
        return {"started_at": started, "wall_s": round(wall_s, 3)}
    return {"started_at": previous.get("started_at", started),
            "wall_s": round(float(previous.get("wall_s") or 0.0) + wall_s, 3),
            "resumed_at": list(previous.get("resumed_at", [])) + [started]}


def _mark_checked(path: Path, previous: dict[str, Any]) -> None:
    """A no-op re-run: keep run.json as the computation wrote it, plus ``checked_at`` (skipped when
    the results folder is read-only)."""
    try:
        io.write_json(path, {**previous, "checked_at": provenance.now_iso()})
    except PermissionError:
        pass
    except OSError as exc:
        import errno

        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise


class _StopAfter(Exception):
    """Raised by a run's ``stop_after`` stage once it is done (caught by :func:`run`)."""


def _rank0(fabric) -> bool:
    return fabric is None or fabric.is_global_zero


def _agree(fabric, value):
    """Process 0's ``value`` on every DDP process (file checks that must not race)."""
    return value if fabric is None or fabric.world_size == 1 else fabric.broadcast(value, src=0)


def _barrier(fabric) -> None:
    if fabric is not None and fabric.world_size > 1:
        fabric.barrier()


def _split_name_of(run_dir: Path) -> str:
    return Path(run_dir).name


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"
