"""Pose runs end to end on synthetic_tiny: DEG's splits, tidy tables, caching by key; the plan."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from deg.data import synthetic
from deg.data.datasets import open_dataset
from deg.evaluate import METRIC_COLUMNS
from deg.pose import plan as P
from deg.pose import run as R
from deg.pose.data import load_pose_set


@pytest.fixture
def tiny(isolated):
    synthetic.generate("synthetic_tiny", progress=False)
    return open_dataset("synthetic_tiny")


def test_runs_share_deg_splits_write_tidy_tables_and_cache(tiny, isolated):
    from deg.pipeline import resolve_split

    out = R.run("synthetic_tiny", 0, "tiny", methods=("rf_coords", "pose_mlp"), progress=False)
    deg_split = resolve_split("synthetic_tiny", 0, "tiny")
    for method, run_dir in out.items():
        split = json.loads((run_dir / "split.json").read_text())
        assert (split["train"], split["val"], split["test"]) == (deg_split.train, deg_split.val, deg_split.test)
        m = pd.read_csv(run_dir / "metrics.csv")
        assert list(m.columns) == METRIC_COLUMNS and set(m.preset) == {method}
        assert {"model", "shuffle", "human2", "human3"} <= set(m.source)
        assert set(m[m.source == "model"].video) == set(split["test"]) | {"all"}
        with np.load(run_dir / "predictions" / f"{split['test'][0]}.npz") as z:
            assert z["preds"].shape == tiny.labels(split["test"][0]).shape
            # background is the logical not of the other behaviours (DEG's postprocessing)
            np.testing.assert_array_equal(z["preds"][:, 0], z["preds"][:, 1:].sum(1) == 0)
        assert {"bouts.csv", "transitions.csv", "train_frames.csv", "agreement.csv"} <= {p.name for p in run_dir.iterdir()}
    first = (out["rf_coords"] / "model" / "DONE").read_text()
    again = R.run("synthetic_tiny", 0, "tiny", methods=("rf_coords",), progress=False)["rf_coords"]
    assert (again / "model" / "DONE").read_text() == first                  # reused, not recomputed
    changed = R.run("synthetic_tiny", 0, "tiny", methods=("rf_coords",), progress=False, rf_n_estimators=3)
    assert (changed["rf_coords"] / "model" / "DONE").read_text() != first   # another key: recomputed
    with pytest.raises(TypeError, match="unknown pose override"):
        R.pose_hparams("tiny", no_such_thing=1)


def test_command_line_runs_several_splits_and_refuses_bad_names(tiny, isolated, capsys):
    from deg import cli

    assert R.main(["--profile", "tiny", "synthetic_tiny", "split0", "--methods", "rf_coords"]) == cli.EXIT_OK
    assert (isolated / "results" / "tiny" / "synthetic_tiny" / "rf_coords" / "split0" / "metrics.csv").is_file()
    capsys.readouterr()
    for argv, expected in ((["--profile", "tiny", "synthetic_tiyn", "split0"], "did you mean 'synthetic_tiny'"),
                           (["--profile", "tiny", "synthetic_tiny", "split1"], "split0-split0 under profile 'tiny'")):
        assert R.main(argv) == cli.EXIT_USAGE
        err = capsys.readouterr().err.strip()
        assert expected in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    with pytest.raises(SystemExit) as exited:         # argparse's own usage error, exit code 2 as documented
        R.main(["--profile", "tiny", "synthetic_tiny", "0", "--methods", "rf"])
    assert exited.value.code == cli.EXIT_USAGE and "unknown pose method(s) rf" in capsys.readouterr().err
    assert not (isolated / "results" / "tiny" / "synthetic_tiny" / "rf_coords" / "split1").exists()


def test_command_line_runs_several_datasets_in_one_process(tiny, isolated, capsys):
    """--each DATASET=SPLITS (the workflow's one pose job): each dataset's splits run; a second
    call finds every run cached; a malformed or mixed call is a one-line usage error."""
    from deg import cli

    other = isolated / "data" / "synthetic_tiny_b"
    shutil.copytree(isolated / "data" / "synthetic_tiny", other)
    ds = open_dataset("synthetic_tiny")
    ds.id, ds.root = "synthetic_tiny_b", other
    ds.save()
    argv = ["--profile", "tiny", "--each", "synthetic_tiny=split0", "--each", "synthetic_tiny_b=split0",
            "--methods", "rf_coords"]
    assert R.main(argv) == cli.EXIT_OK
    for name in ("synthetic_tiny", "synthetic_tiny_b"):
        m = pd.read_csv(isolated / "results" / "tiny" / name / "rf_coords" / "split0" / "metrics.csv")
        assert set(m.dataset) == {name}
    capsys.readouterr()
    assert R.main(argv) == cli.EXIT_OK
    assert capsys.readouterr().out.count(": cached ->") == 2
    for bad, expected in ((["--each", "synthetic_tiny"], "expected DATASET=SPLIT"),
                          (["synthetic_tiny", "split0", "--each", "synthetic_tiny=split0"], "not both"),
                          ([], "give DATASET SPLIT")):
        with pytest.raises(SystemExit) as exited:
            R.main(["--profile", "tiny", *bad])
        assert exited.value.code == cli.EXIT_USAGE and expected in capsys.readouterr().err


def test_few_videos_are_cut_into_segments(tiny):
    ps = load_pose_set(tiny, min_units=9)
    assert len(ps.units) == 10 and ps.segments and all("@" in u for u in ps.units)
    video, start, stop = ps.segments[ps.units[0]]
    np.testing.assert_array_equal(ps.labels[ps.units[0]], tiny.labels(video)[start:stop])
    assert set(ps.humans) == {"human2", "human3"}


def test_videos_without_pose_or_training_labels_are_recorded_as_left_out(tiny, isolated):
    videos = list(tiny.videos)
    tiny.pose_path(videos[0]).unlink()                               # labels, no pose
    ps = load_pose_set(open_dataset("synthetic_tiny"))
    assert list(ps.left_out) == [videos[0]] and "no pose file" in ps.left_out[videos[0]]
    assert videos[0] not in ps.units
    run_dir = R.run("synthetic_tiny", 0, "tiny", methods=("rf_coords",), progress=False)["rf_coords"]
    assert json.loads((run_dir / "split.json").read_text())["left_out"] == ps.left_out
    assert json.loads((run_dir / "run.json").read_text())["data"]["left_out"] == ps.left_out
    tiny.label_path(videos[1], tiny.train_annotator).unlink()        # pose, no training labels
    ps = load_pose_set(open_dataset("synthetic_tiny"))
    assert set(ps.left_out) == {videos[0], videos[1]} and videos[1] not in ps.units
    assert "no labels of the training annotator" in ps.left_out[videos[1]]


def test_plan_offline_is_synthetic_only_and_says_why(isolated, monkeypatch):
    monkeypatch.setattr(P, "PROBE_TIMEOUT_S", 0.5)
    monkeypatch.setenv("DEG_DATA_MIRROR", str(isolated / "empty_mirror"))
    plan = P.pose_plan("tiny")
    assert plan.synthetic == ["synthetic_tiny"] and plan.real == []
    assert set(plan.skipped) == set(P.REAL_POSE_DATASETS) and all(plan.skipped.values())
    assert plan.run_outputs("R")[:1] == ["R/synthetic_tiny/pose_mlp/split0/metrics.csv"]
    narrowed = P.pose_plan("tiny", "synthetic_tiny")
    assert "not in DATASETS" in narrowed.skipped["rat_social"]


def test_plan_takes_a_reachable_mirror(isolated, monkeypatch, shared_data):
    from deg.data import download

    root = download.build_local_mirror(isolated / "mirror", ["sturman_oft_pose"], shared=shared_data)
    monkeypatch.setenv("DEG_DATA_MIRROR", str(root))
    plan = P.pose_plan("tiny", "synthetic_tiny sturman_oft_pose")
    assert plan.real == ["sturman_oft_pose"] and plan.datasets == ["synthetic_tiny", "sturman_oft_pose"]
