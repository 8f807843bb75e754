"""BORIS annotations: exported event tables and ``.boris`` project files, to per-frame labels.

BORIS (Friard & Gamba 2016) is the manual annotation tool many labs already use. Two inputs:

* an **export** of an observation's events (CSV or TSV): an optional metadata block
  (``Observation id``, ``Player #1``, ``Time offset (s)``, ...), then a header row with at least
  ``Time``, ``Behavior`` and ``Status`` (older BORIS; newer ones call it ``Behavior type``);
  usually also ``Media file path`` / ``Media file name``, ``Total length`` / ``Media duration
  (s)``, ``FPS`` and ``Subject``. ``Status`` is ``START``/``STOP`` for state events and
  ``POINT`` for point events; times are seconds. The *aggregated* export (one row per bout,
  ``Start (s)``, ``Stop (s)``, ``Behavior type`` = ``State event`` / ``Point event``) is read too.
* a **project** file (``.boris``, JSON): ``behaviors_conf`` says which codes are state and which
  point events; each observation lists ``[time, subject, code, modifier, comment, ...]`` events
  whose state events alternate start/stop per (subject, behaviour); ``media_info`` gives each
  media file's fps and length.

Both give :class:`BorisObservation` objects; :func:`observation_labels` turns one into a
``(T, K)`` label matrix per subject (package convention: ``background`` first, all frames
labelled). Frame ``i`` (time ``i / fps``) carries a state behaviour when ``START <= i / fps <
STOP`` (``../shared/data/README.md``); a point event marks the one frame ``floor(t * fps)``.
Event times are observation times: the observation's time offset is subtracted to get media
time (zero in every file seen here). Several behaviours and subjects may overlap (multi-label).

Malformed input raises :class:`deg.data.labels.LabelFormatError` naming the file (and the line,
for exports).
"""
from __future__ import annotations

import io as _io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deg.data.labels import BACKGROUND, LabelFileNotFoundError, LabelFormatError, LabelWarning, background_from

NO_SUBJECT = "no_subject"          # BORIS's "No focal subject" (empty Subject cell)
STATUSES = ("START", "STOP", "POINT")
EVENT_COLUMNS = ["time_s", "subject", "behaviour", "modifier", "status", "line"]


@dataclass
class BorisObservation:
    """One observation of one media file.

    events: table with columns ``time_s`` (media time, float), ``subject``, ``behaviour``,
    ``modifier`` (``|``-joined, "" when none: start and stop pair within one modifier, as in
    BORIS), ``status`` (START / STOP / POINT) and ``line`` (file line, exports; -1 for projects).
    """
    observation: str
    media: str | None
    fps: float | None
    length_s: float | None
    events: pd.DataFrame
    source: Path
    behaviours: list[str]                  # every behaviour the source defines or uses, in order

    @property
    def subjects(self) -> list[str]:
        return list(dict.fromkeys(self.events["subject"]))

    @property
    def video(self) -> str:
        """A name for the video: the media file's stem, else the observation id."""
        if self.media:
            return Path(self.media.replace("\\", "/")).stem
        return self.observation


# ============================================================================ detection
def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise LabelFileNotFoundError(f"{path}: {what} not found")


def is_boris_project(path: str | os.PathLike) -> bool:
    """True when the file is JSON with BORIS's ``behaviors_conf`` and ``observations``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    text = head.lstrip()
    return text.startswith(b"{") and b'"behaviors_conf"' in head and b'"observations"' in head


def is_boris_export(path: str | os.PathLike) -> bool:
    """True when a header row with Time, Behavior and Status/Behavior type appears near the top."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    return _find_header(head.splitlines()[:60]) is not None


def _find_header(lines: list[str]) -> tuple[int, str] | None:
    for number, line in enumerate(lines):
        for sep in ("\t", ","):
            cells = [c.strip().strip('"').lower() for c in line.split(sep)]
            if "behavior" in cells and (("time" in cells and ("status" in cells or "behavior type" in cells))
                                        or ("start (s)" in cells and "stop (s)" in cells)):
                return number, sep
    return None


def read_boris(path: str | os.PathLike) -> list[BorisObservation]:
    """Read a BORIS export or project file (detected from the content)."""
    path = Path(path)
    _require_file(path, "BORIS file")
    if is_boris_project(path):
        return read_boris_project(path)
    return read_boris_export(path)


# ============================================================================ exports
def _metadata(lines: list[str], sep: str) -> dict[str, str]:
    meta = {}
    for line in lines:
        cells = [c.strip().strip('"') for c in line.split(sep)]
        if len(cells) >= 2 and cells[0]:
            meta.setdefault(cells[0].lower(), cells[1])
    return meta


def _float_or_none(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def read_boris_export(path: str | os.PathLike) -> list[BorisObservation]:
    """Read a BORIS event export (CSV or TSV, with or without the metadata block).

    One :class:`BorisObservation` per (observation id, media file) in the table.
    """
    path = Path(path)
    _require_file(path, "BORIS export")
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise LabelFormatError(f"{path}: empty file")
    lines = text.splitlines()
    found = _find_header(lines[:200])
    if found is None:
        raise LabelFormatError(f"{path}: not a BORIS export: no header row with 'Time', 'Behavior' and "
                               "'Status' (or 'Behavior type') columns, nor an aggregated one with 'Behavior', "
                               "'Start (s)' and 'Stop (s)'")
    header_at, sep = found
    meta = _metadata(lines[:header_at], sep)
    try:
        table = pd.read_csv(_io.StringIO("\n".join(lines[header_at:])), sep=sep, dtype=str,
                            keep_default_na=False, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LabelFormatError(f"{path}: cannot parse the event table below line {header_at + 1} ({exc})") from exc
    table.columns = [str(c).strip().strip('"').lower() for c in table.columns]
    table = table.apply(lambda col: col.str.strip())
    table["line"] = np.arange(len(table)) + header_at + 2
    table = table[(table.drop(columns="line") != "").any(axis=1)]      # blank rows
    if len(table) == 0:
        raise LabelFormatError(f"{path}: header but no events")
    if (table["behavior"] == "").any():
        row = table[table["behavior"] == ""].iloc[0]
        raise LabelFormatError(f"{path}: line {row['line']}: empty 'Behavior'")
    if "start (s)" in table.columns:                          # aggregated export: one row per bout
        times, status, table = _expand_aggregated(table, path)
    else:
        status_col = "status" if "status" in table.columns else "behavior type"
        status = table[status_col].str.upper()
        bad = ~status.isin(STATUSES)
        if bad.any():
            row = table[bad].iloc[0]
            raise LabelFormatError(f"{path}: line {row['line']}: status {row[status_col]!r} is not START, STOP or "
                                   "POINT")
        times = _numbers(table, "time", path)
    # the observation's time offset: in the metadata block (older exports) or a column (newer)
    if "time offset (s)" in table.columns:
        offset = pd.to_numeric(table["time offset (s)"], errors="coerce").fillna(0.0).to_numpy()
    else:
        offset = _float_or_none(meta.get("time offset (s)")) or 0.0
    media_col = next((c for c in ("media file path", "media file", "media file name") if c in table.columns), None)
    obs_col = "observation id" if "observation id" in table.columns else None
    modifiers = [c for c in table.columns if c.startswith("modifier")]
    events = pd.DataFrame({
        "time_s": times - offset,
        "subject": table["subject"].replace("", NO_SUBJECT) if "subject" in table.columns else NO_SUBJECT,
        "behaviour": table["behavior"], "status": status, "line": table["line"].to_numpy(),
        "modifier": table[modifiers].agg("|".join, axis=1) if modifiers else "",
        "media": table[media_col] if media_col else meta.get("player #1", ""),
        "observation": table[obs_col] if obs_col else meta.get("observation id", path.stem),
    })
    behaviours = sorted(set(events["behaviour"]), key=str.lower)
    observations = []
    for (obs, media), group in events.groupby(["observation", "media"], sort=False):
        rows = table.loc[group.index]
        fps = _column_value(rows, ("fps", "fps (frame/s)"), path)
        length = _column_value(rows, ("total length", "media duration (s)"), path)
        observations.append(BorisObservation(
            observation=str(obs), media=str(media) or None, fps=fps, length_s=length,
            events=group[EVENT_COLUMNS].reset_index(drop=True),
            source=path, behaviours=behaviours))
    return observations


def _numbers(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce")
    if values.isna().any():
        row = table[values.isna()].iloc[0]
        raise LabelFormatError(f"{path}: line {row['line']}: {column} {row[column]!r} is not a number of seconds")
    return values.to_numpy(dtype=np.float64)


def _expand_aggregated(table: pd.DataFrame, path: Path) -> tuple[np.ndarray, pd.Series, pd.DataFrame]:
    """Rows with ``Start (s)`` / ``Stop (s)`` -> START and STOP events (POINT for point events)."""
    if "stop (s)" not in table.columns:
        raise LabelFormatError(f"{path}: aggregated export with 'Start (s)' but no 'Stop (s)' column")
    start, stop = _numbers(table, "start (s)", path), _numbers(table, "stop (s)", path)
    kind = table["behavior type"].str.lower() if "behavior type" in table.columns else pd.Series("state", table.index)
    point = kind.str.startswith("point").to_numpy()
    backwards = ~point & (stop < start)
    if backwards.any():
        row = table[backwards].iloc[0]
        raise LabelFormatError(f"{path}: line {row['line']}: stop {row['stop (s)']} before start {row['start (s)']}")
    state = table[~point]
    expanded = pd.concat([table[point], state, state])
    times = np.concatenate([start[point], start[~point], stop[~point]])
    status = pd.Series(["POINT"] * int(point.sum()) + ["START"] * len(state) + ["STOP"] * len(state),
                       index=expanded.index)
    expanded = expanded.reset_index(drop=True)
    return times, status.reset_index(drop=True), expanded


def _column_value(rows: pd.DataFrame, columns: tuple[str, ...], path: Path) -> float | None:
    """The one value of a per-row column (FPS, Total length) within an observation, or None."""
    column = next((c for c in columns if c in rows.columns), None)
    if column is None:
        return None
    values = {v for v in rows[column] if v not in ("", "NA")}
    numbers = {_float_or_none(v) for v in values}
    if None in numbers:
        bad = next(v for v in values if _float_or_none(v) is None)
        raise LabelFormatError(f"{path}: column {column!r} holds {bad!r}, not a number")
    if len(numbers) > 1:
        raise LabelFormatError(f"{path}: column {column!r} differs within one media file: {sorted(numbers)}")
    return numbers.pop() if numbers else None


# ============================================================================ projects
def read_boris_project(path: str | os.PathLike) -> list[BorisObservation]:
    """Read every observation of a BORIS project file (``.boris``, JSON).

    Observations with several media files (concatenated players) are refused: their event
    times run across files.
    """
    path = Path(path)
    _require_file(path, "BORIS project")
    try:
        project = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LabelFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(project, dict) or not isinstance(project.get("behaviors_conf"), dict) \
            or not isinstance(project.get("observations"), dict):
        raise LabelFormatError(f"{path}: not a BORIS project (needs 'behaviors_conf' and 'observations')")
    kinds: dict[str, str] = {}
    for key, conf in project["behaviors_conf"].items():
        if not isinstance(conf, dict) or "code" not in conf:
            raise LabelFormatError(f"{path}: behaviors_conf[{key!r}] has no 'code'")
        kind = str(conf.get("type", "")).lower()
        kinds[str(conf["code"])] = "point" if kind.startswith("point") else "state"
    behaviours = list(kinds)
    observations = []
    for obs_id, obs in project["observations"].items():
        if not isinstance(obs, dict) or not isinstance(obs.get("events"), list):
            raise LabelFormatError(f"{path}: observation {obs_id!r} has no 'events' list")
        media_files = [m for files in (obs.get("file") or {}).values() for m in (files or [])]
        if len(media_files) > 1:
            raise LabelFormatError(f"{path}: observation {obs_id!r} has {len(media_files)} media files; only "
                                   "observations of one media file are supported (export them one by one)")
        media = media_files[0] if media_files else None
        info = obs.get("media_info") or {}
        fps = _float_or_none((info.get("fps") or {}).get(media)) if media else None
        length = _float_or_none((info.get("length") or {}).get(media)) if media else None
        offset = _float_or_none(obs.get("time offset")) or 0.0
        rows = []
        for number, event in enumerate(obs["events"]):
            if not isinstance(event, list) or len(event) < 3:
                raise LabelFormatError(f"{path}: observation {obs_id!r}, event {number}: expected "
                                       f"[time, subject, code, ...], got {event!r}")
            time, subject, code = _float_or_none(event[0]), str(event[1] or NO_SUBJECT), str(event[2])
            if time is None:
                raise LabelFormatError(f"{path}: observation {obs_id!r}, event {number}: time {event[0]!r} "
                                       "is not a number")
            if code not in kinds:
                raise LabelFormatError(f"{path}: observation {obs_id!r}, event {number}: behaviour {code!r} "
                                       f"is not in behaviors_conf {behaviours}")
            modifier = str(event[3]) if len(event) > 3 and event[3] is not None else ""
            rows.append((time - offset, subject, code, modifier, kinds[code], -1))
        events = pd.DataFrame(rows, columns=EVENT_COLUMNS)
        # state events toggle: the 1st, 3rd, ... of a (subject, behaviour, modifier) start, the others
        # stop -- BORIS pairs a start with the next event of the same subject, code and modifier
        events = events.sort_values("time_s", kind="stable")
        state = events["status"] == "state"
        order = events[state].groupby(["subject", "behaviour", "modifier"]).cumcount()
        events.loc[state, "status"] = np.where(order % 2 == 0, "START", "STOP")
        events.loc[~state, "status"] = "POINT"
        observations.append(BorisObservation(
            observation=str(obs_id), media=media, fps=fps, length_s=length,
            events=events.reset_index(drop=True), source=path, behaviours=behaviours))
    if not observations:
        raise LabelFormatError(f"{path}: the project has no observations")
    return observations


# ============================================================================ to frames
def _first_frame_at_or_after(t: np.ndarray, fps: float) -> np.ndarray:
    """Smallest frame i with i / fps >= t (exact comparison, robust to float rounding)."""
    i = np.ceil(t * fps).astype(np.int64)
    i += i / fps < t
    i -= (i - 1) / fps >= t
    return i


def observation_labels(obs: BorisObservation, fps: float | None = None, n_frames: int | None = None,
                       behaviours: list[str] | None = None,
                       ) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per-frame labels of each subject: ``{subject: ((T, K) int8, behaviours)}``.

    ``fps`` defaults to the file's FPS; ``n_frames`` to ``round(length * fps)`` from the file,
    else the frame after the last event. Every frame is labelled (BORIS codes the whole media
    file). ``behaviours`` (without background) fixes the columns (default: every behaviour of
    the source), the same for every subject. Unpaired START/STOP rows raise; events past
    ``n_frames`` are cut with a :class:`deg.data.labels.LabelWarning`.
    """
    path = obs.source
    fps = fps if fps is not None else obs.fps
    if not fps or fps <= 0:
        raise LabelFormatError(f"{path}: observation {obs.observation!r}: frame rate unknown; pass fps")
    names = list(behaviours) if behaviours is not None else list(obs.behaviours)
    unknown = sorted(set(obs.events["behaviour"]) - set(names))
    if unknown:
        raise LabelFormatError(f"{path}: behaviours {unknown} are not among the requested {names}")
    starts, stops, cols, subj = [], [], [], []
    subjects = obs.subjects
    for (subject, behaviour, _), group in obs.events.groupby(["subject", "behaviour", "modifier"], sort=False):
        group = group.sort_values("time_s", kind="stable")
        point = group[group["status"] == "POINT"]
        state = group[group["status"] != "POINT"]
        status = state["status"].to_numpy()
        expected = np.where(np.arange(len(status)) % 2 == 0, "START", "STOP")
        wrong = np.flatnonzero(status != expected)
        if len(wrong) or len(status) % 2:
            at = state.iloc[wrong[0]] if len(wrong) else state.iloc[-1]
            where = f"line {at['line']}" if at["line"] >= 0 else f"time {at['time_s']:.3f} s"
            raise LabelFormatError(
                f"{path}: {where}: unpaired {at['status']} of {behaviour!r} for subject {subject!r} "
                f"(state events must alternate START, STOP)")
        t = state["time_s"].to_numpy()
        first = _first_frame_at_or_after(t[0::2], fps)
        stop = _first_frame_at_or_after(t[1::2], fps)               # exclusive: i / fps < STOP
        p = np.floor(point["time_s"].to_numpy() * fps + 1e-9).astype(np.int64)
        starts += [first, p]
        stops += [stop, p + 1]
        cols += [np.full(len(first) + len(p), names.index(behaviour))]
        subj += [np.full(len(first) + len(p), subjects.index(subject))]
    if not subjects:                                           # an observation without events
        subjects, starts, stops, cols, subj = [NO_SUBJECT], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], \
            [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    first, stop = np.concatenate(starts), np.concatenate(stops)
    col, who = np.concatenate(cols), np.concatenate(subj)
    if n_frames is None:
        n_frames = int(round(obs.length_s * fps)) if obs.length_s else int(stop.max(initial=1))
    if (stop > n_frames).any():
        warnings.warn(f"{path}: observation {obs.observation!r}: events run to frame {int(stop.max())}, past the "
                      f"{n_frames} frames; cut there", LabelWarning, stacklevel=2)
    first, stop = np.clip(first, 0, n_frames), np.clip(stop, 0, n_frames)
    out = {}
    for index, subject in enumerate(subjects):
        mine = (who == index) & (first < stop)
        diff = np.zeros((n_frames + 1, len(names)), dtype=np.int32)
        np.add.at(diff, (first[mine], col[mine]), 1)
        np.add.at(diff, (stop[mine], col[mine]), -1)
        cover = np.cumsum(diff[:-1], axis=0) > 0
        out[subject] = (background_from(cover), [BACKGROUND] + names)
    return out
