"""DeepLabCut keypoint tracks: reading CSVs and filling low-confidence points.

DeepLabCut writes one row per frame after a block of header rows whose first cell names them:
``scorer / bodyparts / coords`` for single-animal projects and ``scorer / individuals /
bodyparts / coords`` for multi-animal ones; every (animal, bodypart) has an ``x``, ``y`` and
``likelihood`` column. Files re-saved through pandas may carry one extra leading index column
and ``.1``, ``.2`` suffixes on the scorer cells (the Sturman OFT tracks do); both are accepted.
Empty cells (a point the network did not find) become NaN.

Malformed input raises :class:`KeypointFormatError` (a ``ValueError``) naming the file.
"""
from __future__ import annotations

import gzip
import io as _io
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from deg import io
from deg.presets import HPARAMS

_HEADER_LABELS = {"scorer", "individuals", "bodyparts", "coords"}
_SINGLE = ["scorer", "bodyparts", "coords"]
_MULTI = ["scorer", "individuals", "bodyparts", "coords"]
_COORDS = ("x", "y", "likelihood")


class KeypointFormatError(ValueError):
    """A keypoint file is missing or malformed; the message names the file."""


class KeypointWarning(UserWarning):
    """A keypoint file was readable but something in it is empty or dropped; names the file."""


class KeypointFileNotFoundError(KeypointFormatError, FileNotFoundError):
    """The keypoint file does not exist; also a ``FileNotFoundError``."""


@dataclass
class Keypoints:
    """Tracks of A animals x P body parts over T frames.

    xy: (T, A, P, 2) float32 pixel coordinates, NaN where the point was not found.
    likelihood: (T, A, P) float32 network confidence in [0, 1], NaN where not found.
    frame_index: (T,) int64, the file's own frame numbers.
    """
    xy: np.ndarray
    likelihood: np.ndarray
    animals: list[str]
    bodyparts: list[str]
    scorer: str
    frame_index: np.ndarray
    path: Path | None = None

    @property
    def n_frames(self) -> int:
        return int(self.xy.shape[0])


def _read_bytes(path: Path) -> bytes:
    name = path.name.lower()
    if name.endswith((".h5", ".hdf5")):
        raise KeypointFormatError(f"{path}: HDF5 DeepLabCut files are not supported by read_dlc; "
                                  "read them with deg.data.pose.read_pose")
    if not name.endswith((".csv", ".csv.gz")):
        raise KeypointFormatError(f"{path}: expected a DeepLabCut .csv or .csv.gz file")
    if not path.is_file():
        raise KeypointFileNotFoundError(f"{path}: keypoint file not found")
    raw = path.read_bytes()
    if name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise KeypointFormatError(f"{path}: not a valid gzip file ({exc})") from exc
    return raw                         # decoded and checked by parse_dlc_csv


def line_field_counts(raw: bytes, sep: bytes = b",") -> np.ndarray:
    """Fields per non-empty line of ``raw`` (unquoted CSV), counted without a Python loop.

    Returns (L,) int64 for the L lines that hold anything; quoting is not interpreted (DeepLabCut
    never quotes).
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    newline = np.flatnonzero(data == ord("\n"))
    if len(data) and data[-1] != ord("\n"):
        newline = np.append(newline, len(data))             # last line without a newline
    seps = np.concatenate([[0], np.cumsum(data == sep[0])])
    starts = np.concatenate([[0], newline[:-1] + 1])
    counts = seps[newline] - seps[starts] + 1
    content = newline - starts - (data[np.maximum(newline - 1, 0)] == ord("\r"))  # bytes before \r\n
    return counts[content > 0]


def _demangle(cells: list[str]) -> list[str]:
    """Undo pandas' duplicate-column renaming (``name.1``, ``name.2``) of the scorer row."""
    base = cells[0] if cells else ""
    return [base if re.fullmatch(re.escape(base) + r"\.\d+", c) else c for c in cells]


def read_dlc(path: str | os.PathLike) -> Keypoints:
    """Read a DeepLabCut CSV (``.csv`` or ``.csv.gz``), single- or multi-animal.

    Single-animal files give A = 1 with animal name ``"single"``. In multi-animal files the body
    parts are the union over animals (DeepLabCut's unique-bodypart "single" individual has its
    own); an (animal, part) pair a file lacks stays NaN.
    """
    path = Path(path)
    return parse_dlc_csv(_read_bytes(path), path)


def parse_dlc_csv(raw: bytes, path: str | os.PathLike) -> Keypoints:
    """Parse the bytes of a DeepLabCut CSV (already decompressed); ``path`` names it in errors.

    The file-name checks of :func:`read_dlc` are skipped, so callers that detect the format from
    the content (:func:`deg.data.pose.read_pose`) can hand over any file. The text is decoded
    strictly (:func:`deg.io.decode_text`) and a file cut mid-line is refused.
    """
    path = Path(path)
    try:
        text = io.decode_text(raw, path)
    except io.TextEncodingError as exc:
        raise KeypointFormatError(str(exc)) from None
    problem = io.cut_short(text)
    if problem:
        raise KeypointFormatError(f"{path}: {problem}")
    raw = text.encode("utf-8")        # one byte form for the vectorised field counts below
    lines = text.splitlines()
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise KeypointFormatError(f"{path}: empty file")
    head = [line.rstrip("\r").split(",") for line in lines[:6]]
    label_col = next((c for c in range(min(2, len(head[0]))) if head[0][c].strip().lower() == "scorer"), None)
    if label_col is None:
        raise KeypointFormatError(f"{path}: not a DeepLabCut CSV (the first header row must begin with 'scorer')")
    labels = []
    for row in head:
        cell = row[label_col].strip().lower() if len(row) > label_col else ""
        if cell not in _HEADER_LABELS:
            break
        labels.append(cell)
    if labels not in (_SINGLE, _MULTI):
        raise KeypointFormatError(f"{path}: header rows {labels} are neither {_SINGLE} (single animal) nor "
                                  f"{_MULTI} (multi-animal)")
    n_header = len(labels)
    width = len(head[0])
    counts = line_field_counts(raw)
    if (counts != width).any():
        bad = int(np.flatnonzero(counts != width)[0])
        raise KeypointFormatError(f"{path}: ragged rows: non-empty line {bad + 1} has {counts[bad]} fields, "
                                  f"the header has {width}")
    if len(lines) == n_header:
        raise KeypointFormatError(f"{path}: header but no frames")
    cells = {label: [c.strip() for c in head[i][label_col + 1:]] for i, label in enumerate(labels)}
    scorers = _demangle(cells["scorer"])
    animals_per_col = cells["individuals"] if "individuals" in cells else ["single"] * len(scorers)
    parts_per_col, coords = cells["bodyparts"], cells["coords"]
    unknown = sorted(set(coords) - set(_COORDS))
    if unknown:
        raise KeypointFormatError(f"{path}: coords {unknown} found; only x, y, likelihood are understood")
    animals = list(dict.fromkeys(animals_per_col))
    parts = list(dict.fromkeys(parts_per_col))
    keys = list(zip(animals_per_col, parts_per_col, coords))
    if len(set(keys)) != len(keys) and "individuals" not in cells:
        repeats = {k: keys.count(k) for k in keys}
        if len(set(repeats.values())) == 1:
            n = next(iter(repeats.values()))
            raise KeypointFormatError(f"{path}: every (bodypart, coord) column appears {n} times: this looks like a "
                                      "multi-animal DeepLabCut file whose 'individuals' header row is missing "
                                      "(expected rows scorer, individuals, bodyparts, coords)")
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise KeypointFormatError(f"{path}: column (individual, bodypart, coord) {dup} appears twice")
    present = {(a, p) for a, p, _ in keys}
    for animal, part in present:
        lacking = [c for c in _COORDS if (animal, part, c) not in set(keys)]
        if lacking:
            raise KeypointFormatError(f"{path}: {animal}/{part} lacks coords {lacking}")

    values = _numeric_block(raw, n_header, path)              # (T, width)
    frame_index = values[:, label_col]
    if np.isnan(frame_index).any() or (frame_index != np.round(frame_index)).any():
        raise KeypointFormatError(f"{path}: the frame index column holds missing or non-integer values")
    steps = np.diff(frame_index)
    if (steps <= 0).any():
        row = int(np.flatnonzero(steps <= 0)[0]) + 1
        what = "repeats" if steps[row - 1] == 0 else "goes back to"
        raise KeypointFormatError(f"{path}: line {n_header + row + 1}: frame number {what} {int(frame_index[row])} "
                                  f"after {int(frame_index[row - 1])}; frames must increase (rows shuffled or "
                                  "files concatenated?)")
    data = values[:, label_col + 1:]
    n_frames = len(data)
    xy = np.full((n_frames, len(animals), len(parts), 2), np.nan, dtype=np.float32)
    likelihood = np.full((n_frames, len(animals), len(parts)), np.nan, dtype=np.float32)
    a_idx = np.array([animals.index(a) for a in animals_per_col])
    p_idx = np.array([parts.index(p) for p in parts_per_col])
    for coord, target in (("x", 0), ("y", 1)):
        cols = np.array([c == coord for c in coords])
        xy[:, a_idx[cols], p_idx[cols], target] = data[:, cols]
    cols = np.array([c == "likelihood" for c in coords])
    likelihood[:, a_idx[cols], p_idx[cols]] = data[:, cols]
    outside = np.isfinite(likelihood) & ((likelihood < 0) | (likelihood > 1))
    if outside.any():
        t, a, p = (int(i) for i in np.argwhere(outside)[0])
        raise KeypointFormatError(f"{path}: line {n_header + t + 1}: likelihood {likelihood[t, a, p]:g} of "
                                  f"{animals[a]}/{parts[p]} outside [0, 1] ({int(outside.sum())} value(s) in all); "
                                  "columns shifted, or not DeepLabCut confidences?")
    found = np.isfinite(xy).all(axis=-1).any(axis=0)                 # (A, P): tracked at least once
    if not found.any():
        raise KeypointFormatError(f"{path}: no body part was found in any of its {n_frames} frames (every x/y is "
                                  "empty or NaN)")
    if not found[[animals.index(a) for a, _ in present], [parts.index(p) for _, p in present]].all():
        empty = sorted(f"{a}/{p}" for a, p in present if not found[animals.index(a), parts.index(p)])
        warnings.warn(f"{path}: {len(empty)} track(s) are empty (NaN) in every frame and stay NaN: "
                      f"{', '.join(empty[:10])}", KeypointWarning, stacklevel=2)
    return Keypoints(xy=xy, likelihood=likelihood, animals=animals, bodyparts=parts,
                     scorer=scorers[0] if scorers else "", frame_index=frame_index.astype(np.int64), path=path)


def _numeric_block(raw: bytes, n_header: int, path: Path) -> np.ndarray:
    """(T, width) float64 of the data rows; a non-numeric cell raises with its line and column."""
    try:
        frame = pd.read_csv(_io.BytesIO(raw), header=None, skiprows=n_header, dtype=np.float64,
                            index_col=False, skip_blank_lines=True)
        return frame.to_numpy()
    except ValueError:
        pass                                     # locate the offending cell for the message
    frame = pd.read_csv(_io.BytesIO(raw), header=None, skiprows=n_header, dtype=str, keep_default_na=False,
                        index_col=False)
    for column in frame.columns:
        text = frame[column].str.strip()
        bad = (text != "") & pd.to_numeric(text, errors="coerce").isna() & ~text.str.lower().isin(("nan",))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise KeypointFormatError(f"{path}: line {n_header + row + 1}, column {column + 1}: "
                                      f"{text.iat[row]!r} is not a number")
    raise KeypointFormatError(f"{path}: data rows are not numeric")


def interpolate_low_confidence(kp: Keypoints, threshold: float | None = None) -> Keypoints:
    """Replace points with likelihood below ``threshold`` by linear interpolation along time.

    Paper, Methods (keypoint-based classification): "linear interpolation for keypoints with
    confidence below 0.9" (default ``HPARAMS["keypoint_min_likelihood"]``). Each (animal, part)
    series is filled from its nearest confident frames before and after; before the first or
    after the last confident frame the nearest confident value is held; a series with no
    confident frame stays NaN. ``likelihood`` is returned unchanged. Fully vectorised: running
    max / min of the confident frame indices give each frame's neighbours.
    """
    if threshold is None:
        threshold = HPARAMS["keypoint_min_likelihood"]
    n_frames = kp.xy.shape[0]
    xy = kp.xy.reshape(n_frames, -1, 2).astype(np.float64)          # (T, N, 2), N = A * P
    conf = kp.likelihood.reshape(n_frames, -1)
    good = (conf >= threshold) & np.isfinite(xy).all(axis=-1)        # NaN likelihood counts as low
    t = np.arange(n_frames)[:, None]
    prev = np.maximum.accumulate(np.where(good, t, -1), axis=0)      # last confident frame <= t
    nxt = np.minimum.accumulate(np.where(good, t, n_frames)[::-1], axis=0)[::-1]   # first >= t
    has_prev, has_next = prev >= 0, nxt < n_frames
    prev_c, next_c = np.where(has_prev, prev, nxt), np.where(has_next, nxt, prev)  # hold at the ends
    ok = has_prev | has_next
    prev_c, next_c = np.where(ok, prev_c, 0), np.where(ok, next_c, 0)
    columns = np.arange(xy.shape[1])[None, :]
    before, after = xy[prev_c, columns], xy[next_c, columns]         # (T, N, 2)
    span = (next_c - prev_c).astype(np.float64)
    weight = np.divide(t - prev_c, span, out=np.zeros_like(span), where=span > 0)[..., None]
    filled = before + weight * (after - before)
    filled[~ok] = np.nan
    out = np.where(good[..., None], xy, filled).astype(np.float32).reshape(kp.xy.shape)
    return replace(kp, xy=out)
