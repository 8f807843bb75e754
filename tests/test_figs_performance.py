"""deg.figs.performance and deg.figs.location on small hand-made tables with known answers, and
the structure of the figure notebooks of Figures 3, 3 supplements and 6."""
from __future__ import annotations

import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from deg import io, metrics, stats
from deg.data.datasets import Dataset
from deg.data.labels import write_deg_labels
from deg.figs import location as loc
from deg.figs import performance as perf
from deg.notebooks import declared_parameters

REPO = Path(__file__).resolve().parents[1]
BEHAVIOURS = ["background", "walk", "groom"]


# --------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------
def test_sem_known_values():
    assert perf.sem([1, 2, 3]) == pytest.approx(1 / math.sqrt(3))
    assert perf.sem([2, 4, np.nan, 6]) == pytest.approx(2 / math.sqrt(3))   # NaN ignored, n = 3
    assert math.isnan(perf.sem([5.0]))                                        # no spread from one split
    assert math.isnan(perf.sem([]))


@pytest.mark.parametrize("p, expected", [(0.0005, "***"), (0.001, "***"), (0.0011, "**"), (0.01, "**"),
                                         (0.0101, "*"), (0.05, "*"), (0.0501, "n.s."), (0.7, "n.s."),
                                         (float("nan"), ""), (None, "")])
def test_star_thresholds(p, expected):
    assert perf.stars(p) == expected


def test_running_average_sorts_by_x_and_truncates_ends():
    xs, avg = perf.running_average([3, 1, 2, 5, 4], [30, 10, 20, 50, 40], window=3)
    np.testing.assert_array_equal(xs, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(avg, [15, 20, 30, 40, 45])
    xs, avg = perf.running_average([2, 1, np.nan], [7, 9, 1], window=1)      # NaN pair dropped, window 1 = identity
    np.testing.assert_array_equal(avg, [9, 7])
    with pytest.raises(perf.FigureDataError, match="window"):
        perf.running_average([1], [1], 0)


def test_summarise_mean_sem_n_values():
    t = pd.DataFrame({"g": ["a", "a", "a", "b"], "value": [1.0, 2.0, 3.0, 0.5]})
    s = perf.summarise(t, ["g"]).set_index("g")
    assert s.loc["a", "mean"] == 2.0 and s.loc["a", "n"] == 3
    assert s.loc["a", "sem"] == pytest.approx(1 / math.sqrt(3))
    assert s.loc["a", "values"] == "1;2;3"
    assert s.loc["b", "n"] == 1 and math.isnan(s.loc["b", "sem"])


def test_split_names():
    assert perf.split_kind("split0") == "split" and perf.split_kind("sub12_d3") == "subsample"
    assert perf.split_kind("humans") is None
    assert perf.parse_subsample("sub12_d3") == (12, 3)
    with pytest.raises(perf.FigureDataError, match="split2"):
        perf.parse_subsample("split2")


def test_choose_preset_falls_back_and_says_so():
    assert perf.choose_preset(["DEG_s", "DEG_m"]) == ("DEG_m", "")
    preset, note = perf.choose_preset(["DEG_s", "DEG_f"])
    assert preset == "DEG_f" and "DEG_m absent" in note
    with pytest.raises(perf.FigureDataError):
        perf.choose_preset([])


def test_choose_preset_passes_over_a_preset_run_on_fewer_splits():
    # the demo runs DEG_m and DEG_s on split 0 only (Profile.preset_splits), DEG_f on 3 splits
    rows = [{"dataset": "d", "preset": p, "split": s, "value": 0.5}
            for p, splits in (("DEG_f", ("split0", "split1", "split2", "sub1_d0")), ("DEG_m", ("split0",)),
                              ("DEG_s", ("split0",))) for s in splits]
    table = pd.DataFrame(rows + [{"dataset": "other", "preset": "DEG_m", "split": "split4", "value": 0.5}])
    counts = perf.split_counts(table, "d")
    assert counts == {"DEG_f": 3, "DEG_m": 1, "DEG_s": 1}          # the Figure 6 run is not a split
    preset, note = perf.choose_preset(["DEG_f", "DEG_m", "DEG_s"], splits=counts)
    assert preset == "DEG_f" and "DEG_m on 1 split(s)" in note and "3 splits" in note
    # every preset on every split (the paper profile): the paper's DEG_m, no note
    assert perf.choose_preset(["DEG_f", "DEG_m"], splits={"DEG_f": 5, "DEG_m": 5}) == ("DEG_m", "")


# --------------------------------------------------------------------------------------
# Figure 3 tables
# --------------------------------------------------------------------------------------
def _metric_rows(dataset, preset, split, source, behaviour, metric, value, video="all"):
    return dict(profile="t", dataset=dataset, preset=preset, split=split, subset="test", video=video, source=source,
                truth="truth", behaviour=behaviour, metric=metric, value=value)


def _overall_fixture():
    rows = []
    for preset, base in (("DEG_f", 0.6), ("DEG_m", 0.7)):
        for k, split in enumerate(["split0", "split1", "split2"]):
            for behaviour, metric, offset in (("macro", "accuracy", 0.2), ("macro_nobg", "f1", 0.0),
                                              ("macro", "f1", 0.5)):   # macro f1 must not be picked for F1
                rows.append(_metric_rows("ds", preset, split, "model", behaviour, metric, base + offset + 0.01 * k))
                rows.append(_metric_rows("ds", preset, split, "model", behaviour, metric, 0.0, video="v1"))
            # two other annotators: human = their mean per split
            for annotator, value in (("h2", 0.8), ("h3", 0.9)):
                rows.append(_metric_rows("ds", preset, split, annotator, "macro_nobg", "f1", value + 0.01 * k))
    humans = pd.DataFrame([dict(dataset="labels_only", preset="human", split="all", video=v, source=s, truth=t,
                                behaviour="macro_nobg", metric="f1", value=val)
                           for v, s, t, val in (("all", "B", "A", 0.75), ("all", "A", "B", 0.1), ("x", "B", "A", 0.0))])
    return pd.DataFrame(rows), humans


def test_overall_table_picks_macro_rows_and_averages_annotators():
    m, humans = _overall_fixture()
    meta = {"ds": {"train_annotator": "truth"}, "labels_only": {"train_annotator": "A"}}
    f1 = perf.overall_table(m, humans, "f1", meta)
    s = perf.summarise(f1, ["dataset", "group"]).set_index(["dataset", "group"])
    assert s.loc[("ds", "DEG_f"), "mean"] == pytest.approx(0.61)          # macro_nobg, video all
    assert s.loc[("ds", "DEG_m"), "sem"] == pytest.approx(perf.sem([0.70, 0.71, 0.72]))
    assert s.loc[("ds", "human"), "mean"] == pytest.approx(0.86)          # mean of h2, h3 over splits
    assert s.loc[("ds", "human"), "n"] == 3                               # one preset's human rows, not both
    assert s.loc[("labels_only", "human"), "mean"] == pytest.approx(0.75)  # truth = training annotator, pooled
    acc = perf.overall_table(m, humans, "accuracy", meta)
    assert acc.loc[acc["group"] == "DEG_m", "value"].tolist() == pytest.approx([0.9, 0.91, 0.92])
    assert perf.group_order(["human", "DEG_s", "DEG_f"]) == ["DEG_f", "DEG_s", "human"]


def _behaviour_fixture(n_splits=4, with_human=True, seed=0):
    rng = np.random.default_rng(seed)
    noisy = lambda mean, sd: mean + sd * rng.standard_normal()
    rows = []
    for k in range(n_splits):
        split = f"split{k}"
        for behaviour, model in (("walk", 0.8), ("groom", 0.5)):
            rows.append(_metric_rows("ds", "DEG_m", split, "model", behaviour, "f1", noisy(model, 0.05)))
            rows.append(_metric_rows("ds", "DEG_m", split, "shuffle", behaviour, "f1", noisy(0.1, 0.02)))
            if with_human:
                for a in ("h2", "h3"):
                    rows.append(_metric_rows("ds", "DEG_m", split, a, behaviour, "f1", noisy(0.85, 0.05)))
        rows.append(_metric_rows("ds", "DEG_m", split, "model", "background", "f1", 0.9))
    return pd.DataFrame(rows)


def test_behaviour_tests_three_groups_match_rm_anova_and_tukey():
    table = perf.behaviour_table(_behaviour_fixture(), "ds", "DEG_m", "f1")
    assert "background" not in set(table["behaviour"])
    assert set(table["group"]) == {"model", "shuffle", "human"}
    tests = perf.behaviour_tests(table)
    assert len(tests) == 4 and set(tests["B"]) == {"shuffle", "human"}
    part = table[table["behaviour"] == "walk"]
    anova = stats.rm_anova(part, "value", "group", "split")
    tukey = stats.tukey_rm(part, "value", "group", "split")
    row = tests[(tests["behaviour"] == "walk") & (tests["B"] == "shuffle")].iloc[0]
    assert row["anova_p"] == pytest.approx(anova["p_unc"].iloc[0])
    pair = tukey["A"].isin(["model", "shuffle"]) & tukey["B"].isin(["model", "shuffle"])
    expected = tukey[pair]
    assert row["p"] == pytest.approx(expected["p_corr"].iloc[0])
    assert row["test"] == "RM ANOVA + Tukey HSD" and row["stars"] == perf.stars(row["p"])
    assert row["stars"] in ("*", "**", "***")                              # 0.8 vs 0.1 over 4 splits


def test_behaviour_tests_two_groups_paired_t_bonferroni():
    table = perf.behaviour_table(_behaviour_fixture(with_human=False), "ds", "DEG_m", "f1")
    tests = perf.behaviour_tests(table).set_index("behaviour")
    for b in ("walk", "groom"):
        w = table[table["behaviour"] == b].pivot(index="split", columns="group", values="value")
        p = sps.ttest_rel(w["model"], w["shuffle"]).pvalue
        assert tests.loc[b, "p"] == pytest.approx(min(1.0, 2 * p))       # Bonferroni over 2 behaviours
        assert tests.loc[b, "test"] == "paired t-test, Bonferroni"


def test_behaviour_tests_one_split_is_drawn_without_test():
    table = perf.behaviour_table(_behaviour_fixture(n_splits=1), "ds", "DEG_m", "f1")
    tests = perf.behaviour_tests(table)
    assert (tests["note"] == perf.NO_TEST).all() and tests["p"].isna().all() and (tests["stars"] == "").all()
    panel = perf.behaviour_panel_table(table, tests)
    assert set(panel["group"]) == {"model", "shuffle", "human"} and panel["sem"].isna().all()


def test_paired_by_unit_constant_difference_is_not_tested():
    long = pd.DataFrame({"unit": ["u"] * 6, "split": ["a", "b", "c"] * 2, "group": ["x"] * 3 + ["y"] * 3,
                         "value": [1, 2, 3, 0, 1, 2]})
    res = perf.paired_by_unit(long, "unit", ("x", "y"))
    assert math.isnan(res["u"]["p"]) and "no variance" in res["u"]["note"]


def test_model_vs_human_points_and_paired_t():
    m = _behaviour_fixture()
    points = perf.model_vs_human(m, {"ds": "DEG_m"})
    assert list(points["behaviour"]) == ["walk", "groom"] and (points["n_splits"] == 4).all()
    walk = m[(m["behaviour"] == "walk") & (m["source"] == "model")]["value"].mean()
    assert points.loc[points["behaviour"] == "walk", "model"].iloc[0] == pytest.approx(walk)
    pts = pd.DataFrame({"model": [0.5, 0.6, 0.9, 0.4], "human": [0.7, 0.8, 0.95, 0.7]})
    res = perf.paired_points_test(pts, "model", "human")
    assert res["p"] == pytest.approx(sps.ttest_rel(pts["model"], pts["human"]).pvalue)
    assert res["n"] == 4 and res["stars"] == perf.stars(res["p"])
    assert perf.paired_points_test(pts.iloc[:1], "model", "human")["test"] == "none"


def test_train_frames_points_join_per_run_and_behaviour():
    m = _behaviour_fixture(n_splits=2)
    tf = pd.DataFrame([dict(profile="t", dataset="ds", preset="DEG_m", split=f"split{k}", behaviour=b, metric=metric,
                            value=v + k) for k in range(2) for b in ("walk", "groom", "background")
                       for metric, v in (("n_positive", 100.0), ("percent_positive", 10.0))])
    pts = perf.train_frames_points(m, tf, {"ds": "DEG_m"}, "f1")
    assert len(pts) == 4 and "background" not in set(pts["behaviour"])
    row = pts[(pts["split"] == "split1") & (pts["behaviour"] == "walk")].iloc[0]
    assert row["n_positive"] == 101.0 and row["percent_positive"] == 11.0


def test_agreement_summary_and_tests():
    rows = []
    for k in range(3):
        for other, shift in (("h2", 0.0), ("h3", 0.02)):
            for stratum, v in (("agree", 0.9), ("disagree", 0.5)):
                for metric, behaviour in (("accuracy", "macro"), ("f1", "macro_nobg"), ("f1", "macro")):
                    value = v + shift + 0.03 * k * (stratum == "agree") + (behaviour == "macro") * 0.05
                    rows.append(dict(_metric_rows("ds", "DEG_m", f"split{k}", "model", behaviour, metric, value),
                                     other=other, stratum=stratum))
    summ = perf.agreement_summary(pd.DataFrame(rows), {"ds": "DEG_m"}, "f1")
    assert len(summ) == 6
    assert summ.loc[(summ["split"] == "split0") & (summ["stratum"] == "agree"), "value"].iloc[0] == pytest.approx(0.91)
    tests = perf.agreement_tests(summ)
    w = summ.pivot(index="split", columns="stratum", values="value")
    assert tests["p"].iloc[0] == pytest.approx(sps.ttest_rel(w["agree"], w["disagree"]).pvalue)


# --------------------------------------------------------------------------------------
# Figure 6 tables
# --------------------------------------------------------------------------------------
def _subsample_fixture():
    rows = []
    for n in (1, 2, 4):
        for d in (0, 1):
            split = f"sub{n}_d{d}"
            for b, base in (("walk", 0.5), ("groom", 0.3)):
                rows.append(dict(_metric_rows("ds", "DEG_f", split, "model", b, "f1", base + 0.1 * n + 0.01 * d),
                                 subset="val"))
                rows.append(dict(_metric_rows("ds", "DEG_f", split, "feature_extractor", b, "f1",
                                              base + 0.05 * n - 0.02 * d * n), subset="val"))
            rows.append(dict(_metric_rows("ds", "DEG_f", split, "model", "macro_nobg", "f1", 0.0), subset="val"))
    rows.append(_metric_rows("ds", "DEG_f", "split0", "model", "walk", "f1", 0.99))   # not a subsample run
    return pd.DataFrame(rows)


def test_subsample_table_parses_sizes_and_keeps_subsample_runs():
    t = perf.subsample_table(_subsample_fixture(), "f1")
    assert set(t["split"]) == {f"sub{n}_d{d}" for n in (1, 2, 4) for d in (0, 1)}
    assert set(t["behaviour"]) == {"walk", "groom"}
    s = perf.summarise(t, ["behaviour", "n_train"]).set_index(["behaviour", "n_train"])
    assert s.loc[("walk", 4), "mean"] == pytest.approx(0.905) and s.loc[("walk", 4), "n"] == 2


def test_fe_vs_model_pairs_and_bonferroni():
    pts = perf.fe_vs_model(_subsample_fixture(), "f1")
    assert len(pts) == 12 and not pts[["feature_extractor", "model"]].isna().any().any()
    tests = perf.fe_vs_model_tests(pts).set_index("behaviour")
    walk = pts[pts["behaviour"] == "walk"]
    p = sps.ttest_rel(walk["feature_extractor"], walk["model"]).pvalue
    assert tests.loc["walk", "p"] == pytest.approx(min(1.0, 2 * p))
    assert tests.loc["walk", "mean_model"] > tests.loc["walk", "mean_feature_extractor"]


def test_stage_table_averages_each_stage_over_splits_in_pipeline_order():
    rows = []
    for k, split in enumerate(["split0", "split1", "split2"]):
        for source, base in (("model", 0.6), ("shuffle", 0.2), ("flow_stream", 0.3), ("feature_extractor", 0.5),
                             ("spatial_stream", 0.4), ("h2", 0.9)):
            for behaviour in ("walk", "macro_nobg", "background", "macro"):
                rows.append(_metric_rows("ds", "DEG_f", split, source, behaviour, "f1", base + 0.1 * k))
        rows.append(_metric_rows("ds", "DEG_f", "sub1_d0", "model", "walk", "f1", 0.0))     # a subsample run: left out
        rows.append(_metric_rows("ds", "DEG_m", split, "model", "walk", "f1", 0.0))         # another preset: left out
    table = perf.stage_table(pd.DataFrame(rows), "f1")
    walk = table[table.behaviour == "walk"]
    assert list(walk.source) == ["flow_stream", "spatial_stream", "feature_extractor", "model", "shuffle"]
    assert set(table.behaviour) == {"walk", "macro_nobg"} and walk.n.eq(3).all()
    model = walk.set_index("source").loc["model"]
    assert model["mean"] == pytest.approx(0.7) and model["sem"] == pytest.approx(perf.sem([0.6, 0.7, 0.8]))
    # runs from before the per-stream sources: only the sources they have
    old = perf.stage_table(pd.DataFrame([r for r in rows if not r["source"].endswith("_stream")]), "f1")
    assert set(old.source) == {"feature_extractor", "model", "shuffle"}


# --------------------------------------------------------------------------------------
# Ethogram examples and location (a tiny dataset in tmp_path)
# --------------------------------------------------------------------------------------
def _dataset(root: Path, n_videos=4, T=120, seed=0, extra=True) -> Dataset:
    rng = np.random.default_rng(seed)
    videos = [f"v{i}" for i in range(n_videos)]
    for v in videos:
        states = np.repeat(rng.integers(0, 3, size=T), rng.integers(5, 20, size=T))[:T]
        write_deg_labels(root / "labels" / "truth" / f"{v}.csv", np.eye(3, dtype=np.int8)[states], BEHAVIOURS)
        if extra:
            heading = rng.uniform(-np.pi, np.pi, T)
            io.write_csv(root / "extra" / f"{v}.csv", pd.DataFrame({"frame": np.arange(T), "x": 0.0, "y": 0.0,
                                                                     "heading": heading,
                                                                     "quadrant": rng.integers(0, 4, T)}))
    ds = Dataset(id="figs_tiny", fps=10.0, behaviours=BEHAVIOURS, annotators=["truth"], train_annotator="truth",
                 videos=videos, synthetic=True, root=root)
    ds.save()
    return Dataset.load(root)


def _run(run_dir: Path, ds: Dataset, test, noise) -> None:
    """Predictions = labels with a per-video fraction ``noise[v]`` of frames flipped."""
    rng = np.random.default_rng(1)
    io.write_json(run_dir / "split.json", {"train": [v for v in ds.videos if v not in test][:1],
                                           "val": [v for v in ds.videos if v not in test][1:], "test": test})
    for v in ds.videos:
        truth = np.asarray(ds.labels(v))
        flip = rng.random(truth.shape) < noise.get(v, 0.1)
        preds = np.where(flip, 1 - truth, truth).astype(np.uint8)
        probs = np.clip(0.7 * preds + 0.3 * rng.random(truth.shape), 0, 1).astype(np.float32)
        io.write_npz(run_dir / "predictions" / f"{v}.npz", probs=probs, preds=preds, fe_probs=probs, fe_preds=preds)


def test_write_ethogram_example_picks_the_typical_test_video(tmp_path):
    ds = _dataset(tmp_path / "data")
    run_dir = tmp_path / "res" / "figs_tiny" / "DEG_m" / "split0"
    # v1 and v2 near the pooled F1, v3 far worse: the example is the one closest to the pooled F1
    _run(run_dir, ds, test=["v1", "v2", "v3"], noise={"v1": 0.10, "v2": 0.2, "v3": 0.45})
    path = perf.write_ethogram_example(run_dir, ds)
    ex = perf.read_ethogram_example(path)
    assert set(perf.ETHOGRAM_KEYS) <= set(ex)
    assert ex["behaviours"] == BEHAVIOURS and ex["labels"].dtype == np.int8
    # the expected video, computed independently
    split = ["v1", "v2", "v3"]
    arrays = {v: np.load(run_dir / "predictions" / f"{v}.npz") for v in split}
    f1 = lambda lab, prd: metrics.per_behaviour(metrics.confusion_counts(lab, prd))["f1"]
    pooled = f1(np.concatenate([ds.labels(v) for v in split]), np.concatenate([arrays[v]["preds"] for v in split]))
    expected = min(split, key=lambda v: np.nanmean(np.abs(f1(ds.labels(v), arrays[v]["preds"]) - pooled)))
    assert ex["video"] == expected
    np.testing.assert_array_equal(ex["preds"], arrays[expected]["preds"])
    m = perf.ethogram_metrics(ex["labels"], ex["preds"], ex["probs"], ex["behaviours"])
    assert set(m["behaviour"]) == set(BEHAVIOURS) | {"macro", "macro_nobg"}
    assert m.loc[m["behaviour"] == "macro", "metric"].tolist() == ["accuracy"]


def test_read_ethogram_example_names_the_file(tmp_path):
    bad = io.write_npz(tmp_path / "ethogram_example.npz", video=np.array("v"), labels=np.zeros((3, 2), np.int8))
    with pytest.raises(perf.FigureDataError, match="ethogram_example.npz.*lacks"):
        perf.read_ethogram_example(bad)


def test_example_window_shows_most_behaviours():
    labels = np.zeros((100, 3), np.int8)
    labels[:, 0] = 1
    labels[60:65, 1] = 1
    labels[70:75, 2] = 1
    assert perf.example_window(labels, 20) == (51, 71)         # earliest window holding frame 70 and 60-64
    assert perf.example_window(labels, 500) == (0, 100)


@pytest.mark.parametrize("radians, name", [(0.0, "right"), (np.pi / 2, "down"), (np.pi, "left"), (-np.pi, "left"),
                                           (-np.pi / 2, "up"), (np.pi / 4 - 1e-6, "right"), (np.pi / 4, "down")])
def test_heading_bins(radians, name):
    assert loc.HEADINGS[loc.heading_bins(np.array([radians]))[0]] == name


def test_location_metrics_match_metrics_on_stratum_frames(tmp_path):
    ds = _dataset(tmp_path / "data")
    run_dir = tmp_path / "res" / "figs_tiny" / "DEG_m" / "split0"
    _run(run_dir, ds, test=["v2", "v3"], noise={})
    table = loc.location_metrics(run_dir, ds)
    assert (run_dir / loc.FILE).exists() and list(table.columns) == loc.COLUMNS
    assert set(table["stratum_type"]) == {"quadrant", "heading"}
    assert (table["preset"] == "DEG_m").all() and (table["split"] == "split0").all()
    # recompute one stratum by hand
    frames = [pd.read_csv(ds.extra_path(v)) for v in ("v2", "v3")]
    quadrant = np.concatenate([f["quadrant"].to_numpy() for f in frames]) == 3
    labels = np.concatenate([ds.labels(v) for v in ("v2", "v3")])
    preds = np.concatenate([np.load(run_dir / "predictions" / f"{v}.npz")["preds"] for v in ("v2", "v3")])
    expected = metrics.metrics_table(labels[quadrant], preds[quadrant], None, BEHAVIOURS)
    got = table[(table["stratum"] == "bottom-right") & (table["metric"] == "f1")].set_index("behaviour")["value"]
    want = expected[expected["metric"] == "f1"].set_index("behaviour")["value"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False)
    assert table.loc[table["stratum"] == "bottom-right", "n_frames"].iloc[0] == quadrant.sum()
    # location_summary / location_tests on two splits
    two = pd.concat([table, table.assign(split="split1", value=table["value"] * 0.9)])
    summary = loc.location_summary(two, "figs_tiny", "DEG_m")
    assert set(summary["n"]) <= {0, 2} and "background" not in set(summary["behaviour"])
    tests = loc.location_tests(table, "figs_tiny", "DEG_m")
    assert (tests["note"] == perf.NO_TEST).all()


def test_location_without_covariates_and_malformed_file(tmp_path):
    ds = _dataset(tmp_path / "data", extra=False)
    run_dir = tmp_path / "run"
    _run(run_dir, ds, test=["v3"], noise={})
    assert loc.location_metrics(run_dir, ds).empty and not (run_dir / loc.FILE).exists()
    ds2 = _dataset(tmp_path / "data2")
    pd.read_csv(ds2.extra_path("v3")).iloc[:-5].to_csv(ds2.extra_path("v3"), index=False)
    run2 = tmp_path / "run2"
    _run(run2, ds2, test=["v3"], noise={})
    with pytest.raises(loc.LocationError, match=r"v3\.csv.*115 rows"):
        loc.location_metrics(run2, ds2)


# --------------------------------------------------------------------------------------
# Reading results trees and the notebooks' structure
# --------------------------------------------------------------------------------------
def test_load_runs_separates_splits_and_subsamples(tmp_path):
    for split in ("split0", "sub1_d0"):
        io.write_csv(tmp_path / "ds" / "DEG_f" / split / "metrics.csv", pd.DataFrame(
            [_metric_rows("ds", "DEG_f", split, "model", "walk", "f1", 0.5)]))
    io.write_json(tmp_path / "other" / "describe" / "dataset.json", {"synthetic": False})
    assert perf.discover_datasets(tmp_path) == ["ds", "other"]
    assert perf.load_runs(tmp_path, ["ds"])["split"].tolist() == ["split0"]
    assert perf.load_runs(tmp_path, ["ds"], kind="subsample")["split"].tolist() == ["sub1_d0"]
    assert perf.load_runs(tmp_path, ["other"]).empty
    meta = perf.load_meta(tmp_path, ["ds", "other"])
    assert meta["other"]["synthetic"] is False and meta["ds"]["described"] is False


@pytest.mark.parametrize("name", ["fig3_performance", "fig3_supplements", "fig6_training_size"])
def test_notebook_structure(name):
    path = REPO / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and "paper" in nb.cells[0].source.lower()
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assert declared_parameters(path) == {"profile": '"demo"', "datasets": "[]"}
    for line in params[0].source.splitlines():
        assert line.count("=") == 1 and "  # " in line     # papermill parses "name: type = default  # help"
    source = "\n".join(c.source for c in nb.cells)
    figure = {"fig3_performance": "fig3", "fig3_supplements": "fig3_supp", "fig6_training_size": "fig6"}[name]
    assert f'FIG = "{figure}"' in source and "plots.finish_figure" in source and "plots.start_figure" in source
