"""Whole runs of the pipeline on synthetic_tiny (tiny profile): outputs, caching, kill -9, determinism.

The real models, losses, video decoding and postprocessing run; only the sizes are small.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deg import paths, pipeline
from deg.presets import HPARAMS, get_profile

pytestmark = pytest.mark.slow

DATASET, PRESET = "synthetic_tiny", "DEG_f"
STAGE_DIRS = ("flow", "feature", "sequence")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Module-wide DEG_DATA / DEG_RESULTS / DEG_FIGURES with synthetic_tiny generated once."""
    from deg.data import synthetic

    root = tmp_path_factory.mktemp("pipeline")
    mp = pytest.MonkeyPatch()
    for var, name in (("DEG_DATA", "data"), ("DEG_RESULTS", "results"), ("DEG_FIGURES", "figures")):
        (root / name).mkdir()
        mp.setenv(var, str(root / name))
    # One thread: the tensors of the tiny profile are too small to gain from two, and on a busy
    # machine two OpenMP threads wait on each other at every op (measured: 2-3x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    mp.setenv("OMP_NUM_THREADS", "1")
    synthetic.generate(DATASET, progress=False)
    yield root
    torch.set_num_threads(threads)
    mp.undo()


@pytest.fixture(scope="module")
def tiny_run(workspace):
    t0 = time.perf_counter()
    run_dir = pipeline.run(DATASET, PRESET, 0, profile="tiny", progress=False)
    return run_dir, time.perf_counter() - t0


def _run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _val_metrics(run_dir: Path) -> dict[str, list[float]]:
    return {s: pd.read_csv(run_dir / s / "log.csv")["val_metric"].tolist() for s in STAGE_DIRS}


def test_whole_tiny_run_writes_every_output(tiny_run, workspace):
    from deg.data.datasets import open_dataset

    run_dir, wall = tiny_run
    assert run_dir == paths.results_dir() / "tiny" / DATASET / PRESET / "split0"
    assert wall < 180, f"a tiny run took {wall:.0f} s"
    ds = open_dataset(DATASET)
    K = len(ds.behaviours)

    split = json.loads((run_dir / "split.json").read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(ds.videos)
    assert split["train"] and split["val"] and split["test"]

    for stage in STAGE_DIRS:
        for name in ("best.pt", "last.pt", "log.csv", "config.json", "DONE"):
            assert (run_dir / stage / name).is_file(), f"{stage}/{name}"
        log = pd.read_csv(run_dir / stage / "log.csv")
        assert list(log.columns[:4]) == ["step", "lr", "train_loss", "val_metric"] and len(log) >= 1
        assert np.isfinite(log["train_loss"]).all()

    thresholds = json.loads((run_dir / "thresholds.json").read_text())
    for key in ("sequence", "feature_extractor", "flow_stream", "spatial_stream", "min_bout"):
        assert len(thresholds[key]) == K
    assert all(m >= 1 for m in thresholds["min_bout"])

    for video in ds.videos:
        labels = ds.labels(video)
        T = len(labels)
        with np.load(run_dir / "features" / f"{video}.npz") as z:
            assert z["spatial"].shape == (T, 512) and z["flow"].shape == (T, 512)
            assert z["fe_logits"].shape == (T, K) and np.isfinite(z["spatial"]).all()
            # the fused logits are the mean of the two streams' own (late average fusion)
            assert z["flow_logits"].shape == z["spatial_logits"].shape == (T, K)
            np.testing.assert_allclose(z["fe_logits"], (z["flow_logits"] + z["spatial_logits"]) / 2, atol=1e-5)
        with np.load(run_dir / "predictions" / f"{video}.npz") as z:
            probs, preds = z["probs"], z["preds"]
            assert probs.shape == labels.shape and probs.dtype == np.float32
            assert ((probs >= 0) & (probs <= 1)).all()
            assert preds.shape == labels.shape and preds.dtype == np.uint8
            assert set(np.unique(preds)) <= {0, 1}
            # background = no other behaviour
            assert (preds[:, 0] == (preds[:, 1:].sum(axis=1) == 0)).all()
            assert z["fe_probs"].shape == labels.shape and z["fe_preds"].shape == labels.shape
            for stream in ("flow", "spatial"):
                assert z[f"{stream}_probs"].shape == labels.shape and set(np.unique(z[f"{stream}_preds"])) <= {0, 1}

    with np.load(run_dir / "flow_example.npz") as z:
        H, W = get_profile("tiny").image_size
        assert z["frames"].shape == (11, H, W, 3) and z["frames"].dtype == np.uint8
        assert z["flows"].shape == (10, 2, H // 2, W // 2) and z["flows"].dtype == np.float32
        assert np.isfinite(z["flows"]).all() and str(z["video"]) in split["val"]

    record = _run_json(run_dir)
    assert record["complete"] is True and record["dataset"] == DATASET and record["split"] == "split0"
    assert set(record["stages"]) == set(pipeline.STAGES) == set(record["stage_keys"])
    assert all(r["cached"] is False and r["wall_s"] >= 0 for r in record["stages"].values())
    assert record["stages"]["flow"]["steps"] >= 1 and record["stages"]["sequence"]["steps"] >= 1
    assert record["versions"]["torch"] and record["device"]["device"] == "cpu" and record["processes"] == 1
    assert len(set(record["seeds"].values())) == len(record["seeds"])   # split and model seeds differ
    assert record["profile"]["name"] == "tiny" and record["hparams"]["lr"] == HPARAMS["lr"]
    assert "commit" in record["git"]
    assert len(record["normalisation"]["mean"]) == 3


def test_second_run_is_cached_and_changes_rerun_only_what_depends_on_them(tiny_run):
    run_dir, first_wall = tiny_run
    before = _val_metrics(run_dir)
    mtime = (run_dir / "sequence" / "best.pt").stat().st_mtime_ns

    t0 = time.perf_counter()
    pipeline.run(DATASET, PRESET, 0, profile="tiny", progress=False)
    assert time.perf_counter() - t0 < min(10.0, first_wall / 2)
    record = _run_json(run_dir)   # a no-op re-run keeps the provenance of the computation, adds checked_at
    assert not any(r["cached"] for r in record["stages"].values()) and "checked_at" in record
    assert (run_dir / "sequence" / "best.pt").stat().st_mtime_ns == mtime

    # Which stage keys a change touches (nothing is trained to find out).
    base = pipeline.stage_keys(DATASET, PRESET, 0, profile="tiny")
    assert base == _run_json(run_dir)["stage_keys"]

    def changed(**override):
        keys = pipeline.stage_keys(DATASET, PRESET, 0, profile="tiny", **override)
        return {s for s in pipeline.STAGES if keys[s] != base[s]}

    alpha = HPARAMS["sequence_l2_alpha"]
    assert changed(sequence_l2_alpha=2 * alpha) == {"sequence", "predictions"}
    assert changed(tgm_n_filters=HPARAMS["tgm_n_filters"] + 1) == {"sequence", "predictions"}
    assert changed(bout_percentile=5.0) == {"predictions"}
    assert changed(fe_dropout=0.5) == {"feature", "features", "sequence", "predictions"}
    assert changed(flow_ssim_weight=0.5) == set(pipeline.STAGES)
    assert changed(sequence_steps=7) == {"sequence", "predictions"}
    assert changed(shuffle_repeats=3) == set()                 # evaluation only
    assert pipeline.stage_keys(DATASET, PRESET, 0, profile="tiny", seed=1) != base

    # A sequence hyperparameter: the run goes to the profile's override folder, copies the stages
    # whose keys are unchanged from the profile's own run, and trains only the sequence model.
    over_dir = pipeline.run(DATASET, PRESET, 0, profile="tiny", progress=False, sequence_l2_alpha=2 * alpha)
    tag = get_profile("tiny", sequence_l2_alpha=2 * alpha).results_name
    assert over_dir == paths.results_dir() / tag / DATASET / PRESET / "split0" and tag.startswith("tiny+")
    record = _run_json(over_dir)
    assert {s: r["cached"] for s, r in record["stages"].items()} == {
        "flow": True, "feature": True, "features": True, "sequence": False, "predictions": False}
    assert record["stages"]["feature"]["copied_from"] == str(run_dir / "feature")
    assert record["overrides"] == {"sequence_l2_alpha": 2 * alpha} and record["results_name"] == tag
    assert record["hparams"]["sequence_l2_alpha"] == 2 * alpha
    assert json.loads((paths.results_dir() / tag / "profile.json").read_text())["overrides"] == record["overrides"]
    assert HPARAMS["sequence_l2_alpha"] == alpha                # nothing global changed
    assert (over_dir / "thresholds.json").exists()
    assert _val_metrics(over_dir)["feature"] == before["feature"]

    # The profile's own run was not touched.
    assert _val_metrics(run_dir) == before
    assert (run_dir / "sequence" / "best.pt").stat().st_mtime_ns == mtime
    kept = _run_json(run_dir)
    pipeline.run(DATASET, PRESET, 0, profile="tiny", progress=False)
    again = _run_json(run_dir)       # a no-op re-run computes nothing and keeps the provenance
    assert "checked_at" in again
    assert {k: v for k, v in again.items() if k != "checked_at"} == {k: v for k, v in kept.items() if k != "checked_at"}
    assert (run_dir / "sequence" / "best.pt").stat().st_mtime_ns == mtime


@pytest.fixture(scope="module")
def killed_run(workspace):
    """The tiny run again, in its own results folder, killed with SIGKILL in the middle of the
    feature stage (after its first checkpoint), then run again by the same call in-process."""
    results = workspace / "results_kill"
    env = dict(os.environ, DEG_RESULTS=str(results))
    code = f"from deg import pipeline; pipeline.run({DATASET!r}, {PRESET!r}, 0, profile='tiny', progress=False)"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    run_dir = results / "tiny" / DATASET / PRESET / "split0"
    log = run_dir / "feature" / "log.csv"
    deadline = time.monotonic() + 170
    try:
        while time.monotonic() < deadline and proc.poll() is None and not log.exists():
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stdout.read().decode()}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    state = {"feature_done": (run_dir / "feature" / "DONE").exists(), "flow_done": (run_dir / "flow" / "DONE").exists(),
             "predictions": (run_dir / "predictions").exists()}
    mp = pytest.MonkeyPatch()
    mp.setenv("DEG_RESULTS", str(results))
    try:
        pipeline.run(DATASET, PRESET, 0, profile="tiny", progress=False)
    finally:
        mp.undo()
    return run_dir, state


def test_kill_9_mid_stage_then_resume(killed_run):
    run_dir, at_kill = killed_run
    assert at_kill == {"feature_done": False, "flow_done": True, "predictions": False}
    record = _run_json(run_dir)
    assert record["complete"] is True
    assert record["stages"]["flow"]["cached"] is True          # finished before the kill: reused
    feature = record["stages"]["feature"]
    assert feature["cached"] is False and feature["resumed_from"] > 0
    assert feature["steps"] == get_profile("tiny").feature_steps
    val_every = get_profile("tiny").val_every
    steps = pd.read_csv(run_dir / "feature" / "log.csv")["step"].tolist()
    assert steps == list(range(val_every, feature["steps"] + 1, val_every))   # no lost or repeated rows
    assert not list(run_dir.rglob(".tmp-*"))
    assert len(list((run_dir / "predictions").glob("*.npz"))) == 5


def test_same_seed_same_validation_metrics(tiny_run, killed_run):
    """Two runs with the same seed on the CPU -- one of them killed and resumed -- agree exactly."""
    run_dir, _ = tiny_run
    again, _ = killed_run
    assert again != run_dir
    assert _val_metrics(again) == _val_metrics(run_dir)
    for video in json.loads((run_dir / "split.json").read_text())["test"]:
        with np.load(run_dir / "predictions" / f"{video}.npz") as a, np.load(again / "predictions" / f"{video}.npz") as b:
            np.testing.assert_array_equal(a["probs"], b["probs"])
            np.testing.assert_array_equal(a["preds"], b["preds"])


def test_run_refuses_a_busy_run_folder(tiny_run):
    run_dir, _ = tiny_run
    with open(run_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(pipeline.RunBusyError, match="another process"):
            pipeline.run(DATASET, PRESET, 0, profile="tiny", progress=False)


def test_subsample_runs_share_their_parent_splits_flow_generator(workspace):
    """Figure 6 (paper: "we trained the flow generator only once and kept it fixed"): the flow
    stage of every sub<n>_d<draw> run is split0's -- same key, same folder -- while everything
    downstream is the subsample's own."""
    split0 = pipeline.stage_keys(DATASET, PRESET, 0, profile="tiny")
    for sub in ("sub1_d0", "sub2_d0"):
        keys = pipeline.stage_keys(DATASET, PRESET, sub, profile="tiny")
        assert keys["flow"] == split0["flow"] and keys["feature"] != split0["feature"]
    assert pipeline.flow_parent("sub2_d0") == "split0" and pipeline.flow_parent("split3") == "split3"


def test_split_names(workspace):
    split = pipeline.resolve_split(DATASET, 0, profile="tiny")
    assert split.train and split.val and split.test
    sub = pipeline.resolve_split(DATASET, "sub2_d0", profile="tiny")
    assert len(sub.train) == 2 and sub.test == []
    with pytest.raises(ValueError, match="sub1_d0"):
        pipeline.resolve_split(DATASET, "sub9_d0", profile="tiny")
    with pytest.raises(ValueError, match="1 split"):
        pipeline.resolve_split(DATASET, 3, profile="tiny")
    with pytest.raises(ValueError, match="split must be"):
        pipeline.split_name("fold1")
    with pytest.raises(TypeError, match="unknown override"):
        pipeline.run(DATASET, PRESET, 0, profile="tiny", not_a_setting=1)


def test_profile_for_a_preset_then_user_overrides():
    demo = get_profile("demo")
    for preset, changes in demo.preset_overrides.items():
        prof, hp = pipeline.resolve_profile("demo", {}, preset)
        assert all(getattr(prof, k) == v for k, v in changes.items()) and hp == {**HPARAMS, **demo.hparams}
    prof, hp = pipeline.resolve_profile("demo", {"image_size": (24, 24), "tgm_n_filters": 4, "lr": 0.5,
                                                 "feature_steps": 7}, "DEG_s")
    # the caller has the last word over the profile (fields, per-preset fields, HPARAMS replacements)
    assert prof.image_size == (24, 24) and prof.feature_steps == 7
    assert prof.feature_batch == demo.preset_overrides["DEG_s"]["feature_batch"]
    assert hp == {**HPARAMS, **demo.hparams, "tgm_n_filters": 4, "lr": 0.5}
    with pytest.raises(TypeError, match="unknown HPARAMS"):
        pipeline.resolve_profile("demo", {"hparams": {"not_a_hparam": 1}})
    assert pipeline.resolve_profile("demo", {}, "DEG_f")[0].image_size == demo.image_size


def test_tiny_hyperparameter_search_on_the_cached_run(tiny_run):
    """`make tune`'s engine on the CPU: 2 sequence-model trials (Optuna random search + ASHA) over
    the paper's search space, the upstream stages reused as hard links, best.json feeding a run."""
    from deg import presets, tune

    run_dir, _ = tiny_run
    folder = tune.tune(DATASET, PRESET, "sequence", trials=2, profile="tiny", progress=False)
    space = presets.SEARCH_SPACES["sequence"]
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 2 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    complete = trials[trials["state"] == "COMPLETE"]
    assert len(complete) >= 1 and complete["val_f1"].between(0, 1).all()
    assert trials.loc[trials["state"] == "PRUNED", "val_f1"].isna().all()
    for name, spec in space.items():
        if spec[0] in ("log", "float", "int"):
            assert trials[name].between(spec[1], spec[2]).all(), name
    val_every = get_profile("tiny").val_every
    curves = pd.read_csv(folder / "curves.csv")
    assert (curves["step"] % val_every == 0).all() and set(curves["trial"]) == set(trials["trial"])

    best = json.loads((folder / "best.json").read_text())
    assert best["val_f1"] == complete["val_f1"].max() and set(best["overrides"]) == set(space)
    trial_dir = folder / f"trial{best['trial']:04d}"
    # nothing upstream was recomputed: the trial's feature folder is the ordinary run's, linked
    assert (trial_dir / "features").is_dir()
    for name in ("flow/best.pt", "feature/DONE", "features/DONE"):
        assert (trial_dir / name).stat().st_ino == (run_dir / name).stat().st_ino, name
    assert (trial_dir / "sequence" / "log.csv").exists() and not (trial_dir / "sequence" / "last.pt").exists()

    # the best configuration feeds a run: it changes the sequence model and what follows only
    overrides = tune.read_overrides(folder / "best.json")
    base = pipeline.stage_keys(DATASET, PRESET, 0, profile="tiny")
    tuned = pipeline.stage_keys(DATASET, PRESET, 0, profile="tiny", **overrides)
    assert {s for s in pipeline.STAGES if tuned[s] != base[s]} == {"sequence", "predictions"}
