"""deg.figs.pose: the methods table's means, SEMs, chance and human columns, and the paired tests."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from deg.figs import pose as fp


def _rows(method, split, f1, acc, chance, human):
    base = dict(dataset="d", preset=method, split=f"split{split}", video="all", truth="h1", n_videos=2)
    out = []
    for source, f, a in (("model", f1, acc), ("shuffle", chance, 0.5), ("h2", human, 0.9)):
        out.append(dict(base, source=source, behaviour="macro_nobg", metric="f1", value=f))
        out.append(dict(base, source=source, behaviour="macro_nobg", metric="auroc", value=f))
        out.append(dict(base, source=source, behaviour="macro", metric="accuracy", value=a))
    return out


def test_methods_table_and_paired_tests():
    f1 = {"DEG_f": [0.6, 0.7, 0.65], "pose_mlp": [0.5, 0.55, 0.52]}
    rows = [r for m, values in f1.items() for k, v in enumerate(values)
            for r in _rows(m, k, v, 0.8 + 0.01 * k, 0.2, 0.9)]
    metrics = pd.DataFrame(rows)
    table = fp.methods_table(metrics).set_index("method")
    assert table.loc["DEG_f", "f1"] == pytest.approx(np.mean(f1["DEG_f"]))
    assert table.loc["DEG_f", "f1_sem"] == pytest.approx(stats.sem(f1["DEG_f"]))
    assert table.loc["pose_mlp", "chance_f1"] == pytest.approx(0.2) and table.loc["pose_mlp", "human_f1"] == 0.9
    assert table.loc["pose_mlp", "accuracy"] == pytest.approx(0.81) and table.loc["pose_mlp", "n_splits"] == 3
    tests = fp.method_tests(metrics, {"d": "DEG_f"})
    assert len(tests) == 1 and tests.B.item() == "pose_mlp"
    assert tests.p_unc.item() == pytest.approx(stats.ttest_rel(f1["DEG_f"], f1["pose_mlp"]).pvalue)
    one = fp.method_tests(metrics[metrics.split == "split0"], {"d": "DEG_f"})
    assert "no test" in one.note.item()


def test_cooccurrence_matrix_is_column_normalised():
    co = pd.DataFrame({"cluster": [0, 0, 1, 1], "behaviour": ["a", "b", "a", "b"], "frames": [3, 0, 1, 4],
                       "assigned": [True, False, False, True]})
    frac, assigned, clusters = fp.cooccurrence_matrix(co, ["a", "b"])
    np.testing.assert_allclose(frac, [[0.75, 0.0], [0.25, 1.0]])
    assert assigned.tolist() == [[True, False], [False, True]] and clusters == [0, 1]
