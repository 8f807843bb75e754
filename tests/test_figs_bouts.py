"""deg.figs.bouts: Figure 4-5 tables from small hand-made bouts/transitions tables with known answers."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from deg.figs import bouts as fb

ROLES = fb.rater_roles(["h2", "truth", "h3"], "truth")


def _rows(dataset, preset, split, video, source, behaviour, metric, value):
    return {"profile": "t", "dataset": dataset, "preset": preset, "split": split, "subset": "test", "video": video,
            "source": source, "behaviour": behaviour, "metric": metric, "value": value}


def test_roles_and_preset_choice():
    assert ROLES == {"truth": "human1", "h2": "human2", "h3": "human3", "model": "model"}
    assert fb.role_label("human2", ROLES) == "Human 2 (h2)"
    with pytest.raises(fb.FigureDataError, match="not among"):
        fb.rater_roles(["a", "b"], "c")
    assert fb.choose_preset(["DEG_f", "DEG_s", "DEG_m"]) == "DEG_m"
    assert fb.choose_preset(["DEG_s", "DEG_f"]) == "DEG_f"
    with pytest.raises(fb.FigureDataError):
        fb.choose_preset([])
    # a preset run on fewer splits (the demo's DEG_m on split 0 only) is passed over
    meta = {"a": {"splits": {"DEG_f": 3, "DEG_m": 1}}, "b": {"splits": {"DEG_f": 3}}}
    assert fb.split_counts(meta, ["a", "b"]) == {"DEG_f": 6, "DEG_m": 1}
    assert fb.choose_preset(["DEG_f", "DEG_m"], splits=fb.split_counts(meta, ["a", "b"])) == "DEG_f"
    assert fb.choose_preset(["DEG_f", "DEG_m"], splits={"DEG_f": 3, "DEG_m": 3}) == "DEG_m"


def test_per_video_averages_model_over_the_splits_that_tested_the_video():
    rows = [
        _rows("d", "DEG_m", "split0", "v1", "model", "walk", "percent_time", 10.0),
        _rows("d", "DEG_m", "split1", "v1", "model", "walk", "percent_time", 20.0),
        _rows("d", "DEG_m", "split0", "v1", "truth", "walk", "percent_time", 12.0),
        _rows("d", "DEG_m", "split1", "v1", "truth", "walk", "percent_time", 12.0),
        _rows("d", "DEG_m", "split1", "v2", "model", "walk", "percent_time", 5.0),
        _rows("d", "DEG_m", "split0", "v1", "feature_extractor", "walk", "percent_time", 99.0),   # not a rater
        _rows("d", "DEG_m", "split0", "mean", "model", "walk", "percent_time", 99.0),             # summary row
        _rows("d", "DEG_f", "split0", "v1", "model", "walk", "percent_time", 99.0),               # other preset
        _rows("d", "DEG_m", "split0", "v1", "model", "walk", "n_bouts", 99.0),                    # other metric
    ]
    out = fb.per_video(pd.DataFrame(rows), "d", "DEG_m", "percent_time", ROLES).set_index(["video", "rater"])
    assert len(out) == 3
    assert out.loc[("v1", "model"), "value"] == 15.0 and out.loc[("v1", "model"), "n_splits"] == 2
    assert out.loc[("v1", "human1"), "value"] == 12.0
    assert out.loc[("v2", "model"), "n_splits"] == 1


def _per_video_table(values: dict[str, list[float]], behaviour="walk"):
    rows = []
    for rater, vals in values.items():
        for i, v in enumerate(vals):
            rows.append({"video": f"v{i}", "behaviour": behaviour, "rater": rater, "value": v})
    return pd.DataFrame(rows)


def test_video_tests_match_scipy_anova_and_run_tukey_when_significant():
    values = {"model": [10.0, 11, 12, 13], "human1": [20.0, 21, 22, 24], "human2": [19.0, 22, 21, 23]}
    out = fb.video_tests(_per_video_table(values))
    F, p = sps.f_oneway(*values.values())
    assert out.anova_F.iloc[0] == pytest.approx(F) and out.anova_p.iloc[0] == pytest.approx(p)
    assert (out.anova_df1 == 2).all() and (out.anova_df2 == 9).all()
    by = out.set_index("rater")
    assert by.loc["model", "mean"] == pytest.approx(11.5)
    assert by.loc["model", "sem"] == pytest.approx(np.std([10, 11, 12, 13], ddof=1) / 2)
    tukey = sps.tukey_hsd(*values.values())
    assert by.loc["human1", "tukey_p_vs_model"] == pytest.approx(tukey.pvalue[0, 1], rel=1e-3)
    assert np.isnan(by.loc["model", "tukey_p_vs_model"])
    assert (out.note == "").all()


def test_video_tests_no_tukey_when_anova_not_significant_and_notes_when_untestable():
    same = fb.video_tests(_per_video_table({"model": [1.0, 2, 3], "human1": [1.5, 2.5, 2.0]}))
    assert same.anova_p.iloc[0] > 0.05 and same.tukey_p_vs_model.isna().all()
    one_video = fb.video_tests(_per_video_table({"model": [1.0], "human1": [2.0]}))
    assert one_video.anova_p.isna().all() and "fewer than 2 videos" in one_video.note.iloc[0]
    flat = fb.video_tests(_per_video_table({"model": [1.0, 1.0], "human1": [1.0, 1.0]}))
    assert "all values equal" in flat.note.iloc[0]


def test_video_differences_is_the_paired_t_test_of_absolute_differences():
    table = _per_video_table({"human1": [10.0, 20, 30, 40], "model": [12.0, 25, 27, 41],
                              "human2": [11.0, 20, 31, 40], "human3": [10.0, 22, 30, 39]})
    tests, diffs = fb.video_differences(table)
    model = np.abs(np.array([12, 25, 27, 41]) - [10, 20, 30, 40])
    human = np.r_[np.abs(np.array([11, 20, 31, 40]) - [10, 20, 30, 40]), np.abs(np.array([10, 22, 30, 39]) - [10, 20, 30, 40])]
    t = sps.ttest_rel(np.r_[model, model], human)
    row = tests[tests.test == "paired_ttest_absdiff"].iloc[0]
    assert row.statistic == pytest.approx(t.statistic) and row.p_unc == pytest.approx(t.pvalue)
    assert len(diffs) == 8 and set(diffs.other) == {"human2", "human3"}
    r = tests[tests.test == "pearson"].iloc[0]
    assert r.statistic == pytest.approx(sps.pearsonr(np.r_[model, model], human)[0])
    no_model, _ = fb.video_differences(table[table.rater != "model"])
    assert "no model" in no_model.note.iloc[0]


def _mean_rows():
    rows = []
    # dataset with runs: two splits, model and three annotators
    for split, m, h1, h2, h3 in (("split0", 10.0, 12.0, 13.0, 11.0), ("split1", 14.0, 16.0, 15.0, 20.0)):
        for source, v in (("model", m), ("truth", h1), ("h2", h2), ("h3", h3)):
            rows.append(_rows("run_ds", "DEG_m", split, "mean", source, "walk", "percent_time", v))
    # its humans/ table (must be ignored for a dataset with runs)
    rows.append(_rows("run_ds", "human", "all", "mean", "truth", "walk", "percent_time", 99.0))
    # label-only dataset with two annotators
    rows.append(_rows("lab", "human", "all", "mean", "A", "walk", "percent_time", 30.0))
    rows.append(_rows("lab", "human", "all", "mean", "B", "walk", "percent_time", 34.0))
    # another preset: dropped
    rows.append(_rows("run_ds", "DEG_f", "split0", "mean", "model", "walk", "percent_time", 99.0))
    return pd.DataFrame(rows)


def test_split_average_means_and_sem_over_splits():
    roles = {"run_ds": ROLES, "lab": fb.rater_roles(["A", "B"], "A")}
    avg = fb.split_average(_mean_rows(), roles, "DEG_m", "percent_time").set_index(["dataset", "rater"])
    assert avg.loc[("run_ds", "model"), "value"] == 12.0
    assert avg.loc[("run_ds", "model"), "sem"] == pytest.approx(np.std([10, 14], ddof=1) / np.sqrt(2))
    assert avg.loc[("run_ds", "model"), "n_splits"] == 2
    assert avg.loc[("run_ds", "human1"), "value"] == 14.0          # humans/ row (99) ignored
    assert avg.loc[("lab", "human2"), "value"] == 34.0 and avg.loc[("lab", "human2"), "n_splits"] == 0
    assert np.isnan(avg.loc[("lab", "human1"), "sem"])
    assert ("run_ds", "DEG_f") not in set(zip(avg.reset_index().dataset, avg.reset_index().preset))

    pairs = fb.rater_pairs(avg.reset_index(), "human1", "model")
    assert list(pairs.dataset) == ["run_ds"] and pairs.model.iloc[0] == 12.0
    others = fb.rater_pairs(avg.reset_index(), "human1", "humans_other").set_index("dataset")
    assert others.loc["run_ds", "humans_other"] == pytest.approx(np.mean([14.0, 15.5]))   # mean of H2 (14), H3 (15.5)
    assert others.loc["lab", "humans_other"] == 34.0                                     # H2 alone

    diffs = fb.summary_differences(avg.reset_index()).set_index("dataset")
    assert list(diffs.index) == ["run_ds"]                                               # no model for "lab"
    assert diffs.loc["run_ds", "model_diff"] == pytest.approx(2.0)
    assert diffs.loc["run_ds", "human_diff"] == pytest.approx(np.mean([0.0, 1.5]))


def test_summary_difference_tests_bonferroni_over_metrics():
    rng = np.random.default_rng(0)
    frames = []
    for metric in ("percent_time", "n_bouts", "mean_bout_s"):
        model, human = rng.random(6) + 0.5, rng.random(6)
        frames.append(pd.DataFrame({"metric": metric, "dataset": "d", "behaviour": [f"b{i}" for i in range(6)],
                                    "model_diff": model, "human_diff": human}))
    diffs = pd.concat(frames, ignore_index=True)
    out = fb.summary_difference_tests(diffs)
    for metric, part in diffs.groupby("metric"):
        row = out[(out.group == metric) & (out.test == "paired_ttest")].iloc[0]
        p = sps.ttest_rel(part.model_diff, part.human_diff).pvalue
        assert row.p_unc == pytest.approx(p)
        assert row.p_corr == pytest.approx(min(1.0, 3 * p))
        r = out[(out.group == metric) & (out.test == "pearson")].iloc[0]
        assert r.statistic == pytest.approx(sps.pearsonr(part.model_diff, part.human_diff)[0])
    one = fb.summary_difference_tests(diffs.iloc[:1])
    assert "fewer than 2" in one.note.iloc[0]


def test_transitions_averaged_over_splits_in_behaviour_order():
    behaviours = ["background", "walk", "groom"]
    rows = []
    for split, p_walk in (("split0", 0.2), ("split1", 0.6)):
        for frm, to, v in (("background", "walk", p_walk), ("background", "groom", 1 - p_walk),
                           ("walk", "background", 1.0), ("walk", "groom", 0.0)):
            rows.append({"dataset": "d", "preset": "DEG_m", "split": split, "video": "all", "source": "model",
                         "from_behaviour": frm, "to_behaviour": to, "metric": "probability", "value": v})
        # groom never left in split0, always to background in split1: NaN skipped in the mean
        rows.append({"dataset": "d", "preset": "DEG_m", "split": split, "video": "all", "source": "model",
                     "from_behaviour": "groom", "to_behaviour": "background", "metric": "probability",
                     "value": np.nan if split == "split0" else 1.0})
        rows.append({"dataset": "d", "preset": "DEG_m", "split": split, "video": "v1", "source": "model",
                     "from_behaviour": "walk", "to_behaviour": "groom", "metric": "probability", "value": 9.0})
    long = fb.average_transitions(pd.DataFrame(rows), "d", "DEG_m", ROLES, behaviours)
    m = fb.transition_matrix(long, "model", behaviours)
    assert m.shape == (3, 3)
    assert m[0, 1] == pytest.approx(0.4) and m[0, 2] == pytest.approx(0.6)
    assert m[1, 0] == 1.0 and m[1, 2] == 0.0 and m[2, 0] == 1.0
    assert np.isnan(m[0, 0]) and np.isnan(m[2, 1])
    m[0, 0] = 0.0                                      # the returned matrix is writable


def test_load_table_reads_split_runs_and_humans_only(tmp_path):
    root = tmp_path / "results"
    for sub in ("d/DEG_f/split0", "d/DEG_f/sub1_d0", "d/humans"):
        (root / sub).mkdir(parents=True)
        split = "all" if sub.endswith("humans") else sub.split("/")[-1]
        pd.DataFrame([_rows("d", "DEG_f" if "DEG" in sub else "human", split, "v", "model", "w",
                            "n_bouts", 1.0)]).to_csv(root / sub / "bouts.csv", index=False)
    (root / "d" / "describe").mkdir()
    (root / "d" / "describe" / "dataset.json").write_text(json.dumps({"annotators": ["a"], "train_annotator": "a"}))
    table = fb.load_table(root, ["d"], "bouts")
    assert sorted(table.split) == ["all", "split0"]
    assert fb.load_table(root, ["d"], "transitions").empty
    meta = fb.dataset_meta(root)
    assert list(meta) == ["d"] and meta["d"]["presets"] == ["DEG_f"]
    with pytest.raises(fb.FigureDataError, match="missing"):
        fb.dataset_meta(root, ["nope"])


def test_format_p():
    assert fb.format_p(0.0004) == "p<0.001 *"
    assert fb.format_p(0.2) == "p=0.200"
    assert fb.format_p(float("nan")) == "no test"
