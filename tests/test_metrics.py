"""deg.metrics against sklearn on random multi-label data; shuffle; 10M-frame timing."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from deg import metrics as M

NAMES = ["background", "a", "b", "c", "d"]


def _random(seed: int, T: int = 2000, K: int = 5, p: float = 0.3, unlabelled: float = 0.0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((T, K)) < p).astype(np.int8)
    preds = np.where(rng.random((T, K)) < 0.7, labels, 1 - labels).astype(np.uint8)   # correlated
    scores = np.clip(labels * 0.3 + rng.random((T, K)) * 0.8, 0, 1)
    if unlabelled:
        labels[rng.random((T, K)) < unlabelled] = -1
    return labels, preds, scores


def _value(table, behaviour, metric):
    row = table[(table.behaviour == behaviour) & (table.metric == metric)]
    assert len(row) == 1
    return row.iloc[0]


def test_confusion_counts_match_direct_counts_with_unlabelled_elements():
    labels, preds, _ = _random(0, unlabelled=0.1)
    conf = M.confusion_counts(labels, preds)
    valid = labels >= 0
    np.testing.assert_array_equal(conf.tp, ((labels == 1) & (preds == 1)).sum(0))
    np.testing.assert_array_equal(conf.fp, ((labels == 0) & (preds == 1)).sum(0))
    np.testing.assert_array_equal(conf.fn, ((labels == 1) & (preds == 0)).sum(0))
    np.testing.assert_array_equal(conf.tn, ((labels == 0) & (preds == 0)).sum(0))
    np.testing.assert_array_equal(conf.n_valid, valid.sum(0))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_per_behaviour_and_macro_equal_sklearn(seed):
    labels, preds, scores = _random(seed)
    table = M.metrics_table(labels, preds, scores, NAMES)
    f1 = f1_score(labels, preds, average=None)
    for k, name in enumerate(NAMES):
        assert _value(table, name, "f1").value == pytest.approx(f1[k])
        assert _value(table, name, "precision").value == pytest.approx(precision_score(labels[:, k], preds[:, k]))
        assert _value(table, name, "recall").value == pytest.approx(recall_score(labels[:, k], preds[:, k]))
        assert _value(table, name, "auroc").value == pytest.approx(roc_auc_score(labels[:, k], scores[:, k]))
        assert _value(table, name, "accuracy").value == pytest.approx(accuracy_score(labels[:, k], preds[:, k]))
    assert _value(table, "macro", "f1").value == pytest.approx(f1_score(labels, preds, average="macro"))
    assert _value(table, "macro", "precision").value == pytest.approx(precision_score(labels, preds, average="macro"))
    assert _value(table, "macro", "recall").value == pytest.approx(recall_score(labels, preds, average="macro"))
    assert _value(table, "macro", "auroc").value == pytest.approx(roc_auc_score(labels, scores, average="macro"))
    # overall accuracy over every element of the (T, K) ethogram (not sklearn's subset accuracy)
    assert _value(table, "macro", "accuracy").value == pytest.approx(accuracy_score(labels.ravel(), preds.ravel()))
    nobg = _value(table, "macro_nobg", "f1")
    assert nobg.value == pytest.approx(f1_score(labels[:, 1:], preds[:, 1:], average="macro"))
    assert nobg.n_averaged == len(NAMES) - 1
    assert _value(table, "macro_nobg", "accuracy").value == pytest.approx(
        accuracy_score(labels[:, 1:].ravel(), preds[:, 1:].ravel()))


def test_absent_behaviour_is_reported_and_left_out_of_means():
    labels, preds, scores = _random(4)
    labels[:, 2] = 0                    # behaviour "b" never occurs in the ground truth
    preds[:, 2] = 0
    preds[:5, 2] = 1                    # ... but the model predicts it on 5 frames
    table = M.metrics_table(labels, preds, scores, NAMES)
    absent = table[table.behaviour == "b"].set_index("metric")
    assert (absent.status == "absent").all()
    assert np.isnan(absent.loc["f1", "value"]) and np.isnan(absent.loc["recall", "value"])
    assert np.isnan(absent.loc["auroc", "value"])
    assert absent.loc["precision", "value"] == 0.0          # 5 false positives: a defined 0
    assert absent.loc["f1", "n_pred"] == 5 and absent.loc["f1", "n_true"] == 0
    present = [0, 1, 3, 4]
    macro = _value(table, "macro", "f1")
    assert macro.n_averaged == 4
    assert macro.value == pytest.approx(f1_score(labels, preds, average="macro", labels=present))
    # sklearn's plain macro would have put a 0 in the mean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert macro.value > f1_score(labels, preds, average="macro")
    assert _value(table, "macro", "auroc").value == pytest.approx(
        np.mean([roc_auc_score(labels[:, k], scores[:, k]) for k in present]))
    # a behaviour neither labelled nor predicted has an undefined precision as well
    preds[:, 2] = 0
    table = M.metrics_table(labels, preds, scores, NAMES)
    assert np.isnan(_value(table, "b", "precision").value)


def test_present_but_never_predicted_has_precision_zero_like_sklearn():
    labels, preds, scores = _random(5)
    preds[:, 3] = 0
    table = M.metrics_table(labels, preds, scores, NAMES)
    row = _value(table, "c", "precision")
    assert row.value == 0.0 and row.n_pred == 0 and row.status == "ok"
    assert _value(table, "macro", "precision").value == pytest.approx(
        precision_score(labels, preds, average="macro", zero_division=0))


def test_unlabelled_elements_are_left_out():
    labels, preds, scores = _random(6, unlabelled=0.2)
    table = M.metrics_table(labels, preds, scores, NAMES)
    for k, name in enumerate(NAMES):
        keep = labels[:, k] >= 0
        y, p, s = labels[keep, k], preds[keep, k], scores[keep, k]
        assert _value(table, name, "f1").value == pytest.approx(f1_score(y, p))
        assert _value(table, name, "auroc").value == pytest.approx(roc_auc_score(y, s))
        assert _value(table, name, "accuracy").n_frames == keep.sum()
    keep = labels >= 0
    assert _value(table, "macro", "accuracy").value == pytest.approx((labels[keep] == preds[keep]).mean())


@pytest.mark.parametrize("prevalence", [0.05, 0.5, 0.95])   # both branches (n1 < n0, n1 > n0)
@pytest.mark.parametrize("decimals", [None, 1, 2])          # continuous scores and heavy ties
def test_auroc_equals_sklearn(prevalence, decimals):
    rng = np.random.default_rng(7)
    labels = (rng.random((3000, 3)) < prevalence).astype(np.int8)
    scores = rng.random((3000, 3)) + 0.2 * labels
    if decimals is not None:
        scores = np.round(scores, decimals)
    expected = [roc_auc_score(labels[:, k], scores[:, k]) for k in range(3)]
    np.testing.assert_allclose(M.auroc(labels, scores), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(M.auroc(labels, scores.astype(np.float32)),
                               [roc_auc_score(labels[:, k], scores[:, k].astype(np.float32)) for k in range(3)],
                               atol=1e-12)


def test_auroc_binary_and_integer_scores_and_signed_zero():
    rng = np.random.default_rng(8)
    labels = (rng.random((500, 2)) < 0.3).astype(np.int8)
    binary = (rng.random((500, 2)) < 0.4).astype(np.uint8)     # a human rater
    np.testing.assert_allclose(M.auroc(labels, binary), [roc_auc_score(labels[:, k], binary[:, k]) for k in range(2)])
    signed = np.where(rng.random((500, 2)) < 0.5, -0.0, 0.0) + binary   # -0.0 ties with 0.0
    np.testing.assert_allclose(M.auroc(labels, signed), M.auroc(labels, binary))
    one_class = np.zeros((10, 2), np.int8)
    assert np.isnan(M.auroc(one_class, rng.random((10, 2)))).all()


def test_ranked_scores_fast_path_equals_auroc():
    labels, _, scores = _random(9)
    scores = np.round(scores, 2)
    np.testing.assert_allclose(M._RankedScores(scores).auroc(labels), M.auroc(labels, scores), atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    labels, preds, scores = _random(10, T=20)
    with pytest.raises(M.MetricsError, match="only -1, 0, 1"):
        M.metrics_table(labels * 2, preds, scores, NAMES)
    with pytest.raises(M.MetricsError, match="shape"):
        M.metrics_table(labels, preds[:-1], scores, NAMES)
    with pytest.raises(M.MetricsError, match="only 0 and 1"):
        M.confusion_counts(labels, preds * 3)
    with pytest.raises(M.MetricsError, match="behaviour names"):
        M.metrics_table(labels, preds, scores, NAMES[:-1])
    with pytest.raises(M.MetricsError, match="NaN"):
        M.auroc(labels, np.full(labels.shape, np.nan))
    with pytest.raises(M.MetricsError, match="integers"):
        M.confusion_counts(labels.astype(float), preds)


# ----------------------------------------------------------------------------- shuffle
def test_circular_shift_keeps_each_videos_label_distribution():
    rng = np.random.default_rng(11)
    labels, _, _ = _random(11, T=300)
    offsets = set()
    for _ in range(50):
        shifted, offset = M.circular_shift(labels, rng)
        assert 1 <= offset < len(labels)
        offsets.add(offset)
        np.testing.assert_array_equal(shifted, np.roll(labels, offset, axis=0))
        np.testing.assert_array_equal(np.sort(shifted, axis=0), np.sort(labels, axis=0))
        np.testing.assert_array_equal(shifted.sum(0), labels.sum(0))
    assert len(offsets) > 30            # offsets really are random


@pytest.mark.parametrize("unlabelled", [0.0, 0.05])      # rank fast path and general path
def test_shuffle_is_the_mean_of_per_repeat_metrics(unlabelled):
    videos = [_random(s, T=T, unlabelled=unlabelled) for s, T in ((12, 400), (13, 250), (14, 333))]
    labels = [v[0] for v in videos]
    preds = [v[1] for v in videos]
    scores = [v[2] for v in videos]
    table = M.shuffle_table(labels, preds, scores, NAMES, n_repeats=7, seed=3)
    rng = np.random.default_rng(3)
    per_repeat = []
    for _ in range(7):
        shifted = np.concatenate([M.circular_shift(lab, rng)[0] for lab in labels])
        per_repeat.append(M.metrics_table(shifted, np.concatenate(preds), np.concatenate(scores), NAMES)["value"])
    np.testing.assert_allclose(table["value"], np.nanmean(np.array(per_repeat), axis=0), atol=1e-12)
    assert (table["n_repeats"] == 7).all()
    again = M.shuffle_table(labels, preds, scores, NAMES, n_repeats=7, seed=3)
    np.testing.assert_array_equal(table["value"], again["value"])      # seeded
    other = M.shuffle_table(labels, preds, scores, NAMES, n_repeats=7, seed=4)
    assert not np.allclose(table["value"], other["value"])


def test_shuffle_breaks_a_perfect_model_to_chance():
    rng = np.random.default_rng(15)
    # bouts of 20 frames, so that labels are autocorrelated like real behaviour
    labels = [np.repeat((rng.random((60, 4)) < 0.3).astype(np.int8), 20, axis=0) for _ in range(3)]
    perfect = [lab.astype(np.uint8) for lab in labels]
    model = M.metrics_table(np.concatenate(labels), np.concatenate(perfect), np.concatenate(perfect).astype(float),
                            NAMES[:4])
    chance = M.shuffle_table(labels, perfect, [p.astype(float) for p in perfect], NAMES[:4], 100, seed=0)
    assert _value(model, "macro_nobg", "f1").value == 1.0
    assert _value(chance, "macro_nobg", "f1").value < 0.5
    assert abs(_value(chance, "macro_nobg", "auroc").value - 0.5) < 0.1


def test_ten_million_frames_in_seconds():
    rng = np.random.default_rng(0)
    T, K = 10_000_000, 10
    labels = (rng.integers(0, 256, (T, K), dtype=np.uint8) < 50).view(np.int8)
    preds = (rng.integers(0, 256, (T, K), dtype=np.uint8) < 50).view(np.uint8)
    scores = rng.random((T, K), dtype=np.float32)
    start = time.perf_counter()
    table = M.metrics_table(labels, preds, scores, [f"b{k}" for k in range(K)])
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"metrics on 10M x 10 took {elapsed:.1f} s"
    assert _value(table, "macro", "auroc").value == pytest.approx(0.5, abs=0.01)
    assert _value(table, "b0", "f1").n_frames == T
