"""Convert any supported label file into DeepEthogram per-frame label CSVs.

``python -m deg.data.labels convert IN OUT_DIR [--fps F] [--n-frames N] [--format FMT]``

Supported inputs (detected from the content unless ``--format`` names one of :data:`FORMATS`):

=================  ===============================================  =====================
format             what                                            reader
=================  ===============================================  =====================
``deg``            DeepEthogram per-frame CSV (``background`` col)  labels.read_deg_labels
``sturman``        Sturman et al. interval file (from/to/type)     labels.read_sturman
``caltech``        Caltech Behavior Annotator ``.txt``             labels.read_caltech
``boris_export``   BORIS event export (CSV/TSV)                    boris.read_boris_export
``boris_project``  BORIS project (``.boris`` JSON)                 boris.read_boris_project
``behaviordepot``  BehaviorDEPOT ``hB_*.mat`` (MATLAB v5 / v7.3)   behaviordepot
=================  ===============================================  =====================

Output: one CSV per video and subject, ``background`` first, 0/1 and -1 on unlabelled frames:
``OUT_DIR/<video>.csv`` (``<video>_<subject>.csv`` when a file has several subjects), under
``OUT_DIR/<annotator>/`` when the file names its annotators (Sturman files hold several).
Caltech label streams (``S1``, ``S2``) are independent channels of the same frames and are
merged into one multi-label matrix (:func:`combine_streams`).

``--fps`` overrides the file's frame rate (needed for Sturman files, default 25; BORIS files
carry theirs). ``--n-frames`` fixes T: readers with a time axis use it directly; otherwise
longer label tracks are cut (with a warning) and shorter ones padded as unlabelled (-1).
"""
from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from deg.data.labels import (
    BACKGROUND,
    LabelFileNotFoundError,
    LabelFormatError,
    LabelWarning,
    background_from,
    write_deg_labels,
)

FORMATS = ("deg", "sturman", "caltech", "boris_export", "boris_project", "behaviordepot")
STURMAN_DEFAULT_FPS = 25.0        # ../shared/data/README.md: Sturman interval files are at 25 fps
STURMAN_DEFAULT_FRAMES = 15000    # the fixed 0-600 s window (see deg.data.labels.read_sturman)


@dataclass
class LabelTrack:
    """One video's labels by one annotator for one subject: (T, K) int8, background first."""
    video: str
    matrix: np.ndarray
    behaviours: list[str]
    subject: str | None = None
    annotator: str | None = None
    fps: float | None = None           # when the file states it (BORIS) or it was given


# ============================================================================ detection
def detect_format(path: str | os.PathLike) -> str:
    """The label format of ``path`` (one of :data:`FORMATS`), from its content."""
    from deg.data import behaviordepot, boris

    path = Path(path)
    if not path.is_file():
        raise LabelFileNotFoundError(f"{path}: label file not found")
    if behaviordepot.is_behaviordepot(path):
        return "behaviordepot"
    if boris.is_boris_project(path):
        return "boris_project"
    if boris.is_boris_export(path):
        return "boris_export"
    head = path.read_bytes()[:1 << 16].decode("utf-8-sig", errors="replace")
    lines = [line for line in head.splitlines() if line.strip()]
    if any(line.strip().lower() == "configuration file:" for line in lines[:5]) or \
            head.startswith("Caltech Behavior Annotator"):
        return "caltech"
    if lines:
        first = lines[0].lower()
        cells = {c.strip().strip('"') for sep in (",", ";", "\t") for c in first.split(sep)}
        if BACKGROUND in cells:
            return "deg"
        if {"from", "to", "type"} <= cells:
            return "sturman"
    raise LabelFormatError(f"{path}: unknown label format; supported: {', '.join(FORMATS)} "
                           "(name one with --format)")


# ============================================================================ reading
def combine_streams(streams: dict[str, tuple[np.ndarray, list[str]]]) -> tuple[np.ndarray, list[str]]:
    """Merge independent label streams of the same frames into one multi-label matrix.

    streams: ``{name: ((T, K) int8, behaviours)}`` with identical behaviour lists (a Caltech
    file's S1, S2, ...). A behaviour is on where any stream has it; a frame is labelled where
    every stream labels it. Returns ((T, K) int8, behaviours).
    """
    matrices = list(streams.values())
    names = matrices[0][1]
    if any(n != names for _, n in matrices):
        raise ValueError(f"streams {list(streams)} have different behaviour lists")
    stack = np.stack([m for m, _ in matrices])                    # (S, T, K)
    labelled = (stack[..., 0] != -1).all(axis=0)
    return background_from(stack[..., 1:].clip(0, 1).max(axis=0), labelled), list(names)


def fit_frames(matrix: np.ndarray, n_frames: int | None, source: str) -> np.ndarray:
    """Cut (warning) or pad with unlabelled rows a (T, K) matrix to ``n_frames`` (None: keep)."""
    if n_frames is None or n_frames == len(matrix):
        return matrix
    if n_frames < len(matrix):
        warnings.warn(f"{source}: {len(matrix)} label rows cut to {n_frames} frames", LabelWarning, stacklevel=3)
        return matrix[:n_frames]
    pad = np.full((n_frames - len(matrix), matrix.shape[1]), -1, dtype=matrix.dtype)
    return np.concatenate([matrix, pad])


def read_label_tracks(path: str | os.PathLike, format: str | None = None, fps: float | None = None,
                      n_frames: int | None = None) -> list[LabelTrack]:
    """Every (video, subject, annotator) label track of a supported file; see the module doc."""
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "deg":
        from deg.data.labels import read_deg_labels

        matrix, names = read_deg_labels(path)
        video = path.stem[: -len("_labels")] if path.stem.endswith("_labels") else path.stem
        return [LabelTrack(video, fit_frames(matrix, n_frames, str(path)), names)]
    if fmt == "sturman":
        from deg.data.labels import read_sturman

        parsed = read_sturman(path, fps=fps or STURMAN_DEFAULT_FPS, n_frames=n_frames or STURMAN_DEFAULT_FRAMES)
        return [LabelTrack(video, parsed.matrices[(video, annotator)], parsed.behaviours, annotator=annotator,
                           fps=parsed.fps)
                for video in parsed.videos for annotator in parsed.annotators
                if (video, annotator) in parsed.matrices]
    if fmt == "caltech":
        from deg.data.labels import read_caltech

        streams = read_caltech(path, n_frames=n_frames, on_overrun="trim")
        matrix, names = combine_streams(streams)
        video = path.stem[: -len("_annot")] if path.stem.endswith("_annot") else path.stem
        return [LabelTrack(video, matrix, names)]
    if fmt == "behaviordepot":
        from deg.data.behaviordepot import read_behaviordepot

        result = read_behaviordepot(path)
        return [LabelTrack(result.video, fit_frames(result.labels, n_frames, str(path)), result.behaviours)]
    from deg.data import boris

    observations = boris.read_boris_project(path) if fmt == "boris_project" else boris.read_boris_export(path)
    tracks = []
    for obs in observations:
        for subject, (matrix, names) in boris.observation_labels(obs, fps=fps, n_frames=n_frames).items():
            tracks.append(LabelTrack(obs.video, matrix, names, subject=subject, fps=fps or obs.fps))
    return tracks


# ============================================================================ writing
def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "unnamed"


def output_path(out_dir: Path, track: LabelTrack, several_subjects: bool) -> Path:
    name = _safe(track.video) + (f"_{_safe(track.subject)}" if several_subjects and track.subject else "")
    folder = out_dir / _safe(track.annotator) if track.annotator else out_dir
    return folder / f"{name}.csv"


def convert(path: str | os.PathLike, out_dir: str | os.PathLike, format: str | None = None,
            fps: float | None = None, n_frames: int | None = None) -> list[Path]:
    """Convert ``path`` into DeepEthogram label CSVs under ``out_dir``; returns the files written."""
    out_dir = Path(out_dir)
    tracks = read_label_tracks(path, format=format, fps=fps, n_frames=n_frames)
    if not tracks:
        raise LabelFormatError(f"{path}: no labels found")
    subjects_per_video: dict[str, set] = {}
    for track in tracks:
        subjects_per_video.setdefault(track.video, set()).add(track.subject)
    targets = [output_path(out_dir, t, len(subjects_per_video[t.video]) > 1) for t in tracks]
    if len(set(targets)) != len(targets):
        dup = next(p for p in targets if targets.count(p) > 1)
        raise LabelFormatError(f"{path}: two label tracks would both be written to {dup}")
    return [write_deg_labels(target, track.matrix, track.behaviours) for target, track in zip(targets, tracks)]


# ============================================================================ a dataset from label files
def align_behaviours(matrix: np.ndarray, behaviours: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """(T, K) labels over ``behaviours`` -> (T, len(target)) over ``target`` (a superset, background first).

    Behaviours a file never mentions are absent (0) on its labelled frames.
    """
    missing = [b for b in behaviours if b not in target]
    if missing:
        raise ValueError(f"behaviours {missing} are not among {list(target)}")
    out = np.zeros((len(matrix), len(target)), dtype=np.int8)
    for column, name in enumerate(behaviours):
        out[:, list(target).index(name)] = matrix[:, column]
    unlabelled = matrix[:, 0] == -1
    out[unlabelled] = -1
    return out


def _find_file(folder: Path | None, stem: str, suffixes: Sequence[str]) -> Path | None:
    if folder is None:
        return None
    exact = [folder / f"{stem}{s}" for s in suffixes if (folder / f"{stem}{s}").is_file()]
    if exact:
        return exact[0]
    prefixed = sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith(stem)
                      and p.name.lower().endswith(tuple(suffixes)))
    if len(prefixed) > 1:
        raise LabelFormatError(f"{folder}: several files start with {stem!r}: {[p.name for p in prefixed]}")
    return prefixed[0] if prefixed else None


def _place_file(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` when the file system allows it, else copy; atomic."""
    import shutil

    from deg import io

    with io.atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            if not os.access(src, os.W_OK):
                raise PermissionError            # atomic_path fsyncs by opening the file
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def import_labels(label_files: Sequence[str | os.PathLike], dest_root: str | os.PathLike, dataset_id: str,
                  videos_dir: str | os.PathLike | None = None, pose_dir: str | os.PathLike | None = None,
                  fps: float | None = None, format: str | None = None, subject: str | None = None,
                  annotator: str = "labeler"):
    """Make a dataset ``dest_root/<dataset_id>/`` from label files of any supported format.

    Each file is read with :func:`read_label_tracks`; its videos are matched by name with
    ``videos_dir/<video>.mp4`` (hard-linked or copied to ``videos/``) and, optionally, pose files
    ``pose_dir/<video>*.csv|.h5`` (written to ``pose/<video>.csv``). Label tracks are cut or
    padded (unlabelled) to the video's frame count, with a warning. Behaviours are the union
    over files; a file that never mentions one has it absent. A file with several subjects needs
    ``subject=`` to choose one. The frame rate is ``fps``, else the first video's. Returns the
    saved :class:`deg.data.datasets.Dataset`.
    """
    from deg.data.datasets import COMPLETE, Dataset
    from deg.data.pose import detect_pose_format, read_pose, write_pose
    from deg.data.video import video_info

    videos_dir = Path(videos_dir) if videos_dir is not None else None
    pose_dir = Path(pose_dir) if pose_dir is not None else None
    tracks: dict[str, LabelTrack] = {}
    for path in map(Path, label_files):
        found = read_label_tracks(path, format=format, fps=fps)
        subjects = sorted({t.subject for t in found if t.subject is not None})
        if subject is not None:
            found = [t for t in found if t.subject == subject]
            if not found:
                raise LabelFormatError(f"{path}: no labels of subject {subject!r} (subjects: {subjects})")
        elif len(subjects) > 1:
            raise LabelFormatError(f"{path}: several subjects {subjects}; choose one with subject=")
        for track in found:
            if track.annotator is not None and track.annotator != annotator:
                continue                                     # multi-annotator files: the named one only
            if track.video in tracks:
                raise LabelFormatError(f"{path}: video {track.video!r} is labelled twice (also in another file)")
            tracks[track.video] = track
    if not tracks:
        raise LabelFormatError(f"no labels of annotator {annotator!r} in {list(map(str, label_files))}")
    behaviours = [BACKGROUND] + sorted({b for t in tracks.values() for b in t.behaviours[1:]}, key=str.lower)
    root = Path(dest_root) / dataset_id
    (root / COMPLETE).unlink(missing_ok=True)
    rate, animals, points = fps, None, None
    for video, track in tracks.items():
        matrix = align_behaviours(track.matrix, track.behaviours, behaviours)
        movie = _find_file(videos_dir, video, (".mp4",))
        if movie is not None:
            info = video_info(movie)
            rate = rate or info.fps
            matrix = fit_frames(matrix, info.n_frames, f"{video} (labels vs {movie.name})")
            _place_file(movie, root / "videos" / f"{video}.mp4")
        elif videos_dir is not None:
            warnings.warn(f"{videos_dir}: no {video}.mp4; {video} is labels-only", LabelWarning, stacklevel=2)
        pose_file = _find_file(pose_dir, video, (".csv", ".csv.gz", ".h5"))
        if pose_file is not None:
            pose = read_pose(pose_file)                       # validates; CSVs are then copied as they are
            animals, points = animals or pose.animals, points or pose.points
            if detect_pose_format(pose_file) == "csv" and pose_file.suffix.lower() == ".csv":
                _place_file(pose_file, root / "pose" / f"{video}.csv")
            else:
                write_pose(root / "pose" / f"{video}.csv", pose)
        write_deg_labels(root / "labels" / annotator / f"{video}.csv", matrix, behaviours)
    rate = rate or next((t.fps for t in tracks.values() if t.fps), None)
    if rate is None:
        raise LabelFormatError(f"frame rate unknown for {dataset_id} (no video found and the labels carry none); "
                               "pass fps")
    dataset = Dataset(
        id=dataset_id, fps=float(rate), behaviours=behaviours, annotators=[annotator], train_annotator=annotator,
        videos=list(tracks), synthetic=False,
        description=f"imported from {len(label_files)} label file(s) ({format or 'format detected'})",
        extra={"source": "deg.data.convert.import_labels", "label_files": [str(p) for p in label_files],
               "subject": subject},
        pose_info={"animals": animals, "points": points, "skeleton": None, "arena_px": None} if points else None,
        root=root)
    dataset.save()
    return dataset


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deg.data.labels convert",
        description="Convert a label file (DeepEthogram CSV, Sturman, Caltech, BORIS export or project, "
                    "BehaviorDEPOT hB_*.mat) into DeepEthogram label CSVs, one per video and subject.")
    parser.add_argument("input", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--fps", type=float, default=None, help="frame rate (default: the file's; Sturman: 25)")
    parser.add_argument("--n-frames", type=int, default=None, help="frames per video (default: from the file)")
    parser.add_argument("--format", choices=FORMATS, default=None, help="input format (default: detected)")
    args = parser.parse_args(argv)
    try:
        written = convert(args.input, args.out_dir, format=args.format, fps=args.fps, n_frames=args.n_frames)
    except (LabelFormatError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    fmt = args.format or detect_format(args.input)
    print(f"{args.input} ({fmt}): wrote {len(written)} label file(s) to {args.out_dir}")
    for path in written:
        print(f"  {path}")
    return 0
