"""Checks of the course's exercises: each says whether a student's answer is right, and hints when not.

Every check returns a :class:`CheckResult` and prints one line, ``[check <id>] PASS: ...`` or
``[check <id>] NOT YET: <hint>``, which the tests read from executed notebooks. The reference
answers are computed here from the lesson's own data with the package's functions, never stored,
so a check follows the data it is given. ``strict=True`` (the solutions notebooks run that way)
turns a failed check into :class:`ExerciseNotPassed`; the student's notebooks run on after a miss.

An unanswered exercise (the student notebook's stub leaves ``None``, or a function that raises
``NotImplementedError``) always fails with the hint "not answered yet".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from deg import bouts, metrics


@dataclass(frozen=True)
class CheckResult:
    exercise: str
    ok: bool
    message: str

    def __str__(self) -> str:
        return f"[check {self.exercise}] {'PASS' if self.ok else 'NOT YET'}: {self.message}"


class ExerciseNotPassed(AssertionError):
    """A check failed while checks are strict (the solutions notebooks)."""


def _report(exercise: str, ok: bool, message: str, strict: bool) -> CheckResult:
    result = CheckResult(exercise, bool(ok), message)
    print(result, flush=True)
    if strict and not result.ok:
        raise ExerciseNotPassed(str(result))
    return result


def _missing(exercise: str, strict: bool, *answers: Any) -> CheckResult | None:
    if any(a is None for a in answers):
        return _report(exercise, False, "not answered yet: replace the None in the cell above", strict)
    return None


def _number(x: Any) -> float | None:
    try:
        value = float(np.asarray(x, dtype=float).reshape(()))
    except (TypeError, ValueError):
        return None
    return value


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol * max(1.0, abs(b))


def _call(fn: Callable, *args):
    """(value, None) or (None, error text) of a student's function."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, "not answered yet: write the function's body"
    except Exception as exc:                      # a student's bug: show it as the hint
        return None, f"your function raised {type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------ lesson 1
def bout_count(answer, labels: np.ndarray, column: int, name: str, strict: bool = False) -> CheckResult:
    """1.1: number of bouts of behaviour ``column`` in ``labels`` (T, K)."""
    ex = "1.1"
    if (r := _missing(ex, strict, answer)):
        return r
    expected = len(bouts.find_bouts(labels[:, column])[1])
    value = _number(answer)
    if value == expected:
        return _report(ex, True, f"{expected} bouts of {name}", strict)
    frames = int((labels[:, column] == 1).sum())
    hint = ("that is the number of frames, not of bouts: a bout is a run of consecutive 1s"
            if value == frames else "a bout is a run of consecutive frames with a 1; "
            "count the starts (deg.bouts.find_bouts returns behaviour, start, stop)")
    return _report(ex, False, f"got {answer}; {hint}", strict)


def f1_by_hand(answer, truth: np.ndarray, other: np.ndarray, column: int, strict: bool = False) -> CheckResult:
    """1.2: F1 of ``other`` against ``truth`` (both (T, K)) for one behaviour, from TP, FP, FN."""
    ex = "1.2"
    if (r := _missing(ex, strict, answer)):
        return r
    table = metrics.metrics_table(truth[:, [column]], other[:, [column]], None, ["b"])
    row = table[(table.behaviour == "b") & (table.metric == "f1")]
    expected = float(row.value.iloc[0])
    acc = float(table[(table.behaviour == "b") & (table.metric == "accuracy")].value.iloc[0])
    value = _number(answer)
    if value is not None and _close(value, expected, 1e-4):
        return _report(ex, True, f"F1 = {expected:.3f} (deg.metrics agrees)", strict)
    hint = ("that is the accuracy; F1 = 2 TP / (2 TP + FP + FN) ignores the true negatives"
            if value is not None and _close(value, acc, 1e-4) else
            "F1 = 2 TP / (2 TP + FP + FN); TP: both 1, FP: other 1 and truth 0, FN: other 0 and truth 1")
    return _report(ex, False, f"got {answer}; {hint}", strict)


def constant_predictor(accuracy, f1, column_labels: np.ndarray, name: str, strict: bool = False) -> CheckResult:
    """1.3: accuracy and F1 of predicting 'never' for one behaviour ((T,) labels)."""
    ex = "1.3"
    if (r := _missing(ex, strict, accuracy, f1)):
        return r
    labelled = column_labels >= 0
    exp_acc = float((column_labels[labelled] == 0).mean())
    a, f = _number(accuracy), _number(f1)
    if a is None or not _close(a, exp_acc, 1e-4):
        return _report(ex, False, f"accuracy {accuracy} is off: the share of frames where {name} is "
                                  "absent is the accuracy of never predicting it", strict)
    if f is None or not _close(f, 0.0):
        return _report(ex, False, f"F1 {f1} is off: with no predicted positives TP = 0, so F1 = 0", strict)
    return _report(ex, True, f"accuracy {exp_acc:.3f} but F1 0: accuracy rewards ignoring a rare behaviour",
                   strict)


# ------------------------------------------------------------------------------ lesson 2
def motion_energy(answer, frames: np.ndarray, strict: bool = False) -> CheckResult:
    """2.1: mean absolute grey-level difference between consecutive frames, (T-1,)."""
    ex = "2.1"
    if (r := _missing(ex, strict, answer)):
        return r
    expected = np.abs(np.diff(frames.astype(np.float64), axis=0)).mean(axis=tuple(range(1, frames.ndim)))
    got = np.asarray(answer, dtype=float)
    if got.shape != expected.shape:
        return _report(ex, False, f"shape {got.shape}, expected {expected.shape}: one value per pair of "
                                  "consecutive frames (np.diff along time, then a mean over the pixels)", strict)
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-6):
        hint = ("convert to float before subtracting: uint8 differences wrap around"
                if np.allclose(got, np.diff(frames, axis=0).mean(axis=tuple(range(1, frames.ndim))), atol=1e-6)
                else "take the absolute value of np.diff(frames, axis=0) and average over pixels and channels")
        return _report(ex, False, hint, strict)
    return _report(ex, True, "motion energy per frame pair", strict)


def shift_flow(answer, frame: torch.Tensor, shifted: torch.Tensor, shift: int, strict: bool = False) -> CheckResult:
    """2.2: a flow (1, 2, H, W) with which ``warp(shifted, flow)`` reconstructs ``frame``."""
    from deg.models.flow import warp

    ex = "2.2"
    if (r := _missing(ex, strict, answer)):
        return r
    flow = torch.as_tensor(answer, dtype=torch.float32)
    h, w = frame.shape[-2:]
    if tuple(flow.shape) != (1, 2, h, w):
        return _report(ex, False, f"flow shape {tuple(flow.shape)}, expected (1, 2, {h}, {w}): "
                                  "channel 0 is x (columns), channel 1 is y (rows)", strict)
    m = abs(shift) + 1                     # the border columns have no source pixel
    err = (warp(shifted, flow) - frame)[..., m:-m].abs().mean().item()
    zero = (shifted - frame)[..., m:-m].abs().mean().item()
    if err < 0.05 * zero:
        return _report(ex, True, f"reconstruction error {err:.4f} (zero flow: {zero:.4f})", strict)
    return _report(ex, False, f"reconstruction error {err:.4f} vs {zero:.4f} with zero flow; warp reads the "
                              "next frame at (x + flow_x, y + flow_y): which x offset finds the pixel that "
                              f"moved {shift} px to the right?", strict)


def ssim_pair(ssim_self, ssim_shifted, frame: torch.Tensor, shifted: torch.Tensor, strict: bool = False) -> CheckResult:
    """2.3: SSIM of a frame with itself and with its shifted copy (deg.losses.ssim)."""
    from deg.losses import ssim

    ex = "2.3"
    if (r := _missing(ex, strict, ssim_self, ssim_shifted)):
        return r
    a, b = _number(ssim_self), _number(ssim_shifted)
    expected = ssim(frame, shifted).item()
    if a is None or not _close(a, 1.0, 1e-3):
        return _report(ex, False, f"SSIM of a frame with itself should be 1, got {ssim_self}", strict)
    if b is None or not _close(b, expected, 1e-3):
        return _report(ex, False, f"got {ssim_shifted}; call deg.losses.ssim(frame, shifted) on (N, C, H, W) "
                                  "tensors in [0, 1]", strict)
    return _report(ex, True, f"SSIM 1 with itself, {expected:.3f} with the shifted copy", strict)


# ------------------------------------------------------------------------------ lesson 3
def pos_weight(answer, labels: np.ndarray, beta: float, strict: bool = False) -> CheckResult:
    """3.1: (K,) positive weights (negatives / positives) ** beta from training labels (T, K)."""
    from deg.losses import pos_weight_from_counts

    ex = "3.1"
    if (r := _missing(ex, strict, answer)):
        return r
    pos, neg = (labels == 1).sum(0), (labels == 0).sum(0)
    expected = pos_weight_from_counts(pos, neg, beta=beta).numpy()
    got = np.asarray(answer, dtype=float).reshape(-1)
    if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-4):
        return _report(ex, True, "weights " + ", ".join(f"{w:.2f}" for w in expected), strict)
    if got.shape == expected.shape and np.allclose(got, ((pos + (pos == 0)) / (neg + (neg == 0))) ** beta, rtol=1e-4):
        return _report(ex, False, "upside down: rare behaviours need the LARGER weight (negatives / positives)",
                       strict)
    return _report(ex, False, f"expected one weight per column ({len(expected)}): count positives (==1) and "
                              f"negatives (==0) per column, w = (negatives / positives) ** {beta}", strict)


def bce_by_hand(answer, logits: torch.Tensor, targets: torch.Tensor, strict: bool = False) -> CheckResult:
    """3.2: mean binary cross-entropy of ``logits`` against 0/1 ``targets``."""
    ex = "3.2"
    if (r := _missing(ex, strict, answer)):
        return r
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets).item()
    value = _number(answer.detach() if isinstance(answer, torch.Tensor) else answer)
    if value is not None and _close(value, expected, 1e-4):
        return _report(ex, True, f"BCE = {expected:.4f}, which focal_loss(gamma=0, smoothing=0) also gives", strict)
    return _report(ex, False, f"got {answer}, expected about {expected:.3f} is not it either way; "
                              "p = sigmoid(logit), loss = -[y log p + (1 - y) log(1 - p)], averaged", strict)


def best_stream(answer, f1_by_stream: dict[str, float], behaviour: str, strict: bool = False) -> CheckResult:
    """3.3: the stream (a key of ``f1_by_stream``) with the higher test F1 for ``behaviour``."""
    ex = "3.3"
    if (r := _missing(ex, strict, answer)):
        return r
    expected = max(f1_by_stream, key=lambda k: f1_by_stream[k])
    if answer == expected:
        return _report(ex, True, f"{expected} (F1 " + ", ".join(f"{k} {v:.2f}" for k, v in f1_by_stream.items())
                       + f") for {behaviour}", strict)
    return _report(ex, False, f"{answer!r} is not the stream with the higher F1 in the table above; "
                              f"answer one of {sorted(f1_by_stream)}", strict)


# ------------------------------------------------------------------------------ lesson 4
def receptive_field(answer, measured: int, strict: bool = False) -> CheckResult:
    """4.1: frames one output of the TGM model sees, compared with the impulse response measured."""
    ex = "4.1"
    if (r := _missing(ex, strict, answer)):
        return r
    if _number(answer) == measured:
        return _report(ex, True, f"{measured} frames", strict)
    return _report(ex, False, f"got {answer}, the impulse response spans {measured} frames; each layer "
                              "adds L // 2 frames on each side, and the layers stack", strict)


def flicker_bouts(answer, preds: np.ndarray, column: int, strict: bool = False) -> CheckResult:
    """4.2: bouts of ``column`` in frame-by-frame predictions (T, K)."""
    ex = "4.2"
    if (r := _missing(ex, strict, answer)):
        return r
    expected = len(bouts.find_bouts(preds[:, column])[1])
    if _number(answer) == expected:
        return _report(ex, True, f"{expected} bouts: flicker splits each real bout into many", strict)
    return _report(ex, False, f"got {answer}; count runs of 1s in the frame-wise predictions of that column "
                              "(deg.bouts.find_bouts)", strict)


def moving_average(fn, strict: bool = False) -> CheckResult:
    """4.3: ``fn(x, width)`` = centred moving average of a 1-D array, zero padded, same length."""
    ex = "4.3"
    rng = np.random.default_rng(4)
    x = rng.normal(size=40)
    cases = [(x, 5), (x, 1), (np.arange(7.0), 3)]
    if fn is None:
        return _report(ex, False, "not answered yet: write the function's body", strict)
    for data, width in cases:
        expected = np.convolve(data, np.ones(width) / width, mode="same")
        got, err = _call(fn, data, width)
        if err:
            return _report(ex, False, err, strict)
        got = np.asarray(got, dtype=float)
        if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-9):
            return _report(ex, False, f"wrong for width {width}: keep the length (np.convolve(..., mode='same')) "
                                      "and divide by the width", strict)
    return _report(ex, True, "a fixed, hand-made temporal filter; TGM learns its filters", strict)


# ------------------------------------------------------------------------------ lesson 5
def video_split(split, videos: Sequence[str], labels_by_video: dict[str, np.ndarray], strict: bool = False) -> CheckResult:
    """5.1: a split by video: disjoint subsets covering every video, every behaviour in every subset."""
    ex = "5.1"
    if (r := _missing(ex, strict, split)):
        return r
    try:
        subsets = {"train": list(split.train), "val": list(split.val), "test": list(split.test)}
    except AttributeError:
        return _report(ex, False, "expected a deg.data.splits.Split (use deg.data.splits.random_split)", strict)
    names = [v for s in subsets.values() for v in s]
    if len(names) != len(set(names)):
        return _report(ex, False, "a video is in two subsets: its neighbouring frames would leak into the test",
                       strict)
    if sorted(names) != sorted(videos):
        return _report(ex, False, "the subsets must hold every video exactly once", strict)
    present = np.stack([(labels_by_video[v] == 1).any(0) for v in videos]).any(0)
    for name, subset in subsets.items():
        if subset:
            has = np.stack([(labels_by_video[v] == 1).any(0) for v in subset]).any(0)
            if (present & ~has)[1:].any():
                return _report(ex, False, f"the {name} subset misses a behaviour; random_split retries "
                                          "until every behaviour is everywhere", strict)
    return _report(ex, True, ", ".join(f"{k} {len(v)}" for k, v in subsets.items()) + " videos", strict)


def val_thresholds(answer, val_probs: np.ndarray, val_labels: np.ndarray, test_probs: np.ndarray,
                   test_labels: np.ndarray, strict: bool = False) -> CheckResult:
    """5.2: per-behaviour thresholds chosen on the validation set only."""
    from deg.postprocess import best_thresholds

    ex = "5.2"
    if (r := _missing(ex, strict, answer)):
        return r
    got = np.asarray(answer, dtype=float).reshape(-1)
    expected = best_thresholds(val_probs, val_labels)
    if got.shape == expected.shape and np.allclose(got, expected):
        return _report(ex, True, "thresholds from validation: the test set stays unseen", strict)
    peeked = best_thresholds(test_probs, test_labels)
    if got.shape == peeked.shape and np.allclose(got, peeked):
        return _report(ex, False, "these come from the TEST set: its F1 would then be optimistic; "
                                  "use the validation probabilities and labels", strict)
    return _report(ex, False, "use deg.postprocess.best_thresholds(val_probs, val_labels)", strict)


def n_subjects(answer, n_splits: int, n_frames: int, strict: bool = False) -> CheckResult:
    """5.3: the number of subjects (independent repeats) of the repeated-measures test."""
    ex = "5.3"
    if (r := _missing(ex, strict, answer)):
        return r
    if _number(answer) == n_splits:
        return _report(ex, True, f"{n_splits}: one F1 per model and split, the split is the subject", strict)
    hint = ("frames are not independent (neighbours look alike): the subjects are the random splits"
            if _number(answer) == n_frames else "each split gives one F1 per model: how many paired values are there?")
    return _report(ex, False, f"got {answer}; {hint}", strict)


# ------------------------------------------------------------------------------ lesson 6
def nose_speed(answer, xy: np.ndarray, fps: float, strict: bool = False) -> CheckResult:
    """6.1: per-frame speed of one keypoint, pixels per second, (T-1,), from (T, 2) positions."""
    ex = "6.1"
    if (r := _missing(ex, strict, answer)):
        return r
    expected = np.linalg.norm(np.diff(xy, axis=0), axis=1) * fps
    got = np.asarray(answer, dtype=float)
    if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-4, equal_nan=True):
        return _report(ex, True, "speed in px/s", strict)
    if got.shape == expected.shape and np.allclose(got, expected / fps, rtol=1e-4, equal_nan=True):
        return _report(ex, False, "that is px per frame: multiply by the frame rate", strict)
    return _report(ex, False, f"expected shape {expected.shape}: the Euclidean length of np.diff(xy, axis=0) "
                              "per frame, times fps", strict)


def cluster_purity(answer, clusters: np.ndarray, behaviour: np.ndarray, strict: bool = False) -> CheckResult:
    """6.2: purity of unsupervised clusters: share of frames whose cluster's majority behaviour is theirs."""
    ex = "6.2"
    if (r := _missing(ex, strict, answer)):
        return r
    total = 0
    for c in np.unique(clusters):
        members = behaviour[clusters == c]
        total += np.bincount(members).max()
    expected = total / len(behaviour)
    value = _number(answer)
    if value is not None and _close(value, expected, 1e-6):
        return _report(ex, True, f"purity {expected:.3f}", strict)
    return _report(ex, False, f"got {answer}; for each cluster count its most common behaviour, sum over "
                              "clusters, divide by the number of frames", strict)


# ------------------------------------------------------------------------------ lesson 7
def project_config(answer, behaviours: Sequence[str], strict: bool = False) -> CheckResult:
    """7.1: the ``class_names`` of a DeepEthogram project: background first, then the behaviours."""
    ex = "7.1"
    if (r := _missing(ex, strict, answer)):
        return r
    expected = ["background", *[b for b in behaviours if b != "background"]]
    if list(answer) == expected:
        return _report(ex, True, "class_names = " + ", ".join(expected), strict)
    if sorted(answer) == sorted(expected):
        return _report(ex, False, "same names, wrong order: background first, then the label file's columns",
                       strict)
    return _report(ex, False, f"expected the label columns with background first: {len(expected)} names", strict)


def review_f1(answer, labels: np.ndarray, preds: np.ndarray, behaviours: Sequence[str], strict: bool = False) -> CheckResult:
    """7.2: macro F1 without background of predictions (T, K) against labels (T, K) of a new video."""
    ex = "7.2"
    if (r := _missing(ex, strict, answer)):
        return r
    table = metrics.metrics_table(labels, preds, None, behaviours)
    row = table[(table.behaviour == "macro_nobg") & (table.metric == "f1")]
    expected = float(row.value.iloc[0])
    with_bg = float(table[(table.behaviour == "macro") & (table.metric == "f1")].value.iloc[0])
    value = _number(answer)
    if value is not None and _close(value, expected, 1e-6):
        return _report(ex, True, f"macro F1 without background {expected:.3f}", strict)
    hint = ("that mean includes background, which is easy and inflates it: use the macro_nobg row"
            if value is not None and _close(value, with_bg, 1e-6) else
            "deg.metrics.metrics_table(labels, preds, None, behaviours): the f1 row of behaviour 'macro_nobg'")
    return _report(ex, False, f"got {answer}; {hint}", strict)
