"""deg.stats: known answers on small tables; pingouin agrees with statsmodels and scipy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.anova import AnovaRM, anova_lm
from statsmodels.formula.api import ols
from statsmodels.stats.multicomp import pairwise_tukeyhsd
from statsmodels.stats.multitest import multipletests

from deg import stats as S


def _long(wide: np.ndarray, conditions=("c1", "c2", "c3")) -> pd.DataFrame:
    n, k = wide.shape
    return pd.DataFrame({"split": np.repeat(np.arange(n), k), "source": np.tile(list(conditions)[:k], n),
                         "f1": wide.ravel().astype(float)})


# Subjects x conditions; grand mean 4, condition means 2, 3, 7, subject means 3, 4, 5:
# SS_cond = 3 (4 + 1 + 9) = 42, SS_subj = 3 (1 + 0 + 1) = 6, SS_total = 52, SS_err = 4;
# df 2 and 4: F = 21 / 1 = 21, p = (1 + 2 F / 4) ** -2 = 11.5 ** -2.
KNOWN = np.array([[1, 2, 6], [2, 4, 6], [3, 3, 9]])


def test_rm_anova_known_answer_and_statsmodels():
    data = _long(KNOWN)
    row = S.rm_anova(data, "f1", "source", "split").iloc[0]
    assert row.statistic == pytest.approx(21.0)
    assert (row.df1, row.df2) == (2, 4)
    assert row.p_unc == pytest.approx(11.5 ** -2)
    assert list(S.rm_anova(data, "f1", "source", "split").columns) == S.COLUMNS
    sm = AnovaRM(data, depvar="f1", subject="split", within=["source"]).fit().anova_table.iloc[0]
    assert row.statistic == pytest.approx(sm["F Value"])
    assert row.p_unc == pytest.approx(sm["Pr > F"])
    assert (row.df1, row.df2) == (sm["Num DF"], sm["Den DF"])


def test_rm_anova_agrees_with_statsmodels_on_random_tables():
    rng = np.random.default_rng(0)
    for _ in range(5):
        wide = rng.normal(size=(5, 4)) + rng.normal(size=(5, 1)) + [0, 0.5, 1, 0]
        data = _long(wide, ("m", "s", "h1", "h2"))
        ours = S.rm_anova(data, "f1", "source", "split").iloc[0]
        sm = AnovaRM(data, depvar="f1", subject="split", within=["source"]).fit().anova_table.iloc[0]
        assert ours.statistic == pytest.approx(sm["F Value"]) and ours.p_unc == pytest.approx(sm["Pr > F"])


def test_tukey_rm_known_answer():
    table = S.tukey_rm(_long(KNOWN), "f1", "source", "split").set_index(["A", "B"])
    se = np.sqrt(1.0 / 3)               # sqrt(MS_err / n)
    assert table.loc[("c1", "c3"), "statistic"] == pytest.approx(5 / se)
    assert table.loc[("c1", "c2"), "statistic"] == pytest.approx(1 / se)
    assert table.loc[("c1", "c3"), "p_corr"] == pytest.approx(sps.studentized_range.sf(5 / se, 3, 4))
    assert (table.df2 == 4).all() and (table.df1 == 3).all()
    assert (table.p_corr >= table.p_unc).all()            # family-wise p is never smaller
    assert table.loc[("c1", "c3"), "mean_B"] == pytest.approx(7.0)


def test_tukey_rm_error_term_matches_statsmodels_anova_and_two_groups_equal_paired_t():
    rng = np.random.default_rng(1)
    wide = rng.normal(size=(6, 3)) + rng.normal(size=(6, 1)) + [0, 1, 2]
    data = _long(wide)
    sm = AnovaRM(data, depvar="f1", subject="split", within=["source"]).fit().anova_table.iloc[0]
    ss_cond = 6 * ((wide.mean(0) - wide.mean()) ** 2).sum()
    ms_error = ss_cond / sm["Num DF"] / sm["F Value"]    # MS_error recovered from statsmodels' F
    table = S.tukey_rm(data, "f1", "source", "split").set_index(["A", "B"])
    diff = abs(wide[:, 0].mean() - wide[:, 2].mean())
    assert table.loc[("c1", "c3"), "statistic"] == pytest.approx(diff / np.sqrt(ms_error / 6))
    two = S.tukey_rm(data[data.source != "c3"], "f1", "source", "split").iloc[0]
    assert two.p_corr == pytest.approx(sps.ttest_rel(wide[:, 0], wide[:, 1]).pvalue)


def test_paired_posthoc_bonferroni_and_compare_conditions_recipe():
    rng = np.random.default_rng(2)
    wide = rng.normal(size=(5, 3)) * 0.1 + [0.2, 0.8, 0.9]        # shuffle << model ~ human
    data = _long(wide, ("shuffle", "model", "human"))
    post = S.paired_posthoc(data, "f1", "source", "split", padjust="bonf")
    for _, row in post.iterrows():
        a, b = (wide[:, ["shuffle", "model", "human"].index(x)] for x in (row.A, row.B))
        p = sps.ttest_rel(a, b).pvalue
        assert row.p_unc == pytest.approx(p) and row.p_corr == pytest.approx(min(1, 3 * p))
    recipe = S.compare_conditions(data, "f1", "source", "split")
    assert list(recipe.test) == ["rm_anova", "tukey_rm", "tukey_rm", "tukey_rm"]
    flat = _long(np.array([[1, 2, 1.5], [2, 1, 1.5], [1.5, 1.5, 1.5]]), ("shuffle", "model", "human"))
    recipe = S.compare_conditions(flat, "f1", "source", "split")       # equal condition means: F = 0
    assert list(recipe.test) == ["rm_anova"] and recipe.p_unc.item() > 0.99   # no post hoc
    by = S.compare_conditions(pd.concat([data.assign(behaviour="a"), data.assign(behaviour="b")]), "f1",
                              "source", "split", by="behaviour", posthoc="holm")
    assert set(by.group) == {"a", "b"} and (by.test == "paired_ttest").sum() == 6


def test_paired_ttests_bonferroni_across_behaviours():
    rng = np.random.default_rng(3)
    frames = []
    raw = {}
    for b in ("walk", "groom", "rear"):
        model, shuffle = rng.normal(0.7, 0.1, 5), rng.normal(0.3, 0.1, 5)
        raw[b] = sps.ttest_rel(model, shuffle)
        frames.append(pd.DataFrame({"split": np.arange(5), "source": "model", "f1": model, "behaviour": b}))
        frames.append(pd.DataFrame({"split": np.arange(5), "source": "shuffle", "f1": shuffle, "behaviour": b}))
    data = pd.concat(frames, ignore_index=True)
    table = S.paired_ttests(data, "f1", "source", "split", by="behaviour").set_index("group")
    p_unc = [raw[b].pvalue for b in table.index]
    np.testing.assert_allclose(table.p_unc, p_unc)
    np.testing.assert_allclose(table.statistic, [raw[b].statistic for b in table.index])
    np.testing.assert_allclose(table.p_corr, multipletests(p_unc, method="bonferroni")[1])
    np.testing.assert_allclose(table.p_corr, np.minimum(1, 3 * np.array(p_unc)))
    assert (table.df1 == 4).all() and table.effect_size.notna().all()
    assert S.compare_conditions(data, "f1", "source", "split", by="behaviour").equals(
        S.paired_ttests(data, "f1", "source", "split", by="behaviour"))


def test_oneway_anova_known_answer_statsmodels_and_scipy():
    data = pd.DataFrame({"source": ["m"] * 3 + ["h"] * 3, "value": [1.0, 2, 3, 4, 5, 6]})
    row = S.oneway_anova(data, "value", "source").iloc[0]
    assert row.statistic == pytest.approx(13.5) and (row.df1, row.df2) == (1, 4)   # 13.5 / (4 / 4)
    rng = np.random.default_rng(4)
    data = pd.DataFrame({"source": np.repeat(["model", "h1", "h2", "h3"], 8),
                         "value": rng.normal(size=32) + np.repeat([0, 0.2, 1.5, 0.1], 8)})
    row = S.oneway_anova(data, "value", "source").iloc[0]
    sm = anova_lm(ols("value ~ C(source)", data=data).fit()).iloc[0]
    assert row.statistic == pytest.approx(sm["F"]) and row.p_unc == pytest.approx(sm["PR(>F)"])
    sp = sps.f_oneway(*[g.value for _, g in data.groupby("source")])
    assert row.statistic == pytest.approx(sp.statistic)


def test_tukey_between_agrees_with_statsmodels():
    rng = np.random.default_rng(5)
    data = pd.DataFrame({"source": np.repeat(["a", "b", "c"], [6, 7, 8]),
                         "value": rng.normal(size=21) + np.repeat([0, 1, 2], [6, 7, 8])})
    ours = S.tukey_between(data, "value", "source").set_index(["A", "B"])
    sm = pairwise_tukeyhsd(data.value, data.source)
    sm_table = pd.DataFrame(sm.summary().data[1:], columns=sm.summary().data[0]).set_index(["group1", "group2"])
    for (a, b), row in ours.iterrows():
        ref = sm_table.loc[(a, b)]
        assert row.p_corr == pytest.approx(float(ref["p-adj"]), abs=1e-3)       # statsmodels rounds
        assert row.mean_B - row.mean_A == pytest.approx(float(ref["meandiff"]), abs=1e-4)
    scipy_p = sps.tukey_hsd(*[data.value[data.source == g] for g in "abc"]).pvalue
    assert ours.loc[("a", "c"), "p_corr"] == pytest.approx(scipy_p[0, 2], rel=1e-3)
    table = S.anova_tukey(data, "value", "source")
    assert table.test.iloc[0] == "anova" and (table.test == "tukey_hsd").sum() == 3


def test_pearson_known_answers_and_scipy():
    x = np.arange(10.0)
    assert S.pearson(x, 3 * x + 1).statistic.item() == pytest.approx(1.0)
    assert S.pearson(x, -x).statistic.item() == pytest.approx(-1.0)
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=30), rng.normal(size=30)
    b[3] = np.nan
    row = S.pearson(a, b).iloc[0]
    ref = sps.pearsonr(np.delete(a, 3), np.delete(b, 3))
    assert row.statistic == pytest.approx(ref.statistic) and row.p_unc == pytest.approx(ref.pvalue)
    assert row.n == 29 and row.df1 == 27
    with pytest.raises(S.StatsError, match="3 complete"):
        S.pearson([1, 2], [1, 2])


def test_abs_difference_ttest_figure5():
    rng = np.random.default_rng(7)
    units = [(v, b) for v in ("v1", "v2", "v3") for b in ("walk", "groom")]
    values = {r: rng.random(len(units)) for r in ("h1", "model", "h2", "h3")}
    data = pd.DataFrame([{"video": v, "behaviour": b, "source": r, "percent_time": values[r][i]}
                         for r in values for i, (v, b) in enumerate(units)])
    row, diffs = S.abs_difference_ttest(data, "percent_time", "source", ["video", "behaviour"], "h1", "model",
                                        ["h2", "h3"])
    model_diff = np.abs(values["model"] - values["h1"])
    human = [np.abs(values[o] - values["h1"]) for o in ("h2", "h3")]
    assert len(diffs) == 12 and row.n.item() == 12
    ref = sps.ttest_rel(np.concatenate([model_diff, model_diff]), np.concatenate(human))
    assert row.statistic.item() == pytest.approx(ref.statistic) and row.p_unc.item() == pytest.approx(ref.pvalue)
    row, diffs = S.abs_difference_ttest(data, "percent_time", "source", ["video", "behaviour"], "h1", "model",
                                        ["h2", "h3"], average_others=True)
    ref = sps.ttest_rel(model_diff, (human[0] + human[1]) / 2)
    assert row.n.item() == 6 and row.statistic.item() == pytest.approx(ref.statistic)
    with pytest.raises(S.StatsError, match="rater"):
        S.abs_difference_ttest(data, "percent_time", "source", ["video", "behaviour"], "h1", "model", ["h9"])


def test_bad_tables_raise():
    data = _long(KNOWN)
    with pytest.raises(S.StatsError, match="lacks column"):
        S.rm_anova(data, "auroc", "source", "split")
    with pytest.raises(S.StatsError, match="more than one"):
        S.rm_anova(pd.concat([data, data]), "f1", "source", "split")
    with pytest.raises(S.StatsError, match="fewer than 2 complete"):
        S.rm_anova(data[data.split == 0], "f1", "source", "split")
    with pytest.raises(S.StatsError, match="name the pair"):
        S.paired_ttests(data, "f1", "source", "split")
    with pytest.raises(S.StatsError, match="unknown correction"):
        S.paired_ttests(data, "f1", "source", "split", pair=("c1", "c2"), padjust="magic")
