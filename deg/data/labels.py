"""Behaviour label readers and writers: DeepEthogram CSVs and projects, Sturman intervals, Caltech files.

Every reader returns label matrices in the package's one convention: ``(T, K)`` int8, one row per
frame, column 0 ``background``, values 0/1, and -1 on every column of an unlabelled frame. On a
labelled frame ``background`` is 1 exactly where no other behaviour is 1 (labels are multi-label:
two behaviours may share a frame).

Formats:

* DeepEthogram per-frame CSV (:func:`read_deg_labels`, :func:`write_deg_labels`) and a whole
  DeepEthogram project folder (:func:`read_deg_project`, :func:`import_deg_project`).
* Sturman et al. 2020 interval files (:func:`read_sturman`): ``from``/``to`` in seconds.
* Caltech Behavior Annotator ``.txt`` files (:func:`read_caltech`): 1-indexed inclusive frames,
  one or more label streams (``S1:``, ``S2:``).

Malformed input raises :class:`LabelFormatError` (a ``ValueError``) naming the file.
"""
from __future__ import annotations

import io as _io
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from deg import io

BACKGROUND = "background"


class LabelFormatError(ValueError):
    """A label file or project is missing, malformed or inconsistent; the message names the file."""


class LabelFileNotFoundError(LabelFormatError, FileNotFoundError):
    """The label file (or project config) does not exist; also a ``FileNotFoundError``."""


class LabelWarning(UserWarning):
    """Input was readable but something was dropped; the message names the file and what."""


class LabelOverrunWarning(LabelWarning):
    """Annotations ran past the end of the video and were trimmed (``on_overrun="trim"``)."""


def _require_file(path: Path, what: str = "label file") -> None:
    if not path.is_file():
        raise LabelFileNotFoundError(f"{path}: {what} not found")


# ============================================================================ shared helpers
def background_from(behaviour_matrix: np.ndarray, labelled: np.ndarray | None = None) -> np.ndarray:
    """Full (T, K) matrix from the (T, K-1) behaviour columns: background = no behaviour present.

    ``labelled`` (T,) bool marks labelled frames; the others become -1 on every column.
    """
    behaviour_matrix = np.asarray(behaviour_matrix, dtype=np.int8)
    background = (behaviour_matrix.sum(axis=1) == 0).astype(np.int8)
    matrix = np.concatenate([background[:, None], behaviour_matrix], axis=1)
    if labelled is not None:
        matrix[~np.asarray(labelled, dtype=bool)] = -1
    return matrix


def select_behaviours(matrix: np.ndarray, behaviours: Sequence[str],
                      keep: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Keep the behaviour columns ``keep`` (in that order) and recompute ``background``.

    matrix: (T, K) int8 with ``behaviours[0] == "background"``; returns ((T, 1 + len(keep)), names).
    """
    names = list(behaviours)
    missing = [name for name in keep if name not in names]
    if missing:
        raise ValueError(f"behaviours {missing} not among {names}")
    columns = [names.index(name) for name in keep if name != BACKGROUND]
    labelled = (matrix != -1).all(axis=1)
    out = background_from(np.clip(matrix[:, columns], 0, 1), labelled)
    return out, [BACKGROUND] + [names[c] for c in columns]


def _runs_to_matrix(first: np.ndarray, last: np.ndarray, columns: np.ndarray, n_frames: int,
                    n_columns: int) -> np.ndarray:
    """Coverage count (n_frames, n_columns) of inclusive frame runs ``first..last`` per column.

    Vectorised with a difference array (+1 at first, -1 after last) and a cumulative sum, so the
    cost is O(runs + frames) with no per-frame Python loop. Runs must already be clipped.
    """
    diff = np.zeros((n_frames + 1, n_columns), dtype=np.int32)
    np.add.at(diff, (first, columns), 1)
    np.add.at(diff, (last + 1, columns), -1)
    return np.cumsum(diff[:-1], axis=0)


# ============================================================================ DeepEthogram CSV
def _is_index_column(name: str) -> bool:
    name = name.strip()
    return name == "" or name.lower() == "index" or name.startswith("Unnamed: 0")


def read_deg_labels(path: str | os.PathLike, fix_background: bool = False) -> tuple[np.ndarray, list[str]]:
    """Read a DeepEthogram per-frame label CSV.

    Layout: a header row; an optional unnamed (or ``index``) first column; ``background`` and one
    column per behaviour; values 0/1, with -1 on every column of an unlabelled frame.

    Returns ``(matrix, behaviours)``: (T, K) int8 and the K column names, ``background`` first
    (moved there if the file has it elsewhere). A labelled row whose ``background`` disagrees
    with its behaviours is an error unless ``fix_background=True``, which recomputes it.
    """
    path = Path(path)
    _require_file(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise LabelFormatError(f"{path}: empty file")
    header = raw.decode("utf-8-sig", errors="replace").splitlines()[0].split(",")
    names = [h.strip().strip('"') for h in header]
    try:
        frame = pd.read_csv(_io.BytesIO(raw), index_col=False, encoding="utf-8-sig",
                            skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LabelFormatError(f"{path}: not a rectangular CSV ({exc})") from exc
    if names and _is_index_column(names[0]):
        names = names[1:]
        frame = frame.iloc[:, 1:]
    if len(set(names)) != len(names):
        raise LabelFormatError(f"{path}: duplicate column names in header {names}")
    if BACKGROUND not in names:
        raise LabelFormatError(f"{path}: no '{BACKGROUND}' column (header: {names})")
    if len(frame) == 0:
        raise LabelFormatError(f"{path}: header but no label rows")
    numeric = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(numeric) | ~np.isin(numeric, (-1.0, 0.0, 1.0))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        value = frame.iat[row, col]
        problem = "missing value (ragged row or empty cell)" if pd.isna(value) else f"value {str(value)!r}"
        raise LabelFormatError(f"{path}: line {row + 2}, column {names[col]!r}: {problem}; "
                               "labels must be 0, 1 or -1")
    matrix = numeric.astype(np.int8)
    order = [names.index(BACKGROUND)] + [i for i, n in enumerate(names) if n != BACKGROUND]
    matrix, names = matrix[:, order], [names[i] for i in order]
    unlabelled = matrix == -1
    mixed = unlabelled.any(axis=1) & ~unlabelled.all(axis=1)
    if mixed.any():
        raise LabelFormatError(f"{path}: line {np.flatnonzero(mixed)[0] + 2} mixes -1 with 0/1; an "
                               "unlabelled frame must be -1 on every column")
    labelled = ~unlabelled[:, 0]
    expected = background_from(matrix[:, 1:].clip(0, 1), labelled)
    wrong = expected[:, 0] != matrix[:, 0]
    if wrong.any():
        if not fix_background:
            raise LabelFormatError(
                f"{path}: '{BACKGROUND}' disagrees with the behaviour columns on {int(wrong.sum())} "
                f"frame(s), first at line {np.flatnonzero(wrong)[0] + 2} (it must be 1 exactly where no "
                "behaviour is 1); pass fix_background=True to recompute it")
        matrix = expected
    return matrix, names


def _check_matrix(matrix: np.ndarray, behaviours: Sequence[str]) -> np.ndarray:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[1] != len(behaviours):
        raise ValueError(f"label matrix of shape {matrix.shape} does not match {len(behaviours)} behaviours")
    if list(behaviours[:1]) != [BACKGROUND]:
        raise ValueError(f"behaviours must start with '{BACKGROUND}', got {list(behaviours[:3])}")
    if not np.isin(matrix, (-1, 0, 1)).all():
        raise ValueError("label matrix values must be -1, 0 or 1")
    matrix = matrix.astype(np.int8)
    labelled = ~(matrix == -1).all(axis=1)
    if not np.array_equal(background_from(matrix[:, 1:].clip(0, 1), labelled), matrix):
        raise ValueError("label matrix is inconsistent: background must be 1 exactly where no behaviour "
                         "is 1, and unlabelled frames -1 on every column")
    return matrix


def write_deg_labels(path: str | os.PathLike, matrix: np.ndarray, behaviours: Sequence[str]) -> Path:
    """Write a (T, K) label matrix as a DeepEthogram per-frame CSV (atomically).

    Like DeepEthogram's own files the first column is an unnamed 0..T-1 frame index.
    """
    matrix = _check_matrix(matrix, behaviours)
    frame = pd.DataFrame(matrix, columns=list(behaviours))
    frame.insert(0, "", np.arange(len(matrix)))
    return io.write_csv(path, frame)


# ============================================================================ DeepEthogram project
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".mpg", ".mpeg", ".webm")


@dataclass
class DegProject:
    """A DeepEthogram project folder, read without touching its files.

    ``videos`` maps every video folder under ``DATA/`` to its video file (None when the folder
    holds none); ``labels`` maps only the labelled videos to their ``*_labels.csv``.
    """
    root: Path
    name: str
    behaviours: list[str]                       # class_names, "background" first
    videos: dict[str, Path | None] = field(default_factory=dict)
    labels: dict[str, Path] = field(default_factory=dict)
    fps: float | None = None                    # from the first readable video, if any

    @property
    def unlabelled(self) -> list[str]:
        return [name for name in self.videos if name not in self.labels]


def _video_fps_and_frames(path: Path) -> tuple[float | None, int]:
    """(frames per second, frame count from the container; 0 when unknown) without decoding."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return (float(rate) if rate else None), int(stream.frames or 0)
    except (av.error.FFmpegError, IndexError) as exc:
        raise LabelFormatError(f"{path}: cannot open video ({exc})") from exc


def _find_video(folder: Path) -> Path | None:
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    exact = [p for p in candidates if p.stem == folder.name]
    if exact:
        return exact[0]
    if len(candidates) > 1:
        raise LabelFormatError(f"{folder}: several video files and none named after the folder: "
                               f"{[p.name for p in candidates]}")
    return candidates[0] if candidates else None


def _find_labels(folder: Path) -> Path | None:
    exact = folder / f"{folder.name}_labels.csv"
    if exact.is_file():
        return exact
    others = sorted(folder.glob("*_labels.csv"))
    if len(others) > 1:
        raise LabelFormatError(f"{folder}: several label files and none named {exact.name}: "
                               f"{[p.name for p in others]}")
    return others[0] if others else None


def read_deg_project(project_dir: str | os.PathLike) -> DegProject:
    """Read a DeepEthogram project: ``project_config.yaml`` and ``DATA/<video>/`` folders.

    Every label file is read once to check that its columns equal ``class_names``.
    """
    import yaml

    root = Path(project_dir)
    config_path = root / "project_config.yaml"
    _require_file(config_path, "DeepEthogram project config")
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise LabelFormatError(f"{config_path}: not valid YAML ({exc})") from exc
    project = config.get("project") if isinstance(config, dict) else None
    if not isinstance(project, dict):
        raise LabelFormatError(f"{config_path}: no 'project:' section")
    class_names = project.get("class_names")
    if not isinstance(class_names, list) or not class_names:
        raise LabelFormatError(f"{config_path}: 'project: class_names' is missing or empty")
    class_names = [str(c) for c in class_names]
    if class_names[0] != BACKGROUND:
        raise LabelFormatError(f"{config_path}: class_names must start with '{BACKGROUND}', got {class_names}")
    data_dir = root / "DATA"
    if not data_dir.is_dir():
        raise LabelFormatError(f"{root}: no DATA/ folder")
    result = DegProject(root=root, name=str(project.get("name") or root.name), behaviours=class_names)
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        result.videos[folder.name] = _find_video(folder)
        label_path = _find_labels(folder)
        if label_path is None:
            continue            # an unlabelled video: listed in ``videos`` only
        _, names = read_deg_labels(label_path)
        if names != class_names:
            raise LabelFormatError(f"{label_path}: columns {names} differ from class_names {class_names} "
                                   f"in {config_path}")
        result.labels[folder.name] = label_path
    for video in result.videos.values():
        if video is not None:
            result.fps = _video_fps_and_frames(video)[0]
            break
    return result


def _place_video(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` when possible (same file system, writable), else copy; atomic."""
    with io.atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            if not os.access(src, os.W_OK):
                raise PermissionError        # atomic_path fsyncs by opening for writing
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def import_deg_project(project_dir: str | os.PathLike, dest_root: str | os.PathLike,
                       dataset_id: str | None = None, fps: float | None = None):
    """Import a DeepEthogram project as a dataset in ``dest_root/<dataset_id>/``.

    ``dataset_id`` defaults to the project name. Labels go to ``labels/labeler/<video>.csv``; mp4
    videos are hard-linked (or copied) to ``videos/<video>.mp4``; other containers raise (transcode
    them first). Unlabelled videos are placed too and listed in ``extra["unlabelled_videos"]``;
    ``Dataset.videos`` holds the labelled ones. ``fps`` overrides the videos' own rate (needed
    when the project has no video). Returns the saved :class:`deg.data.datasets.Dataset`.
    """
    from deg.data.datasets import COMPLETE, Dataset

    project = read_deg_project(project_dir)
    for name, video in project.videos.items():
        if video is not None and video.suffix.lower() != ".mp4":
            raise LabelFormatError(f"{video}: only .mp4 videos are imported; transcode it first "
                                   f"(e.g. ffmpeg -i {video.name} {name}.mp4)")
    rate = fps if fps is not None else project.fps
    if rate is None:
        raise LabelFormatError(f"{project.root}: frame rate unknown (no readable video); pass fps=")
    dataset_id = dataset_id or re.sub(r"[^A-Za-z0-9_.-]+", "_", project.name)
    root = Path(dest_root) / dataset_id
    (root / COMPLETE).unlink(missing_ok=True)
    for name, label_path in project.labels.items():
        matrix, names = read_deg_labels(label_path)
        video = project.videos[name]
        if video is not None:
            n_frames = _video_fps_and_frames(video)[1]
            if n_frames and n_frames != len(matrix):
                raise LabelFormatError(f"{label_path}: {len(matrix)} label rows but {video} has {n_frames} frames")
        write_deg_labels(root / "labels" / "labeler" / f"{name}.csv", matrix, names)
    for name, video in project.videos.items():
        if video is not None:
            _place_video(video, root / "videos" / f"{name}.mp4")
    dataset = Dataset(
        id=dataset_id, fps=float(rate), behaviours=list(project.behaviours), annotators=["labeler"],
        train_annotator="labeler", videos=list(project.labels), synthetic=False, image_size=None,
        description=f"imported from DeepEthogram project {project.name!r} ({project.root})",
        extra={"source": "deepethogram_project", "unlabelled_videos": project.unlabelled}, root=root)
    dataset.save()
    return dataset


# ============================================================================ Sturman intervals
_STURMAN_SEPARATORS = (";", ",", "\t")
_MARKERS = {"startend", "start", "end", "default"}


def _is_marker(kind: str) -> bool:
    """Start/End and _DEFAULT rows (any case, any punctuation: StartEnd, Start_End, _default)."""
    return re.sub(r"[^a-z]", "", kind.lower()) in _MARKERS


@dataclass
class SturmanLabels:
    """Per-frame labels from one Sturman interval file.

    ``matrices[(video, annotator)]`` is (n_frames, K) int8 over ``behaviours`` (background first);
    ``intervals`` holds the parsed behaviour rows (columns video, annotator, behaviour, start_s,
    end_s; markers removed); ``annotator_source`` says where annotator names came from.
    """
    behaviours: list[str]
    matrices: dict[tuple[str, str], np.ndarray]
    fps: float
    n_frames: int
    annotator_source: str                      # "file" or "experimenter"
    intervals: pd.DataFrame
    dlc_files: dict[str, str] = field(default_factory=dict)   # video -> DLCFile, when the column exists

    @property
    def videos(self) -> list[str]:
        return sorted({v for v, _ in self.matrices}, key=_natural_key)

    @property
    def annotators(self) -> list[str]:
        return sorted({a for _, a in self.matrices})


def _natural_key(name: str) -> list:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def _read_interval_table(path: Path) -> pd.DataFrame:
    """The raw table with stripped, case-folded column names; separator sniffed from the header."""
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise LabelFormatError(f"{path}: empty file")
    header = text.lstrip().splitlines()[0]
    counts = {sep: header.count(sep) for sep in _STURMAN_SEPARATORS}
    sep = max(counts, key=counts.get)
    if counts[sep] == 0:
        raise LabelFormatError(f"{path}: cannot detect the separator (expected ';', ',' or tab) in header "
                               f"{header[:80]!r}")
    try:
        table = pd.read_csv(_io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            skipinitialspace=True, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LabelFormatError(f"{path}: cannot parse as {sep!r}-separated table ({exc})") from exc
    table.columns = [str(c).strip().strip('"').strip().lower() for c in table.columns]
    if table.columns.duplicated().any():
        raise LabelFormatError(f"{path}: duplicate columns {list(table.columns)}")
    return table.apply(lambda col: col.fillna("").str.strip())


def _line(table: pd.DataFrame | pd.Series, row: int) -> int:
    """File line of positional data row ``row`` (header is line 1; blank lines not counted)."""
    return int(table.index[row]) + 2


def _seconds(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = table[column].iat[row]
        raise LabelFormatError(f"{path}: line {_line(table, row)}, column {column!r}: {value!r} is not a number "
                               "of seconds")
    return values


_FILE_STEM = re.compile(r"^(?P<video>.*?_\d+)(?:_(?P<suffix>.+))?$")


def _split_file_column(files: pd.Series, path: Path) -> tuple[pd.Series, pd.Series]:
    """``OFT_11_Jin2.json`` -> video ``OFT_11``, annotator code ``Jin`` (trailing digits dropped)."""
    stems = files.str.replace(r"\.[A-Za-z0-9]+$", "", regex=True)
    parts = stems.str.extract(_FILE_STEM)
    if parts["video"].isna().any():
        row = int(np.flatnonzero(parts["video"].isna())[0])
        raise LabelFormatError(f"{path}: line {_line(files, row)}: cannot read a video id from file {files.iat[row]!r} "
                               "(expected <name>_<number>_<annotator>.<ext>)")
    suffix = parts["suffix"].fillna("").str.replace(r"\d+$", "", regex=True)
    return parts["video"], suffix


def _choose_annotators(suffix: pd.Series | None, experimenter: pd.Series | None, source: str,
                       path: Path) -> tuple[pd.Series, str]:
    """Annotator per row, and where it came from.

    Rule for ``source="auto"``: use the file-name code (``OFT_11_FA.csv`` -> ``FA``) when the
    Experimenter column is absent, has an empty cell, or holds a single name while the codes
    differ, or when codes and Experimenter names correspond one-to-one (OFT: FA/Furkan, Jin/Jin,
    OS/Oliver); otherwise (EPM: Oliver's files are ``_OS`` and ``_OS2``, Sian's ``_SD`` and
    ``_adjusted_SD``) use the Experimenter column.
    """
    has_suffix = suffix is not None and (suffix != "").all()
    has_exp = experimenter is not None and (experimenter != "").all()
    if source == "auto":
        if has_suffix and has_exp:
            pairs = pd.DataFrame({"s": suffix, "e": experimenter}).drop_duplicates()
            one_to_one = not pairs["s"].duplicated().any() and not pairs["e"].duplicated().any()
            constant_exp = experimenter.nunique() == 1 and suffix.nunique() > 1
            source = "file" if one_to_one or constant_exp else "experimenter"
        else:
            source = "file" if has_suffix else "experimenter"
    if source == "file" and has_suffix:
        return suffix, "file"
    if source == "experimenter" and has_exp:
        return experimenter, "experimenter"
    raise LabelFormatError(f"{path}: cannot tell the annotator of every row (need an annotator code in the "
                           "'file' column or a filled 'Experimenter' column)")


def _frame_runs(start_s: np.ndarray, end_s: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """First and last frame i with ``start <= i / fps <= end`` (DLCAnalyzer's convention).

    ``ceil(start * fps)`` can be off by one where ``start * fps`` rounds across an integer, so
    the bounds are corrected against the very comparison the convention states.
    """
    first = np.ceil(start_s * fps).astype(np.int64)
    first += first / fps < start_s
    first -= (first - 1) / fps >= start_s
    last = np.floor(end_s * fps).astype(np.int64)
    last -= last / fps > end_s
    last += (last + 1) / fps <= end_s
    return first, last


def read_sturman(path: str | os.PathLike, fps: float = 25.0, n_frames: int = 15000,
                 annotator_from: str = "auto", behaviours: Sequence[str] | None = None) -> SturmanLabels:
    """Read a Sturman et al. interval label file into per-frame matrices.

    The file lists intervals ``file;Experimenter;from;to;type;ID;DLCFile`` (columns found by
    name, any order, ``;``/``,``/tab separated); frame ``i`` carries ``type`` when
    ``from <= i / fps <= to``. ``Start/End`` and ``_DEFAULT`` rows are markers and ignored. Every
    video gets the fixed window ``0 .. n_frames - 1`` (the README's 0-600 s at 25 fps), all
    frames labelled; intervals past the window are clipped.

    Video id: from the ``file`` column (``OFT_11_FA.csv`` -> ``OFT_11``, ``EPM_11_adjusted_SD.json``
    -> ``EPM_11``), which the three annotators of a video share; the ``ID`` column when there is
    no ``file`` column. Annotator: see :func:`_choose_annotators` (``annotator_from`` may force
    ``"file"`` or ``"experimenter"``). Behaviours: sorted by name unless ``behaviours`` (without
    background) fixes the columns.
    """
    path = Path(path)
    _require_file(path)
    if annotator_from not in ("auto", "file", "experimenter"):
        raise ValueError(f"annotator_from must be 'auto', 'file' or 'experimenter', not {annotator_from!r}")
    table = _read_interval_table(path)
    missing = [c for c in ("from", "to", "type") if c not in table.columns]
    if missing:
        raise LabelFormatError(f"{path}: missing column(s) {missing} (found {list(table.columns)})")
    if "file" not in table.columns and "id" not in table.columns:
        raise LabelFormatError(f"{path}: needs a 'file' or an 'ID' column to tell videos apart")
    if len(table) == 0:
        raise LabelFormatError(f"{path}: header but no intervals")
    # A row without a type (empty, or R's NA) names no behaviour: AllLabDataOFT_final.csv line 5032
    # is such a row (``312.593;NA;NA``, an interval never closed). Drop it, loudly.
    untyped = table["type"].str.lower().isin(("", "na", "nan")).to_numpy()
    if untyped.any():
        lines = (np.flatnonzero(untyped) + 2).tolist()
        warnings.warn(f"{path}: skipped {len(lines)} row(s) without a behaviour type, line(s) {lines[:10]}",
                      LabelWarning, stacklevel=2)
        table = table[~untyped]            # keeps the original index for line numbers in errors
        if len(table) == 0:
            raise LabelFormatError(f"{path}: no row has a behaviour type")
    start_s, end_s = _seconds(table, "from", path), _seconds(table, "to", path)
    backwards = end_s < start_s
    if backwards.any():
        row = int(np.flatnonzero(backwards)[0])
        raise LabelFormatError(f"{path}: line {_line(table, row)}: interval ends ({end_s[row]}) before it starts "
                               f"({start_s[row]})")
    kinds = table["type"]
    if "file" in table.columns:
        if (table["file"] == "").any():
            row = int(np.flatnonzero(table["file"] == "")[0])
            raise LabelFormatError(f"{path}: line {_line(table, row)}: empty 'file'")
        video, suffix = _split_file_column(table["file"], path)
    else:
        video, suffix = table["id"], None
    experimenter = table["experimenter"] if "experimenter" in table.columns else None
    annotator, source = _choose_annotators(suffix, experimenter, annotator_from, path)

    keep = ~kinds.map(_is_marker).to_numpy(dtype=bool)
    found = sorted(set(kinds[keep]), key=str.lower)
    names = list(behaviours) if behaviours is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise LabelFormatError(f"{path}: behaviours {unknown} are not among the requested {names}")
    intervals = pd.DataFrame({"video": video[keep].to_numpy(), "annotator": annotator[keep].to_numpy(),
                              "behaviour": kinds[keep].to_numpy(), "start_s": start_s[keep],
                              "end_s": end_s[keep]})
    first, last = _frame_runs(intervals["start_s"].to_numpy(), intervals["end_s"].to_numpy(), fps)
    first, last = np.clip(first, 0, None), np.clip(last, None, n_frames - 1)
    column = intervals["behaviour"].map({n: i for i, n in enumerate(names)}).to_numpy(dtype=np.int64)

    matrices: dict[tuple[str, str], np.ndarray] = {}
    # Every (video, annotator) pair in the file gets a matrix, even one with only marker rows.
    pairs = pd.DataFrame({"video": video, "annotator": annotator}).drop_duplicates()
    groups = intervals.groupby(["video", "annotator"], sort=False).indices
    for vid, ann in pairs.itertuples(index=False):
        rows = groups.get((vid, ann), np.zeros(0, dtype=np.int64))
        valid = rows[first[rows] <= last[rows]]          # drop intervals wholly outside the window
        cover = _runs_to_matrix(first[valid], last[valid], column[valid], n_frames, len(names))
        matrices[(vid, ann)] = background_from(cover > 0)
    dlc_files = {}
    if "dlcfile" in table.columns:
        dlc_files = dict(pd.DataFrame({"v": video, "d": table["dlcfile"]}).drop_duplicates("v").to_numpy())
    return SturmanLabels(behaviours=[BACKGROUND] + names, matrices=matrices, fps=float(fps),
                         n_frames=int(n_frames), annotator_source=source, intervals=intervals,
                         dlc_files=dlc_files)


# ============================================================================ Caltech Behavior Annotator
_STREAM_HEADER = re.compile(r"^\s*(S\d+)\s*:\s*start\s+end\s+type\s*$", re.IGNORECASE)


def _parse_caltech(path: Path) -> tuple[list[str], dict[str, list[tuple[int, int, str, int]]]]:
    """(behaviour names from the configuration header, {stream: [(start, end, type, line), ...]})."""
    lines = path.read_bytes().decode("utf-8-sig", errors="replace").splitlines()
    if not any(line.strip() for line in lines):
        raise LabelFormatError(f"{path}: empty file")
    try:
        config_at = next(i for i, line in enumerate(lines) if line.strip().lower() == "configuration file:")
    except StopIteration:
        raise LabelFormatError(f"{path}: no 'Configuration file:' header (not a Caltech Behavior Annotator "
                               "file?)") from None
    names: list[str] = []
    for line in lines[config_at + 1:]:
        if not line.strip():
            break
        names.append(line.split()[0])
    if not names:
        raise LabelFormatError(f"{path}: the configuration header lists no behaviours")
    streams: dict[str, list[tuple[int, int, str, int]]] = {}
    current: list | None = None
    for number, line in enumerate(lines[config_at + len(names) + 1:], start=config_at + len(names) + 2):
        match = _STREAM_HEADER.match(line)
        if match:
            if match.group(1) in streams:
                raise LabelFormatError(f"{path}: line {number}: stream {match.group(1)} appears twice")
            current = streams[match.group(1)] = []
            continue
        tokens = line.split()
        if not tokens or set(line.strip()) == {"-"}:
            continue
        if current is None:
            raise LabelFormatError(f"{path}: line {number}: {line.strip()!r} before any stream header (S1:)")
        if len(tokens) != 3 or not (tokens[0].isdigit() and tokens[1].isdigit()):
            raise LabelFormatError(f"{path}: line {number}: expected '<start> <end> <type>', got {line.strip()!r}")
        start, end = int(tokens[0]), int(tokens[1])
        if start < 1 or end < start:
            raise LabelFormatError(f"{path}: line {number}: bad frame range {start}-{end} (1-indexed, inclusive)")
        if tokens[2] not in names:
            raise LabelFormatError(f"{path}: line {number}: type {tokens[2]!r} is not in the configuration "
                                   f"header {names}")
        current.append((start, end, tokens[2], number))
    if not streams:
        raise LabelFormatError(f"{path}: no label streams (S1:, S2:, ...)")
    return names, streams


def read_caltech(path: str | os.PathLike, n_frames: int | None = None, on_overrun: str = "error",
                 background: str = "base") -> dict[str, tuple[np.ndarray, list[str]]]:
    """Read a Caltech Behavior Annotator file: ``{stream: (matrix, behaviours)}``.

    Every stream in the file is returned (rat_social files have S1 and usually S2; the 8 files
    without S2 also have no aggression in S1). Behaviours come from the file's configuration
    header, the same list for each stream; its ``background`` entry (``base``) becomes column 0.
    Segments are 1-indexed, inclusive, and may not overlap within a stream. Frames no segment
    covers are unlabelled (-1).

    T is ``n_frames`` when given, else the last annotated frame of any stream. Annotations past
    ``n_frames`` raise, unless ``on_overrun="trim"`` which cuts them and warns
    (:class:`LabelOverrunWarning`) with the file and the number of frames cut.
    """
    path = Path(path)
    _require_file(path)
    if on_overrun not in ("error", "trim"):
        raise ValueError(f"on_overrun must be 'error' or 'trim', not {on_overrun!r}")
    names, streams = _parse_caltech(path)
    others = [n for n in names if n != background]
    column = {background: 0, **{n: i + 1 for i, n in enumerate(others)}}
    behaviours = [BACKGROUND] + others
    last_frame = max((seg[1] for segs in streams.values() for seg in segs), default=0)
    if n_frames is None:
        n_frames = last_frame
    elif last_frame > n_frames:
        excess = last_frame - n_frames
        if on_overrun == "error":
            raise LabelFormatError(f"{path}: annotation runs to frame {last_frame}, {excess} frame(s) past the "
                                   f"{n_frames} frames of the video; pass on_overrun='trim' to cut them")
        warnings.warn(f"{path}: trimmed {excess} annotated frame(s) past frame {n_frames}",
                      LabelOverrunWarning, stacklevel=2)
    result = {}
    for stream, segments in streams.items():
        if not segments:
            raise LabelFormatError(f"{path}: stream {stream} has no segments")
        seg = np.array([(s, e, column[t], line) for s, e, t, line in segments], dtype=np.int64)
        first, last = seg[:, 0] - 1, np.minimum(seg[:, 1], n_frames) - 1     # to 0-indexed, trimmed
        inside = first <= last
        cover = _runs_to_matrix(first[inside], last[inside], seg[inside, 2], n_frames, len(behaviours))
        count = cover.sum(axis=1)
        if (count > 1).any():
            frame = int(np.flatnonzero(count > 1)[0])
            raise LabelFormatError(f"{path}: stream {stream}: segments overlap at frame {frame + 1}")
        result[stream] = (background_from(cover[:, 1:] > 0, labelled=count == 1), list(behaviours))
    return result


if __name__ == "__main__":       # python -m deg.data.labels convert IN OUT_DIR [...]: see deg.data.convert
    import sys

    if sys.argv[1:2] != ["convert"]:
        sys.exit("usage: python -m deg.data.labels convert IN OUT_DIR [--fps F] [--n-frames N] [--format FMT]")
    from deg.data.convert import main as convert_main

    sys.exit(convert_main(sys.argv[2:]))
