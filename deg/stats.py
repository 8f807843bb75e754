"""Statistical tests of the paper, on long tables, returning one tidy row per test.

Paper (Methods, "Statistics"; Figure 3-5 legends): subjects are random splits of the data.

* Several groups (e.g. shuffle, model, human for one behaviour): one-way **repeated-measures
  ANOVA**, subjects = splits; if significant, **Tukey's HSD** post hoc (:func:`compare_conditions`,
  :func:`rm_anova`, :func:`tukey_rm`).
* Two groups (model vs shuffle without human labels): **paired t-tests with Bonferroni
  correction** across the behaviours of a panel (:func:`paired_ttests`).
* Figure 4A-C (per video): **one-way ANOVA with Tukey's** multiple comparison test
  (:func:`oneway_anova`, :func:`tukey_between`).
* Figure 5: **Pearson's r** (:func:`pearson`) and a **paired t-test of |model - human 1| vs
  |human 1 - humans 2, 3|** (:func:`abs_difference_ttest`).

Every function returns a DataFrame with :data:`COLUMNS`: the library's statistic and its name,
degrees of freedom, uncorrected and corrected p-values, the correction, the effect size and
its name, and n. pingouin (>= 0.6) computes the tests; the unit tests check it against
statsmodels / scipy where both compute the same quantity.
"""
from __future__ import annotations

import contextlib
import itertools
import warnings
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pingouin as pg
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

COLUMNS: list[str] = ["test", "group", "A", "B", "statistic_name", "statistic", "df1", "df2",
                      "p_unc", "p_corr", "correction", "effect_size_name", "effect_size", "n",
                      "mean_A", "mean_B"]
_PADJUST = {"bonf": "bonferroni", "bonferroni": "bonferroni", "holm": "holm", "none": None,
            "fdr_bh": "fdr_bh"}


class StatsError(ValueError):
    """A table that cannot be tested as asked (missing columns, too few subjects, ...)."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence pandas' deprecation notices raised inside pingouin (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        yield


def _row(**values) -> dict:
    row = dict.fromkeys(COLUMNS, np.nan)
    row.update(values)
    return row


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def _need(data: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise StatsError(f"table lacks column(s) {missing}; has {list(data.columns)}")


def _wide(data: pd.DataFrame, dv: str, within: str, subject: str) -> pd.DataFrame:
    """subjects x conditions, complete subjects only (listwise deletion, as pingouin does)."""
    _need(data, [dv, within, subject])
    if data.duplicated([subject, within]).any():
        raise StatsError(f"more than one {dv!r} value per ({subject!r}, {within!r}); average first")
    wide = data.pivot(index=subject, columns=within, values=dv).dropna()
    if wide.shape[0] < 2:
        raise StatsError(f"fewer than 2 complete {subject!r} with every level of {within!r}")
    if wide.shape[1] < 2:
        raise StatsError(f"{within!r} has fewer than 2 levels")
    return wide


# --------------------------------------------------------------------------------------
# Repeated measures (subjects = splits)
# --------------------------------------------------------------------------------------
def rm_anova(data: pd.DataFrame, dv: str, within: str, subject: str, group: str | None = None) -> pd.DataFrame:
    """One-way repeated-measures ANOVA (pingouin.rm_anova); one row.

    ``p_unc`` is the uncorrected F-test p-value (the paper's); ``p_corr`` the Greenhouse-Geisser
    corrected one (sphericity). Effect size: generalised eta squared (``ng2``).
    """
    wide = _wide(data, dv, within, subject)
    long = wide.reset_index().melt(id_vars=subject, var_name=within, value_name=dv)
    with _quiet():
        aov = pg.rm_anova(data=long, dv=dv, within=within, subject=subject, detailed=True, correction=True)
    effect = aov.iloc[0]
    error = aov.iloc[1]
    return _frame([_row(test="rm_anova", group=group, statistic_name="F", statistic=float(effect["F"]),
                        df1=float(effect["DF"]), df2=float(error["DF"]), p_unc=float(effect["p_unc"]),
                        p_corr=float(effect.get("p_GG_corr", effect["p_unc"])),
                        correction="greenhouse-geisser", effect_size_name="ng2",
                        effect_size=float(effect["ng2"]), n=int(wide.shape[0]))])


def tukey_rm(data: pd.DataFrame, dv: str, within: str, subject: str, group: str | None = None) -> pd.DataFrame:
    """Tukey's HSD after a repeated-measures ANOVA, using that ANOVA's error term.

    This is the post hoc test the paper names ("post-hoc Tukey's honestly significant difference
    test", after the RM ANOVA with subjects = splits). With a repeated-measures design the
    standard error of a difference comes from the subject x condition residual:
    ``q = |mean_A - mean_B| / sqrt(MS_error / n)`` on the studentized range distribution with
    k groups and the ANOVA's error df (as GraphPad Prism and other RM-aware packages do).
    ``p_corr`` is Tukey's family-wise p; ``p_unc`` the unadjusted p of the same contrast (t =
    q / sqrt(2), error df). For two groups ``p_corr`` equals a paired t-test's p-value.
    Effect size: Hedges' g for paired samples (pingouin.compute_effsize).
    """
    wide = _wide(data, dv, within, subject)
    n, k = wide.shape
    values = wide.to_numpy(dtype=np.float64)
    resid = values - values.mean(axis=1, keepdims=True) - values.mean(axis=0, keepdims=True) + values.mean()
    df_error = (n - 1) * (k - 1)
    ms_error = float((resid ** 2).sum() / df_error)
    se = np.sqrt(ms_error / n)
    rows = []
    for a, b in itertools.combinations(wide.columns, 2):
        diff = float(wide[a].mean() - wide[b].mean())
        q = abs(diff) / se if se > 0 else (np.inf if diff else 0.0)
        p_tukey = float(sps.studentized_range.sf(q, k, df_error)) if np.isfinite(q) else 0.0
        p_lsd = float(2 * sps.t.sf(q / np.sqrt(2), df_error)) if np.isfinite(q) else 0.0
        rows.append(_row(test="tukey_rm", group=group, A=a, B=b, statistic_name="q", statistic=q,
                         df1=float(k), df2=float(df_error), p_unc=p_lsd, p_corr=min(p_tukey, 1.0),
                         correction="tukey", effect_size_name="hedges",
                         effect_size=float(pg.compute_effsize(wide[a], wide[b], paired=True, eftype="hedges")),
                         n=int(n), mean_A=float(wide[a].mean()), mean_B=float(wide[b].mean())))
    return _frame(rows)


def paired_posthoc(data: pd.DataFrame, dv: str, within: str, subject: str, padjust: str = "bonf",
                   group: str | None = None) -> pd.DataFrame:
    """Pairwise paired t-tests with a multiple-comparison correction (pingouin.pairwise_tests).

    Not the paper's post hoc (that is :func:`tukey_rm`); offered because Tukey's HSD assumes
    equal variances of all differences (sphericity), which a handful of splits cannot check,
    while paired t-tests with Bonferroni/Holm correction make no such assumption. Figures use
    Tukey by default and may show these as a robustness check.
    """
    wide = _wide(data, dv, within, subject)
    long = wide.reset_index().melt(id_vars=subject, var_name=within, value_name=dv)
    with _quiet():
        res = pg.pairwise_tests(data=long, dv=dv, within=within, subject=subject, parametric=True,
                                padjust=padjust, effsize="hedges")
    rows = []
    for _, r in res.iterrows():
        rows.append(_row(test="paired_ttest", group=group, A=r["A"], B=r["B"], statistic_name="T",
                         statistic=float(r["T"]), df1=float(r["dof"]), p_unc=float(r["p_unc"]),
                         p_corr=float(r.get("p_corr", r["p_unc"])), correction=padjust,
                         effect_size_name="hedges", effect_size=float(r["hedges"]), n=int(wide.shape[0]),
                         mean_A=float(wide[r["A"]].mean()), mean_B=float(wide[r["B"]].mean())))
    return _frame(rows)


def compare_conditions(data: pd.DataFrame, dv: str, within: str, subject: str, by: str | None = None,
                       alpha: float = 0.05, posthoc: str = "tukey") -> pd.DataFrame:
    """The paper's recipe, per group of ``by`` (e.g. per behaviour).

    More than two conditions: RM ANOVA, then (if ``p_unc < alpha``) post hoc comparisons,
    ``posthoc="tukey"`` (the paper's, :func:`tukey_rm`) or ``"bonf"``/``"holm"``
    (:func:`paired_posthoc`). Two conditions: a paired t-test per group, Bonferroni-corrected
    across the groups (:func:`paired_ttests`).
    """
    _need(data, [dv, within, subject] + ([by] if by else []))
    if data[within].nunique() == 2:
        return paired_ttests(data, dv, within, subject, by=by, padjust="bonf")
    groups = data.groupby(by, sort=False) if by else [(None, data)]
    frames = []
    for name, part in groups:
        anova = rm_anova(part, dv, within, subject, group=name)
        frames.append(anova)
        if anova["p_unc"].iloc[0] < alpha:
            if posthoc == "tukey":
                frames.append(tukey_rm(part, dv, within, subject, group=name))
            else:
                frames.append(paired_posthoc(part, dv, within, subject, padjust=posthoc, group=name))
    return pd.concat(frames, ignore_index=True)


def paired_ttests(data: pd.DataFrame, dv: str, within: str, subject: str, by: str | None = None,
                  padjust: str = "bonf", pair: tuple[str, str] | None = None) -> pd.DataFrame:
    """Paired t-test of two conditions of ``within`` per group of ``by``, corrected across groups.

    ``pair`` picks the two conditions (default: the two levels present). ``p_corr`` applies
    ``padjust`` (Bonferroni by default, as the paper) over all rows of the returned table.
    """
    _need(data, [dv, within, subject] + ([by] if by else []))
    if pair is None:
        levels = list(pd.unique(data[within]))
        if len(levels) != 2:
            raise StatsError(f"{within!r} has {len(levels)} levels {levels}; name the pair to compare")
        pair = (levels[0], levels[1])
    groups = data.groupby(by, sort=False) if by else [(None, data)]
    rows = []
    for name, part in groups:
        wide = _wide(part[part[within].isin(pair)], dv, within, subject)
        a, b = wide[pair[0]], wide[pair[1]]
        res = pg.ttest(a, b, paired=True)
        rows.append(_row(test="paired_ttest", group=name, A=pair[0], B=pair[1], statistic_name="T",
                         statistic=float(res["T"].iloc[0]), df1=float(res["dof"].iloc[0]),
                         p_unc=float(res["p_val"].iloc[0]), correction=padjust,
                         effect_size_name="hedges",
                         effect_size=float(pg.compute_effsize(a, b, paired=True, eftype="hedges")),
                         n=int(wide.shape[0]), mean_A=float(a.mean()), mean_B=float(b.mean())))
    out = _frame(rows)
    return _adjust(out, padjust)


def _adjust(table: pd.DataFrame, padjust: str) -> pd.DataFrame:
    if padjust not in _PADJUST:
        raise StatsError(f"unknown correction {padjust!r}; known: {list(_PADJUST)}")
    method = _PADJUST[padjust]
    if method is None or table.empty:
        table["p_corr"] = table["p_unc"]
    else:
        table["p_corr"] = multipletests(table["p_unc"].to_numpy(dtype=float), method=method)[1]
    return table


# --------------------------------------------------------------------------------------
# Independent groups (Figure 4A-C: videos)
# --------------------------------------------------------------------------------------
def oneway_anova(data: pd.DataFrame, dv: str, between: str, group: str | None = None) -> pd.DataFrame:
    """One-way ANOVA (pingouin.anova); one row; effect size partial eta squared (``np2``)."""
    _need(data, [dv, between])
    clean = data[[dv, between]].dropna()
    if clean[between].nunique() < 2:
        raise StatsError(f"{between!r} has fewer than 2 groups with data")
    with _quiet():
        aov = pg.anova(data=clean, dv=dv, between=between, detailed=True)
    effect, error = aov.iloc[0], aov.iloc[1]
    return _frame([_row(test="anova", group=group, statistic_name="F", statistic=float(effect["F"]),
                        df1=float(effect["DF"]), df2=float(error["DF"]), p_unc=float(effect["p_unc"]),
                        p_corr=float(effect["p_unc"]), correction="none", effect_size_name="np2",
                        effect_size=float(effect["np2"]), n=int(len(clean)))])


def tukey_between(data: pd.DataFrame, dv: str, between: str, group: str | None = None) -> pd.DataFrame:
    """Tukey's HSD for independent groups (pingouin.pairwise_tukey, Tukey-Kramer).

    ``p_corr`` is Tukey's p; ``p_unc`` the unadjusted two-sided t p-value of the same contrast
    (pooled within-group variance, df = N - k). Effect size: Hedges' g.
    """
    _need(data, [dv, between])
    clean = data[[dv, between]].dropna()
    with _quiet():
        res = pg.pairwise_tukey(data=clean, dv=dv, between=between, effsize="hedges")
    df_within = len(clean) - clean[between].nunique()
    rows = []
    for _, r in res.iterrows():
        rows.append(_row(test="tukey_hsd", group=group, A=r["A"], B=r["B"], statistic_name="T",
                         statistic=float(r["T"]), df1=float(clean[between].nunique()), df2=float(df_within),
                         p_unc=float(2 * sps.t.sf(abs(r["T"]), df_within)), p_corr=float(r["p_tukey"]),
                         correction="tukey", effect_size_name="hedges", effect_size=float(r["hedges"]),
                         n=int(len(clean)), mean_A=float(r["mean_A"]), mean_B=float(r["mean_B"])))
    return _frame(rows)


def anova_tukey(data: pd.DataFrame, dv: str, between: str, by: str | None = None,
                alpha: float = 0.05) -> pd.DataFrame:
    """Figure 4A-C: one-way ANOVA per group of ``by``; Tukey's HSD rows when ``p_unc < alpha``."""
    groups = data.groupby(by, sort=False) if by else [(None, data)]
    frames = []
    for name, part in groups:
        anova = oneway_anova(part, dv, between, group=name)
        frames.append(anova)
        if anova["p_unc"].iloc[0] < alpha:
            frames.append(tukey_between(part, dv, between, group=name))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------
# Correlation and Figure 5's difference test
# --------------------------------------------------------------------------------------
def pearson(x: Sequence[float], y: Sequence[float], group: str | None = None) -> pd.DataFrame:
    """Pearson's r (pingouin.corr); df1 = n - 2; pairs with a NaN are dropped."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise StatsError(f"x and y differ in length: {x.shape} vs {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 3:
        raise StatsError(f"Pearson correlation needs >= 3 complete pairs, got {int(keep.sum())}")
    res = pg.corr(x[keep], y[keep], method="pearson")
    r = float(res["r"].iloc[0])
    return _frame([_row(test="pearson", group=group, statistic_name="r", statistic=r,
                        df1=float(keep.sum() - 2), p_unc=float(res["p_val"].iloc[0]),
                        p_corr=float(res["p_val"].iloc[0]), correction="none",
                        effect_size_name="r", effect_size=r, n=int(keep.sum()))])


def abs_difference_ttest(data: pd.DataFrame, value: str, rater: str, units: Sequence[str],
                         reference: str, model: str, others: Sequence[str],
                         average_others: bool = False, group: str | None = None
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 5: paired t-test of |model - reference| vs |other human - reference|.

    data: long table with one ``value`` per (units..., rater), e.g. units = (video, behaviour),
    rater = source column with ``reference`` (Human 1), ``model`` and ``others`` (Humans 2, 3).
    ``average_others=False`` (Figure 5A, B): one pair per (unit, other human), the model's
    difference repeated; ``True`` (Figure 5C-E, "Humans 2 and 3 were averaged"): one pair per
    unit with the others' differences averaged. Returns (test row, differences table with
    columns units..., ``other``, ``model_diff``, ``human_diff``).
    """
    units = list(units)
    _need(data, units + [rater, value])
    raters = [reference, model, *others]
    part = data[data[rater].isin(raters)]
    if part.duplicated(units + [rater]).any():
        raise StatsError(f"more than one {value!r} per ({', '.join(units)}, {rater})")
    wide = part.pivot_table(index=units, columns=rater, values=value, aggfunc="first")
    missing = [r for r in raters if r not in wide.columns]
    if missing:
        raise StatsError(f"no {value!r} values for rater(s) {missing}")
    model_diff = (wide[model] - wide[reference]).abs()
    human = pd.DataFrame({o: (wide[o] - wide[reference]).abs() for o in others})
    if average_others:
        diffs = pd.DataFrame({"other": "+".join(others), "model_diff": model_diff,
                              "human_diff": human.mean(axis=1, skipna=False)})
    else:
        diffs = pd.concat([pd.DataFrame({"other": o, "model_diff": model_diff, "human_diff": human[o]})
                           for o in others])
    diffs = diffs.dropna().reset_index()
    if len(diffs) < 2:
        raise StatsError("fewer than 2 complete (model, human) difference pairs")
    res = pg.ttest(diffs["model_diff"], diffs["human_diff"], paired=True)
    row = _row(test="paired_ttest_absdiff", group=group, A=f"|{model}-{reference}|",
               B=f"|{'/'.join(others)}-{reference}|", statistic_name="T", statistic=float(res["T"].iloc[0]),
               df1=float(res["dof"].iloc[0]), p_unc=float(res["p_val"].iloc[0]),
               p_corr=float(res["p_val"].iloc[0]), correction="none", effect_size_name="hedges",
               effect_size=float(pg.compute_effsize(diffs["model_diff"], diffs["human_diff"],
                                                    paired=True, eftype="hedges")),
               n=int(len(diffs)), mean_A=float(diffs["model_diff"].mean()),
               mean_B=float(diffs["human_diff"].mean()))
    return _frame([row]), diffs
