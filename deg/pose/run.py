"""One pose-method run = (dataset, method, split, profile) -> ``results/<profile>/<dataset>/<method>/split<k>/``.

Methods (:data:`METHODS`):

* ``pose_mlp``: the paper's keypoint MLP (:mod:`deg.pose.mlp`);
* ``pose_unsup``: UMAP + HDBSCAN + fast classifier, each behaviour mapped to its most
  co-occurring cluster (:mod:`deg.pose.unsupervised`);
* ``contrastive_pose``, ``rf_features``, ``rf_coords``: random forests on the ContrastivePose
  representation, on hand-engineered features and on coordinates (:mod:`deg.pose.contrastive`).

Every method uses the DEG runs' random splits by video (:func:`deg.data.splits.make_splits`, the
profile's ``n_splits``, the same seed), and the supervised ones DEG's calibration: per-behaviour
thresholds maximising F1 on the validation units, bouts shorter than the 1st percentile of the
training bouts removed, background = no other behaviour (:mod:`deg.postprocess`). The unsupervised
assignment is scored as the paper did: no thresholds, no postprocessing.

A run folder holds ``split.json`` (the units of each subset, the segments, and under ``left_out``
the videos no pose method can use and why: :attr:`deg.pose.data.PoseSet.left_out`),
``predictions/<unit>.npz`` (``probs``, ``preds`` of the validation and test units), ``thresholds.json``, the tables of :mod:`deg.pose.tables`, per-method
extras for the figures (``feature_values.csv``; ``embedding.csv``, ``cooccurrence.csv``,
``clusters.json``) and ``run.json``; ``model/`` the model state and ``model/DONE``, written last
with the run's configuration key (hyperparameters, skeleton, split, a hash of the pose and label
arrays, the code of deg/pose and the pieces it reuses). A run whose DONE carries the current key is
reused; a stale one is recomputed; an interrupted MLP resumes from ``model/mlp/last.pt``.

Command line (a step of the workflow): ``python -m deg.pose.run --profile P DATASET split0 split1 ...``
runs every method on those splits in one process: the pose is read once, and umap-learn's numba
kernels, which compile on first use in every process (30-100 s on 2 cores, more than a demo
split's UMAP itself), compile once per dataset rather than once per split.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deg import cli, io, paths, presets, provenance

METHODS = ("pose_mlp", "pose_unsup", "contrastive_pose", "rf_features", "rf_coords")
METHOD_LABELS = {"pose_mlp": "keypoint MLP", "pose_unsup": "unsupervised + assignment",
                 "contrastive_pose": "ContrastivePose + RF", "rf_features": "RF, hand features",
                 "rf_coords": "RF, coordinates"}
# HPARAMS entries the pose methods read (DEG's values, "training tricks from DeepEthogram")
SHARED_HPARAMS = ("keypoint_min_likelihood", "focal_gamma", "pos_weight_beta", "label_smoothing", "lr_factor",
                  "lr_min", "bout_percentile", "split_fractions")
PROFILE_ONLY = ("mlp_max_steps", "mlp_val_every", "mlp_patience_steps", "cp_steps", "unsup_embed_frames",
                "rf_max_train_frames", "umap_n_epochs")
CODE = ["pose/features.py", "pose/data.py", "pose/mlp.py", "pose/unsupervised.py", "pose/contrastive.py",
        "pose/tables.py", "pose/run.py", "losses.py", "postprocess.py", "train/loop.py", "metrics.py",
        "bouts.py", "data/splits.py", "data/keypoints.py"]


def pose_hparams(profile: str, dataset: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Every number a pose run reads: HPARAMS' shared entries, POSE_HPARAMS, the profile's sizes, overrides;
    ``dataset`` sets the split count where the profile takes it from the registry (``Profile.splits_for``)."""
    prof = presets.get_profile(profile)
    hp = {k: prof.hparams.get(k, presets.HPARAMS[k]) for k in SHARED_HPARAMS}
    hp.update(presets.POSE_HPARAMS)
    sizes = presets.POSE_PROFILES.get(profile, presets.POSE_PROFILES["demo"])
    hp.update(sizes)
    unknown = sorted(set(overrides) - set(hp) - set(PROFILE_ONLY))
    if unknown:
        raise TypeError(f"unknown pose override(s) {unknown}; known: {sorted(set(hp) | set(PROFILE_ONLY))}")
    hp.update(overrides)
    hp["shuffle_repeats"] = prof.shuffle_repeats
    hp["n_splits"] = prof.splits_for(dataset) if dataset else (prof.n_splits or presets.DEFAULT_SPLITS)
    return hp


def _code_hash() -> str:
    root = Path(__file__).resolve().parent.parent
    return provenance.config_key({rel: provenance.config_key((root / rel).read_bytes().decode("utf-8", "replace"))
                                  for rel in CODE if (root / rel).exists()})


def data_hash(pose_set) -> str:
    """sha256 (16 hex) of every unit's pose and labels arrays (and the other annotators')."""
    h = hashlib.sha256()
    for u in pose_set.units:
        h.update(u.encode())
        h.update(np.ascontiguousarray(pose_set.pose[u]).tobytes())
        h.update(np.ascontiguousarray(pose_set.labels[u]).tobytes())
        for a in sorted(pose_set.humans):
            if u in pose_set.humans[a]:
                h.update(a.encode())
                h.update(np.ascontiguousarray(pose_set.humans[a][u]).tobytes())
    return h.hexdigest()[:16]


def split_name(split: int | str) -> str:
    return f"split{int(split)}" if not str(split).startswith("split") else str(split)


class Prepared:
    """The dataset's pose in every form the methods read (computed once per process)."""

    def __init__(self, pose_set, hp: dict[str, Any]):
        from deg.pose.features import frame_features, normalised_points

        self.pose_set, self.hp = pose_set, hp
        sk = pose_set.skeleton
        self.points = {u: normalised_points(pose_set.pose[u], pose_set.points, sk, hp["keypoint_min_likelihood"],
                                            source=f"{pose_set.dataset_id}/{u}", arena_px=pose_set.arena_px)
                       for u in pose_set.units}
        self.features = {u: frame_features(self.points[u], sk) for u in pose_set.units}
        self.feature_names = sk.feature_names(len(pose_set.animals))
        self.data_key = data_hash(pose_set)

    def splits(self, seed: int):
        from deg.data.splits import make_splits

        ps = self.pose_set
        return make_splits(ps.units, ps.labels, n_splits=int(self.hp["n_splits"]), seed=seed,
                           fractions=self.hp["split_fractions"], behaviours=ps.behaviours)


# --------------------------------------------------------------------------------------
# Methods: each returns (probs or None, preds or None, scores or None, extras)
# --------------------------------------------------------------------------------------
def _supervised_forest(x: dict[str, np.ndarray], prep: Prepared, split, seed: int) -> dict[str, np.ndarray]:
    from deg.pose.contrastive import fit_forest, forest_proba

    ps = prep.pose_set
    xt = np.concatenate([x[u] for u in split.train])
    yt = np.concatenate([ps.labels[u] for u in split.train])
    forest = fit_forest(xt, yt, prep.hp, seed, prep.hp.get("rf_max_train_frames"))
    return {u: forest_proba(forest, x[u], len(ps.behaviours)) for u in split.val + split.test}


def method_pose_mlp(prep: Prepared, split, model_dir: Path, key: str, seed: int, progress: bool):
    from deg.pose import mlp

    ps, hp = prep.pose_set, prep.hp
    model, norm, result = mlp.train(model_dir / "mlp", prep.features, ps.labels, split.train, split.val, hp, key,
                                    seed, progress)
    probs = {u: mlp.predict(model, prep.features[u], norm, int(hp["pose_window_half"])) for u in split.val + split.test}
    extras = {"fit": {"steps": result.steps, "best_metric": result.best_metric, "best_step": result.best_step,
                      "stopped": result.stopped, "resumed_from": result.resumed_from}}
    return probs, extras


def method_rf_features(prep: Prepared, split, model_dir, key, seed, progress):
    from deg.pose.features import velocities

    x = {u: np.concatenate([prep.features[u], velocities(prep.points[u])], axis=1) for u in prep.pose_set.units}
    return _supervised_forest(x, prep, split, seed), {"n_features": int(next(iter(x.values())).shape[1])}


def method_rf_coords(prep: Prepared, split, model_dir, key, seed, progress):
    from deg.pose.features import velocities

    x = {u: np.nan_to_num(np.concatenate([prep.points[u].reshape(len(prep.points[u]), -1),
                                          velocities(prep.points[u])], axis=1))
         for u in prep.pose_set.units}
    return _supervised_forest(x, prep, split, seed), {"n_features": int(next(iter(x.values())).shape[1])}


def method_contrastive_pose(prep: Prepared, split, model_dir, key, seed, progress):
    import torch

    from deg.pose.contrastive import represent, train_encoder

    pts = {u: np.nan_to_num(prep.points[u], nan=0.5) for u in prep.pose_set.units}
    # no labels; the test units stay unseen even without labels
    encoder, losses = train_encoder(pts, split.train + split.val, prep.hp, seed, progress)
    torch.save(encoder.state_dict(), model_dir / "encoder.pt")
    x = {u: represent(encoder, pts[u], int(prep.hp["cp_window"])) for u in prep.pose_set.units}
    io.write_csv(model_dir / "contrastive_loss.csv", pd.DataFrame({"step": np.arange(1, len(losses) + 1),
                                                                   "loss": losses}))
    return _supervised_forest(x, prep, split, seed), {"first_loss": losses[0] if losses else None,
                                                       "last_loss": losses[-1] if losses else None}


def method_pose_unsup(prep: Prepared, split, model_dir, key, seed, progress, run_dir: Path):
    from deg.pose import unsupervised as us

    ps, hp = prep.pose_set, prep.hp
    feats = {u: us.bsoid_features(prep.points[u], ps.fps, hp) for u in ps.units}
    fit_units = split.train + split.val
    rows = [(u, t) for u in fit_units for t in us.bin_frames(len(feats[u]), ps.fps, hp)]
    rng = np.random.default_rng(seed)
    n_embed = int(min(hp["unsup_embed_frames"], len(rows)))
    pick = np.sort(rng.choice(len(rows), size=n_embed, replace=False))
    samples = np.stack([feats[rows[i][0]][rows[i][1]] for i in pick])
    clustering = us.fit_clusters(samples, hp, seed)
    assigned = {u: clustering.assign(feats[u]) for u in ps.units}
    train_clusters = np.concatenate([assigned[u][0] for u in split.train])
    table = us.cooccurrence(train_clusters, np.concatenate([ps.labels[u] for u in split.train]))
    if table.shape[0] < clustering.n_clusters:
        table = np.vstack([table, np.zeros((clustering.n_clusters - table.shape[0], table.shape[1]), np.int64)])
    mapping = us.assign_behaviours(table)
    preds, scores = {}, {}
    for u in split.val + split.test:
        preds[u], scores[u] = us.predict_behaviours(assigned[u][0], assigned[u][1], mapping)
    # figure extras: embedding (a sample), the lookup table with the chosen assignment
    labels_at = np.stack([ps.labels[rows[i][0]][rows[i][1]] for i in pick])
    dominant = np.where((labels_at[:, 1:] == 1).any(1), labels_at[:, 1:].argmax(1) + 1, 0)
    show = np.sort(rng.choice(len(pick), size=min(len(pick), 3000), replace=False))
    emb = clustering.embedding
    io.write_csv(run_dir / "embedding.csv", pd.DataFrame({
        **{f"umap{d + 1}": emb[show, d] for d in range(emb.shape[1])}, "cluster": clustering.clusters[show],
        "behaviour": [ps.behaviours[k] for k in dominant[show]], "unit": [rows[pick[i]][0] for i in show]}))
    co = [{"cluster": c, "behaviour": b, "frames": int(table[c, k]), "assigned": bool(mapping[k] == c and k > 0)}
          for c in range(table.shape[0]) for k, b in enumerate(ps.behaviours)]
    io.write_csv(run_dir / "cooccurrence.csv", pd.DataFrame(co))
    info = {"n_clusters": clustering.n_clusters, "classifier_accuracy": clustering.classifier_accuracy,
            "noise_fraction": float((clustering.clusters < 0).mean()), "n_embedded": n_embed,
            "mapping": {b: int(mapping[k]) for k, b in enumerate(ps.behaviours) if k > 0}}
    io.write_json(run_dir / "clusters.json", info)
    return preds, scores, info


def _feature_values(prep: Prepared, split, run_dir: Path, seed: int) -> None:
    """A sample of training frames' distance / area / angle features per behaviour (Figure 5-S1C)."""
    ps, names = prep.pose_set, prep.feature_names
    wanted = [i for i, n in enumerate(names) if "dist_" in n or n.endswith("area")][:6]
    x = np.concatenate([prep.features[u] for u in split.train])
    y = np.concatenate([ps.labels[u] for u in split.train])
    rng = np.random.default_rng(seed)
    rows = []
    for k, b in enumerate(ps.behaviours):
        idx = np.flatnonzero(y[:, k] == 1)
        idx = rng.choice(idx, size=min(len(idx), 400), replace=False) if len(idx) else idx
        for i in wanted:
            rows.append(pd.DataFrame({"behaviour": b, "feature": names[i], "value": x[idx, i]}))
    if rows:
        io.write_csv(run_dir / "feature_values.csv", pd.concat(rows, ignore_index=True))


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------
def run_method(prep: Prepared, method: str, split_k: int, split, profile: str, seed: int = 0,
               progress: bool = True, out_root: Path | None = None) -> Path:
    """Run (or reuse) one method on one split; returns the run folder.

    ``out_root`` replaces ``deg.paths.results_dir()`` (the method notebooks write to a scratch
    folder so that trying parameters never touches the workflow's cached runs).
    """
    from deg.postprocess import best_thresholds, min_bout_lengths, postprocess
    from deg.pose.tables import evaluate_predictions
    from deg.train.store import StageDir, run_lock

    if method not in METHODS:
        raise ValueError(f"unknown pose method {method!r}; known: {', '.join(METHODS)}")
    ps, hp = prep.pose_set, prep.hp
    name = split_name(split_k)
    run_dir = (Path(out_root) if out_root else paths.results_dir()) / profile / ps.dataset_id / method / name
    config = {"method": method, "profile": profile, "seed": seed, "hparams": hp, "skeleton": ps.skeleton.to_dict(),
              "split": {"train": split.train, "val": split.val, "test": split.test}, "data": prep.data_key,
              "code": _code_hash()}
    key = provenance.config_key(config)
    t0, started = time.perf_counter(), provenance.now_iso()
    with run_lock(run_dir):
        top = ("split.json", "thresholds.json", "run.json", "metrics.csv", "bouts.csv", "transitions.csv",
               "train_frames.csv", "agreement.csv", "feature_values.csv", "embedding.csv", "cooccurrence.csv",
               "clusters.json")
        stage = StageDir(run_dir / "model", key, config, extra_outputs=tuple(run_dir / f for f in top))
        if stage.done() is not None and (run_dir / "metrics.csv").exists():
            if progress:
                print(f"deg pose {ps.dataset_id}/{method}/{name} [{profile}]: cached -> {run_dir}")
            return run_dir
        stage.prepare()
        # predictions of another configuration (e.g. another split's units) must not linger
        shutil.rmtree(run_dir / "predictions", ignore_errors=True)
        io.write_json(run_dir / "split.json", {"train": split.train, "val": split.val, "test": split.test,
                                               "segments": {u: list(s) for u, s in ps.segments.items()},
                                               "left_out": ps.left_out})
        thresholds = min_len = None
        if method == "pose_unsup":
            preds, scores, extras = method_pose_unsup(prep, split, stage.path, key, seed, progress, run_dir)
        else:
            fn = globals()[f"method_{method}"]
            probs, extras = fn(prep, split, stage.path, key, seed, progress)
            thresholds = best_thresholds(np.concatenate([probs[u] for u in split.val]),
                                         np.concatenate([ps.labels[u] for u in split.val]))
            min_len = min_bout_lengths([ps.labels[u] for u in split.train], hp["bout_percentile"])
            preds = {u: postprocess(probs[u], thresholds, min_len) for u in probs}
            scores = probs
            io.write_json(run_dir / "thresholds.json", {"behaviours": ps.behaviours,
                                                        "thresholds": [float(t) for t in thresholds],
                                                        "min_bout_frames": [int(m) for m in min_len]})
        for u in split.val + split.test:
            io.write_npz(run_dir / "predictions" / f"{u}.npz", probs=scores[u].astype(np.float32),
                         preds=preds[u].astype(np.uint8))
        if method == "pose_mlp":
            _feature_values(prep, split, run_dir, seed)
        evaluate_predictions(run_dir, ps, split, {u: preds[u] for u in split.test}, {u: scores[u] for u in split.test},
                             profile, method, name, int(hp["shuffle_repeats"]), seed)
        wall = round(time.perf_counter() - t0, 3)
        provenance.write_run_json(run_dir / "run.json", {
            "dataset": ps.dataset_id, "method": method, "preset": method, "split": name, "profile": profile,
            "seed": seed, "hparams": hp, "skeleton": ps.skeleton.to_dict(), "data": ps.summary(),
            "data_key": prep.data_key, "key": key, "extras": extras, "device": provenance.device_info("cpu"),
            "started_at": started, "wall_s": wall, "complete": True, "synthetic": ps.synthetic})
        stage.finish(wall_s=wall)
    if progress:
        print(f"deg pose {ps.dataset_id}/{method}/{name} [{profile}]: {wall:.1f} s -> {run_dir}")
    return run_dir


def run_splits(dataset: str, splits, profile: str = "demo", methods=METHODS, seed: int = 0,
               skeleton: str | None = None, progress: bool = True, out_root: str | Path | None = None,
               **overrides: Any) -> dict[str, dict[str, Path]]:
    """Run ``methods`` on each split of ``splits`` (``split<k>`` or k) of ``dataset``, reading
    the pose once: {``split<k>``: {method: run folder}}. Overrides replace pose hyperparameters
    (:func:`pose_hparams`); ``skeleton`` names an entry of :data:`deg.pose.features.SKELETONS`."""
    from deg.data.datasets import open_dataset
    from deg.pose.data import load_pose_set
    from deg.pose.features import get_skeleton

    hp = pose_hparams(profile, dataset, **overrides)
    ds = open_dataset(dataset)
    pose_set = load_pose_set(ds, get_skeleton(skeleton) if skeleton else None, int(hp["pose_min_units"]))
    prep = Prepared(pose_set, hp)
    all_splits = prep.splits(seed)
    out = {}
    for split in splits:
        name = split_name(split)
        k = int(name[len("split"):])
        if not 0 <= k < len(all_splits):
            raise cli.UsageError(f"{dataset} has splits split0-split{len(all_splits) - 1} under profile "
                                 f"{profile!r}, not {name}")
        out[name] = {m: run_method(prep, m, k, all_splits[k], profile, seed, progress, out_root) for m in methods}
    return out


def run(dataset: str, split: int | str = 0, profile: str = "demo", methods=METHODS, seed: int = 0,
        skeleton: str | None = None, progress: bool = True, out_root: str | Path | None = None,
        **overrides: Any) -> dict[str, Path]:
    """Run ``methods`` on split ``split`` of ``dataset``: {method: run folder} (:func:`run_splits`)."""
    runs = run_splits(dataset, [split], profile, methods, seed, skeleton, progress, out_root, **overrides)
    return runs[split_name(split)]


@cli.entry_point("deg.pose.run")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the pose-based methods on splits of one dataset (DATASET SPLIT...) or of several "
                    "(--each DATASET=SPLIT,SPLIT ...) in one process")
    parser.add_argument("dataset", nargs="?")
    parser.add_argument("splits", nargs="*", help="split<k> or k, one or more")
    # Several datasets in one process: umap-learn's numba kernels compile in every new process
    # (18 s alone, ~50 s beside a training job, on one AVX2 core), once here for all of them.
    parser.add_argument("--each", action="append", default=[], metavar="DATASET=SPLITS",
                        help="a dataset and its comma-separated splits, e.g. rat_social=split0,split1; repeatable")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    args = parser.parse_args(argv)
    if args.each and args.dataset:
        parser.error("give DATASET SPLIT... or --each DATASET=SPLITS, not both")
    if not args.each and not (args.dataset and args.splits):
        parser.error("give DATASET SPLIT... or --each DATASET=SPLITS")
    jobs = [(args.dataset, args.splits)] if args.dataset else []
    for item in args.each:
        dataset, _, splits = item.partition("=")
        if not dataset or not splits:
            parser.error(f"--each {item!r}: expected DATASET=SPLIT[,SPLIT...], e.g. rat_social=split0,split1")
        jobs.append((dataset, splits.split(",")))
    for dataset, _ in jobs:
        cli.check_dataset(dataset)
    cli.check_profile(args.profile)
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown pose method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    for dataset, splits in jobs:
        run_splits(dataset, splits, args.profile, tuple(args.methods))
    return 0


if __name__ == "__main__":
    sys.exit(main())
