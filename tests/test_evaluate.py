"""deg.evaluate end to end: a run folder built in tmp_path from a tiny dataset in the deg layout;
human-vs-human tables on synthetic annotators and on the real Sturman OFT/EPM label files."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_score

from deg import bouts, evaluate, io
from deg.data.datasets import Dataset
from deg.data.labels import background_from, write_deg_labels
from deg.postprocess import postprocess
from deg.presets import PROFILES

BEHAVIOURS = ["background", "walk", "groom"]
VIDEOS = [f"v{i}" for i in range(6)]
SPLIT = {"train": ["v0", "v1", "v2"], "val": ["v3"], "test": ["v4", "v5"]}


def _ethogram(rng, T: int) -> np.ndarray:
    """Mutually exclusive behaviour bouts of 3-30 frames, (T, 3) with background first."""
    lengths = rng.integers(3, 30, size=T)
    states = np.repeat(rng.integers(0, 3, size=T), lengths)[:T]
    return np.eye(3, dtype=np.int8)[states]


def _annotator(rng, truth: np.ndarray, unlabelled: bool) -> np.ndarray:
    """A second human: the same bouts shifted by a few frames, some frames unlabelled."""
    shifted = np.roll(truth, int(rng.integers(1, 4)), axis=0).copy()
    labelled = np.ones(len(truth), bool)
    if unlabelled:
        labelled[rng.integers(0, len(truth) - 20):][:15] = False
    return background_from(shifted[:, 1:], labelled)


def make_dataset(root, n_annotators: int = 2, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    names = ["truth", "h2", "h3"][:n_annotators]
    for video in VIDEOS:
        truth = _ethogram(rng, int(rng.integers(150, 250)))
        write_deg_labels(root / "labels" / "truth" / f"{video}.csv", truth, BEHAVIOURS)
        for i, name in enumerate(names[1:]):
            write_deg_labels(root / "labels" / name / f"{video}.csv", _annotator(rng, truth, unlabelled=i == 0),
                             BEHAVIOURS)
    ds = Dataset(id="tiny_eval", fps=20.0, behaviours=BEHAVIOURS, annotators=names, train_annotator="truth",
                 videos=VIDEOS, synthetic=True, root=root)
    ds.save()
    return Dataset.load(root)


def make_run(run_dir, ds: Dataset, split=SPLIT, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    io.write_json(run_dir / "split.json", split)
    for video in ds.videos:
        truth = ds.labels(video)
        probs = np.clip(0.55 * truth + 0.6 * rng.random(truth.shape), 0, 1).astype(np.float32)
        fe_probs = np.clip(0.4 * truth + 0.7 * rng.random(truth.shape), 0, 1).astype(np.float32)
        thr, min_len = np.full(3, 0.5), np.array([1, 3, 3])
        io.write_npz(run_dir / "predictions" / f"{video}.npz", probs=probs, preds=postprocess(probs, thr, min_len),
                     fe_probs=fe_probs, fe_preds=postprocess(fe_probs, thr, min_len))
    io.write_json(run_dir / "thresholds.json", {"sequence": [0.5] * 3})
    io.write_json(run_dir / "run.json", {"note": "built by tests/test_evaluate.py"})


def _pick(table, **filters):
    mask = np.ones(len(table), bool)
    for key, value in filters.items():
        mask &= (table[key] == value).to_numpy()
    return table[mask]


def _one(table, **filters) -> float:
    rows = _pick(table, **filters)
    assert len(rows) == 1, filters
    return float(rows["value"].iloc[0])


@pytest.fixture
def run(tmp_path):
    ds = make_dataset(tmp_path / "data" / "tiny_eval")
    run_dir = tmp_path / "results" / "tiny" / "tiny_eval" / "DEG_f" / "split0"
    make_run(run_dir, ds)
    return ds, run_dir


def test_evaluate_run_end_to_end(run):
    ds, run_dir = run
    tables = evaluate.evaluate_run(run_dir, ds, "tiny", "DEG_f", "split0", shuffle_repeats=10, seed=0)
    assert set(tables) == {"metrics", "bouts", "transitions", "train_frames", "agreement"}
    for name, table in tables.items():
        on_disk = pd.read_csv(run_dir / f"{name}.csv", dtype={"split": str})
        assert on_disk.shape == table.shape and list(on_disk.columns) == list(table.columns)
        np.testing.assert_allclose(on_disk["value"], table["value"].astype(float), equal_nan=True)
    assert not list(run_dir.glob(".tmp-*"))

    m = tables["metrics"]
    assert set(m.source) == {"model", "feature_extractor", "shuffle", "h2"}
    assert set(m.truth) == {"truth"} and set(m.subset) == {"test"}
    assert set(m.video) == {"v4", "v5", "all"}
    test = SPLIT["test"]
    truth = np.concatenate([ds.labels(v) for v in test])
    npz = [np.load(run_dir / "predictions" / f"{v}.npz") for v in test]
    preds = np.concatenate([z["preds"] for z in npz])
    fe_preds = np.concatenate([z["fe_preds"] for z in npz])
    f1 = f1_score(truth, preds, average=None)
    for k, name in enumerate(BEHAVIOURS):
        assert _one(m, source="model", video="all", behaviour=name, metric="f1") == pytest.approx(f1[k])
    assert _one(m, source="model", video="all", behaviour="macro_nobg", metric="f1") == pytest.approx(
        f1_score(truth[:, 1:], preds[:, 1:], average="macro"))
    assert _one(m, source="feature_extractor", video="all", behaviour="macro", metric="f1") == pytest.approx(
        f1_score(truth, fe_preds, average="macro"))
    assert _one(m, source="model", video="v5", behaviour="macro", metric="accuracy") == pytest.approx(
        (ds.labels("v5") == npz[1]["preds"]).mean())
    assert _pick(m, source="model", video="all").n_videos.eq(2).all()
    # chance is far below the model, and the shuffle is seeded
    model_f1 = _one(m, source="model", video="all", behaviour="macro_nobg", metric="f1")
    chance = _pick(m, source="shuffle")
    assert set(chance.video) == {"all"} and chance.n_repeats.eq(10).all()
    assert _one(chance, behaviour="macro_nobg", metric="f1") < model_f1 - 0.2
    again = evaluate.evaluate_run(run_dir, ds, "tiny", "DEG_f", "split0", shuffle_repeats=10, seed=0)["metrics"]
    np.testing.assert_array_equal(_pick(again, source="shuffle").value, chance.value)
    # the second annotator is scored like the model, on frames both labelled
    h2 = np.concatenate([ds.labels(v, "h2") for v in test])
    keep = (h2 >= 0).all(axis=1)
    assert _one(m, source="h2", video="all", behaviour="walk", metric="f1") == pytest.approx(
        f1_score(truth[keep, 1], h2[keep, 1]))

    b = tables["bouts"]
    assert set(b.source) == {"model", "feature_extractor", "truth", "h2"}
    direct = bouts.bout_stats(ds.labels("v4"), ds.fps, BEHAVIOURS)
    ours = _pick(b, source="truth", video="v4").reset_index(drop=True)
    np.testing.assert_allclose(ours.value, direct.value)
    per_video = _pick(b, source="model", behaviour="walk", metric="n_bouts")
    assert _one(per_video, video="mean") == pytest.approx(per_video[per_video.video != "mean"].value.mean())
    assert _one(b, source="model", video="v4", behaviour="groom", metric="n_bouts") == len(
        bouts.bout_lengths(npz[0]["preds"])[2])

    t = tables["transitions"]
    counts = _pick(t, source="model", metric="count")
    pooled = counts[counts.video == "all"].value.to_numpy()
    summed = sum(counts[counts.video == v].value.to_numpy() for v in test)
    np.testing.assert_array_equal(pooled, summed)
    probs = _pick(t, source="model", video="all", metric="probability")
    assert probs.groupby("from_behaviour").value.sum().to_numpy() == pytest.approx(np.ones(3))

    tf = tables["train_frames"]
    train = np.concatenate([ds.labels(v) for v in SPLIT["train"]])
    for k, name in enumerate(BEHAVIOURS):
        assert _one(tf, behaviour=name, metric="n_positive") == (train[:, k] == 1).sum()
        assert _one(tf, behaviour=name, metric="percent_positive") == pytest.approx(100 * train[:, k].mean())

    joined = evaluate.with_train_frames(_pick(m, source="model", video="all", metric="f1"), tf)
    assert len(joined) == len(BEHAVIOURS)      # macro rows have no training-frame count
    assert joined.set_index("behaviour").loc["walk", "n_positive"] == (train[:, 1] == 1).sum()
    collected = evaluate.collect(run_dir.parents[2], "metrics")
    assert len(collected) == len(m) and set(collected.split) == {"split0"}

    a = tables["agreement"]
    assert set(a.stratum) == {"agree", "disagree"} and set(a.other) == {"h2"}
    both = (h2 >= 0)
    agree = both & (truth == h2)
    n_agree = _pick(a, source="model", stratum="agree", behaviour="macro", metric="accuracy").n_frames.item()
    n_disagree = _pick(a, source="model", stratum="disagree", behaviour="macro", metric="accuracy").n_frames.item()
    assert (n_agree, n_agree + n_disagree) == (agree.sum(), both.sum())
    assert _one(a, source="model", stratum="agree", behaviour="macro", metric="accuracy") == pytest.approx(
        (preds[agree] == truth[agree]).mean())


def test_stream_predictions_are_sources_of_their_own(run):
    """A run whose features held each stream's logits is scored per stream too (what the flow
    stream alone makes of motion-only behaviours); the figures never take a stream for an annotator."""
    from deg.figs.performance import human_runs
    from deg.figs.pose import split_values

    ds, run_dir = run
    rng = np.random.default_rng(5)
    for video in ds.videos:
        path = run_dir / "predictions" / f"{video}.npz"
        with np.load(path) as z:
            arrays = dict(z)
        truth = ds.labels(video)
        flow = np.clip(0.7 * truth + 0.4 * rng.random(truth.shape), 0, 1).astype(np.float32)
        spatial = rng.random(truth.shape).astype(np.float32)       # carries nothing
        thr, min_len = np.full(3, 0.5), np.array([1, 3, 3])
        io.write_npz(path, **arrays, flow_probs=flow, flow_preds=postprocess(flow, thr, min_len),
                     spatial_probs=spatial, spatial_preds=postprocess(spatial, thr, min_len))
    m = evaluate.evaluate_run(run_dir, ds, "tiny", "DEG_f", "split0", shuffle_repeats=10, seed=0)["metrics"]
    assert set(m.source) == {"model", "feature_extractor", "flow_stream", "spatial_stream", "shuffle", "h2"}
    test = SPLIT["test"]
    truth = np.concatenate([ds.labels(v) for v in test])
    flow_preds = np.concatenate([np.load(run_dir / "predictions" / f"{v}.npz")["flow_preds"] for v in test])
    assert _one(m, source="flow_stream", video="all", behaviour="walk", metric="f1") == pytest.approx(
        f1_score(truth[:, 1], flow_preds[:, 1]))
    assert (_one(m, source="flow_stream", video="all", behaviour="macro_nobg", metric="f1")
            > _one(m, source="spatial_stream", video="all", behaviour="macro_nobg", metric="f1") + 0.2)
    only_h2 = m[m.source != "flow_stream"][lambda t: t.source != "spatial_stream"]
    pd.testing.assert_frame_equal(human_runs(m), human_runs(only_h2))
    kinds = split_values(m)
    assert set(kinds.kind) == {"model", "chance", "human"}
    assert kinds[kinds.kind == "human"].shape[0] == len(kinds[kinds.kind == "model"])   # h2 only, not the streams


def test_subsample_run_without_test_set_evaluates_validation_videos(tmp_path):
    ds = make_dataset(tmp_path / "data" / "tiny_eval", n_annotators=1)
    run_dir = tmp_path / "run"
    make_run(run_dir, ds, split={"train": ["v0"], "val": ["v1", "v2", "v3", "v4", "v5"], "test": []})
    tables = evaluate.evaluate_run(run_dir, ds, "tiny", "DEG_f", "sub1_d0", seed=0)
    assert _pick(tables["metrics"], source="shuffle").n_repeats.eq(PROFILES["tiny"].shuffle_repeats).all()
    assert "agreement" not in tables and not (run_dir / "agreement.csv").exists()
    assert set(tables["metrics"].subset) == {"val"}
    assert _pick(tables["metrics"], video="all", source="model").n_videos.eq(5).all()
    assert _one(tables["train_frames"], behaviour="walk", metric="n_positive") == (ds.labels("v0")[:, 1] == 1).sum()


def test_evaluate_run_errors_name_the_file(run):
    ds, run_dir = run
    (run_dir / "predictions" / "v5.npz").unlink()
    with pytest.raises(evaluate.EvaluationError, match="v5.npz"):
        evaluate.evaluate_run(run_dir, ds, "tiny", "DEG_f", "split0", shuffle_repeats=2)
    z = dict(np.load(run_dir / "predictions" / "v4.npz"))
    io.write_npz(run_dir / "predictions" / "v5.npz", **{k: v[:-3] for k, v in z.items()})
    with pytest.raises(evaluate.EvaluationError, match="v5.npz.*shape"):
        evaluate.evaluate_run(run_dir, ds, "tiny", "DEG_f", "split0", shuffle_repeats=2)
    io.write_npz(run_dir / "predictions" / "v5.npz", probs=z["probs"])
    with pytest.raises(evaluate.EvaluationError, match="lacks"):
        evaluate.evaluate_run(run_dir, ds, "tiny", "DEG_f", "split0", shuffle_repeats=2)
    (run_dir / "split.json").unlink()
    with pytest.raises(evaluate.EvaluationError, match="split.json"):
        evaluate.evaluate_run(run_dir, ds, "tiny", "DEG_f", "split0", shuffle_repeats=2)
    assert not (run_dir / "metrics.csv").exists()


def _check_symmetry(m: pd.DataFrame, annotators) -> None:
    """F1 and accuracy of A vs B equal those of B vs A; precision(A vs B) = recall(B vs A)."""
    key = ["video", "behaviour"]
    for a in annotators:
        for b in annotators:
            if a >= b:
                continue
            ab = _pick(m, truth=a, source=b).set_index(key + ["metric"]).value
            ba = _pick(m, truth=b, source=a).set_index(key + ["metric"]).value
            assert len(ab) and ab.index.equals(ba.index)
            for metric in ("f1", "accuracy"):
                x, y = ab.xs(metric, level="metric"), ba.xs(metric, level="metric")
                np.testing.assert_allclose(x, y, equal_nan=True)
            per_behaviour = ~ab.index.get_level_values("behaviour").str.startswith("macro")
            p_ab = ab[per_behaviour].xs("precision", level="metric")
            r_ba = ba[per_behaviour].xs("recall", level="metric")
            np.testing.assert_allclose(p_ab, r_ba.loc[p_ab.index], equal_nan=True)


def test_evaluate_humans_all_pairs_symmetric(tmp_path):
    ds = make_dataset(tmp_path / "data" / "tiny_eval", n_annotators=3)
    out = tmp_path / "results" / "tiny" / "tiny_eval" / "humans"
    tables = evaluate.evaluate_humans(ds, out, "tiny")
    for name in ("metrics", "bouts", "transitions"):
        assert (out / f"{name}.csv").exists()
    m = tables["metrics"]
    pairs = set(zip(m.truth, m.source))
    assert pairs == {(a, b) for a in ds.annotators for b in ds.annotators if a != b}
    assert set(m.video) == set(VIDEOS) | {"all"} and set(m.preset) == {"human"}
    _check_symmetry(m, ds.annotators)
    # the same numbers as the metrics code on the pair directly
    t, p = ds.labels("v2", "truth"), ds.labels("v2", "h3")
    assert _one(m, truth="truth", source="h3", video="v2", behaviour="groom", metric="precision") == pytest.approx(
        precision_score(t[:, 2], p[:, 2]))
    b = tables["bouts"]
    assert set(b.source) == set(ds.annotators)
    assert _one(b, source="h3", video="v1", behaviour="walk", metric="percent_time") == pytest.approx(
        100 * ds.labels("v1", "h3")[:, 1].mean())


# ----------------------------------------------------------------------------- real data
def _sturman_dataset(shared, tmp_root, relative: str, dataset_id: str, max_videos: int = 8) -> Dataset:
    from deg.data.labels import read_sturman

    path = shared / relative
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the OFT file's one untyped row (tested in deg.data tests)
        parsed = read_sturman(path, fps=25.0, n_frames=15000)
    videos = parsed.videos[:max_videos]     # a subset keeps the test fast; counts are checked in test_bouts
    parsed.matrices = {key: m for key, m in parsed.matrices.items() if key[0] in videos}
    for (video, annotator), matrix in parsed.matrices.items():
        write_deg_labels(tmp_root / "labels" / annotator / f"{video}.csv", matrix, parsed.behaviours)
    ds = Dataset(id=dataset_id, fps=25.0, behaviours=parsed.behaviours, annotators=parsed.annotators,
                 train_annotator="Jin", videos=videos, root=tmp_root)
    ds.save()
    return ds, parsed


@pytest.mark.parametrize("relative,dataset_id", [("sturman/OFT/AllLabDataOFT_final.csv", "sturman_oft"),
                                                 ("sturman/EPM/AllEPMLables.csv", "sturman_epm")])
def test_sturman_human_vs_human(shared_data, tmp_path, relative, dataset_id):
    ds, parsed = _sturman_dataset(shared_data, tmp_path / dataset_id, relative, dataset_id)
    assert len(ds.annotators) == 3
    tables = evaluate.evaluate_humans(ds, tmp_path / "humans", "paper")
    m, b = tables["metrics"], tables["bouts"]
    _check_symmetry(m, ds.annotators)
    pooled = _pick(m, truth="Jin", video="all")
    for other in set(ds.annotators) - {"Jin"}:
        f1 = _pick(pooled, source=other, metric="f1").set_index("behaviour")
        # humans agree far above chance on the common behaviours, and below perfection
        common = [name for name in parsed.behaviours[1:] if f1.loc[name, "n_true"] > 5000]
        assert common and ((f1.loc[common, "value"] > 0.3) & (f1.loc[common, "value"] < 1)).all()
        absent = f1[f1.status == "absent"]
        assert absent.value.isna().all()
    # per-annotator frame counts from the bout table equal a direct count of the matrices
    for annotator in ds.annotators:
        stats = _pick(b, source=annotator, metric="percent_time")
        stats = stats[stats.video != "mean"]
        for name in parsed.behaviours[1:]:
            k = parsed.behaviours.index(name)
            rows = stats[stats.behaviour == name]
            from_table = int(np.round((rows.value * rows.n_frames / 100).sum()))
            direct = sum(int((mat[:, k] == 1).sum()) for (v, a), mat in parsed.matrices.items() if a == annotator)
            assert from_table == direct, (annotator, name)
