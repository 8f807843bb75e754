"""Prepare the public pose datasets into the standard layout (no videos).

``data/<id>/labels/<annotator>/<video>.csv`` + ``pose/<video>.csv`` + ``dataset.json`` (with its
``pose`` entry) + ``COMPLETE``, for

* ``rat_social``: 40 two-rat sessions (DeepLabCut multi-animal, 2 x 5 points), Caltech labels with
  the S1 and S2 streams merged into one multi-label matrix (:func:`deg.data.convert.combine_streams`);
* ``behaviordepot_freezing``: 2 sessions, 8 points, BehaviorDEPOT freezing labels;
* ``ethome_social``: 1 session, adult + juvenile x 7 points, BORIS ``interact`` labels;
* ``sturman_oft_pose``: the two 1,998-frame DeepLabCut excerpts of Sturman-OFT with the three
  annotators' OFT labels of the same frames. A dataset of its own: ``sturman_oft`` stays the
  20-video label-only set (15,000 frames per video) that the human-agreement panels use.

Files come from their origin, or from ``DEG_DATA_MIRROR`` (see :mod:`deg.data.download`), into
``data/<id>/raw``. Pose files that are already DeepLabCut CSVs with the dataset's point names
are copied unchanged; label matrices are cut to the pose length and what was cut is recorded in
``extra["trimmed"]`` (frame counts per video). Called by :func:`deg.data.prepare.prepare`.
"""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from deg import io, paths
from deg.data.datasets import COMPLETE, Dataset, open_dataset
from deg.data.labels import write_deg_labels
from deg.data.pose import Pose, read_pose

# BehaviorDEPOT's two demo tracking files name the same 8 points differently; one list for both
# (the names of deg.pose.features' "behaviordepot" skeleton; demo1's "Tail", demo2's "midtail" -> "tail").
# Skeleton names in dataset.json are keys of deg.pose.features.SKELETONS.
BEHAVIORDEPOT_POINTS = ["nose", "left_ear", "right_ear", "mid_back", "left_hip", "right_hip", "tailbase", "tail"]
BEHAVIORDEPOT_SOURCE_POINTS = {
    "demo1": ["Nose", "Left Ear", "Right Ear", "Mid-Back", "Left Leg", "Right Leg", "Tailbase", "Tail"],
    "demo2": ["nose", "l_ear", "r_ear", "midback", "l_hip", "r_hip", "tailbase", "midtail"],
}
# From the demos' Params.mat (BehaviorDEPOT at the registry's commit): frame rate, (H, W), px/cm.
BEHAVIORDEPOT_VIDEO = {"demo1": (50.0, (750, 1000), 32.0), "demo2": (30.0, (480, 640), 23.0)}
STURMAN_POSE_VIDEOS = ("OFT_38", "OFT_44")
STURMAN_CORNERS = ("tl", "tr", "bl", "br")


def _place(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` atomically (raw downloads stay untouched in raw/)."""
    with io.atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)


def _begin(dataset_id: str) -> Path:
    root = paths.dataset_dir(dataset_id)
    (root / COMPLETE).unlink(missing_ok=True)
    for sub in ("labels", "pose"):
        if (root / sub).is_dir():
            shutil.rmtree(root / sub)
    return root


def _cut(matrix: np.ndarray, n_frames: int) -> tuple[np.ndarray, int]:
    """First ``n_frames`` rows (padded as unlabelled when shorter) and the number of rows cut."""
    if len(matrix) >= n_frames:
        return matrix[:n_frames], len(matrix) - n_frames
    pad = np.full((n_frames - len(matrix), matrix.shape[1]), -1, dtype=np.int8)
    return np.concatenate([matrix, pad]), 0


# ============================================================================ rat_social
def _rat(dataset_id: str, videos: Sequence[str] | None, progress: bool) -> Dataset:
    from tqdm.auto import tqdm

    from deg.data import download, registry
    from deg.data.convert import combine_streams
    from deg.data.labels import read_caltech

    record = registry.get(dataset_id)
    numbers = [int(name.split("_")[0]) for name in record.file_names("labels")]
    names = {n: f"session{n:02d}" for n in numbers}
    if videos is not None:
        unknown = sorted(set(videos) - set(names.values()))
        if unknown:
            raise KeyError(f"{dataset_id}: no videos {unknown}; known: session01 .. session{max(numbers):02d}")
        numbers = [n for n in numbers if names[n] in videos]
    pose_name = {int(f.name[: f.name.index("DLC")]): f.name for f in record.files if f.role == "pose"}
    wanted = [f"{n}_annot.txt" for n in numbers] + [pose_name[n] for n in numbers]
    files = download.fetch(dataset_id, files=wanted, progress=progress)
    root = _begin(dataset_id)
    trimmed, unannotated, behaviours, animals, points = {}, {}, list(record.behaviours), None, None
    for n in tqdm(numbers, desc=dataset_id, disable=not progress):
        video = names[n]
        pose = read_pose(files[pose_name[n]])
        if animals is None:
            animals, points = pose.animals, pose.points
        elif (pose.animals, pose.points) != (animals, points):
            raise ValueError(f"{files[pose_name[n]]}: animals/points {pose.animals}/{pose.points} differ from "
                             f"the other sessions' {animals}/{points}")
        _place(files[pose_name[n]], root / "pose" / f"{video}.csv")
        # T = the last annotated frame; then cut to (or pad as unlabelled up to) the pose length
        matrix, behaviours = combine_streams(read_caltech(files[f"{n}_annot.txt"]))
        if behaviours != list(record.behaviours):
            raise ValueError(f"{files[f'{n}_annot.txt']}: behaviours {behaviours} differ from the registry's "
                             f"{list(record.behaviours)}")
        if len(matrix) < pose.n_frames:
            unannotated[video] = pose.n_frames - len(matrix)
        matrix, cut = _cut(matrix, pose.n_frames)
        if cut:
            trimmed[video] = cut
        write_deg_labels(root / "labels" / "original" / f"{video}.csv", matrix, behaviours)
    dataset = Dataset(
        id=dataset_id, fps=float(record.fps), behaviours=behaviours, annotators=["original"],
        train_annotator="original", videos=[names[n] for n in numbers], synthetic=False,
        description=f"{record.title}: pose and labels (no videos); S1 and S2 label streams merged",
        extra={"label_only": True, "source": "caltech + deeplabcut", "label_streams": ["S1", "S2"],
               "trimmed": {"labels past the pose file's end, frames cut": trimmed,
                           "pose frames after the last annotation, unlabelled (-1)": unannotated},
               "subset": videos is not None},
        pose_info={"animals": animals, "points": points, "skeleton": "rat_social", "arena_px": None,
                   "fps_note": "30 fps as assumed by the source repository (not stated for the recordings)"},
        root=root)
    dataset.save()
    return dataset


# ============================================================================ behaviordepot_freezing
def _behaviordepot(dataset_id: str, videos: Sequence[str] | None, progress: bool) -> Dataset:
    from deg.data import download, registry
    from deg.data.behaviordepot import read_behaviordepot

    record = registry.get(dataset_id)
    names = [v for v in BEHAVIORDEPOT_SOURCE_POINTS if videos is None or v in videos]
    wanted = [f.name for f in record.files for v in names
              if f.name == f"{v}_tracking.csv" or f.name.startswith(f"hB_{v}_")]
    files = download.fetch(dataset_id, files=wanted, progress=progress)
    root = _begin(dataset_id)
    trimmed = {}
    for video in names:
        tracks = read_pose(files[f"{video}_tracking.csv"])
        source = BEHAVIORDEPOT_SOURCE_POINTS[video]
        missing = [p for p in source if p not in tracks.points]
        if missing:
            raise ValueError(f"{files[f'{video}_tracking.csv']}: points {missing} not found (has {tracks.points})")
        rename_dlc_points(files[f"{video}_tracking.csv"], root / "pose" / f"{video}.csv",
                          dict(zip(source, BEHAVIORDEPOT_POINTS)), animal="mouse")
        pose = read_pose(root / "pose" / f"{video}.csv")
        label_file = next(path for name, path in files.items() if name.startswith(f"hB_{video}_"))
        result = read_behaviordepot(label_file)
        matrix, cut = _cut(result.labels, pose.n_frames)
        if cut or len(result.labels) != pose.n_frames:
            trimmed[video] = len(result.labels) - pose.n_frames
        write_deg_labels(root / "labels" / "human" / f"{video}.csv", matrix, result.behaviours)
    fps_by_video = {v: BEHAVIORDEPOT_VIDEO[v][0] for v in names}
    dataset = Dataset(
        id=dataset_id, fps=fps_by_video[names[0]], behaviours=list(record.behaviours), annotators=["human"],
        train_annotator="human", videos=names, synthetic=False,
        description=f"{record.title}: pose and labels (no videos); fps differs per video (see pose.fps_by_video)",
        extra={"label_only": True, "source": "behaviordepot + deeplabcut",
               "trimmed": {"label frames minus pose frames": trimmed}, "subset": videos is not None},
        pose_info={"animals": ["mouse"], "points": list(BEHAVIORDEPOT_POINTS), "skeleton": "behaviordepot",
                   "arena_px": None, "fps_by_video": fps_by_video,
                   "frame_px_by_video": {v: list(BEHAVIORDEPOT_VIDEO[v][1]) for v in names},
                   "px_per_cm_by_video": {v: BEHAVIORDEPOT_VIDEO[v][2] for v in names},
                   "source_points": {v: BEHAVIORDEPOT_SOURCE_POINTS[v] for v in names},
                   "dropped_points": {"demo2": ["LED"]} if "demo2" in names else {}},
        root=root)
    dataset.save()
    return dataset


def rename_dlc_points(source: Path, dest: Path, rename: dict[str, str], animal: str) -> Path:
    """Write a single-animal DeepLabCut CSV's points ``rename`` (old -> new, in that order) as a
    multi-animal CSV with one animal; other points are dropped. The numbers are copied as text,
    so they stay bit-exact (and this is ~50x faster than reformatting floats).
    """
    lines = source.read_text().splitlines()
    rows = [line.split(",") for line in lines[:3]]
    if [r[0].strip().lower() for r in rows] != ["scorer", "bodyparts", "coords"]:
        raise ValueError(f"{source}: not a single-animal DeepLabCut CSV (header rows scorer/bodyparts/coords)")
    where = {(part.strip(), coord.strip()): i for i, (part, coord) in enumerate(zip(rows[1], rows[2])) if i}
    columns = []
    for old in rename:
        for coord in ("x", "y", "likelihood"):
            if (old, coord) not in where:
                raise ValueError(f"{source}: no column {old}/{coord}")
            columns.append(where[(old, coord)])
    scorer = rows[0][columns[0]]
    header = [["scorer"] + [scorer] * len(columns), ["individuals"] + [animal] * len(columns),
              ["bodyparts"] + [new for new in rename.values() for _ in range(3)],
              ["coords"] + ["x", "y", "likelihood"] * len(rename)]
    out = [",".join(row) for row in header]
    for line in lines[3:]:
        if line.strip():
            cells = line.split(",")
            out.append(",".join([cells[0]] + [cells[i] for i in columns]))
    return io.write_text(dest, "\n".join(out) + "\n")


# ============================================================================ ethome_social
def _ethome(dataset_id: str, videos: Sequence[str] | None, progress: bool) -> Dataset:
    from deg.data import boris, download, registry

    record = registry.get(dataset_id)
    files = download.fetch(dataset_id, progress=progress)
    pose_file = next(files[f.name] for f in record.files if f.role == "pose")
    label_file = next(files[f.name] for f in record.files if f.role == "labels")
    (obs,) = boris.read_boris_export(label_file)
    video = obs.video.removesuffix("_reencode")
    pose = read_pose(pose_file)
    labels = observation_labels_for(obs, list(record.behaviours[1:]), subject="adult")
    root = _begin(dataset_id)
    _place(pose_file, root / "pose" / f"{video}.csv")
    matrix, cut = _cut(labels, pose.n_frames)
    write_deg_labels(root / "labels" / "boris" / f"{video}.csv", matrix, ["background", *record.behaviours[1:]])
    dataset = Dataset(
        id=dataset_id, fps=float(record.fps), behaviours=list(record.behaviours), annotators=["boris"],
        train_annotator="boris", videos=[video], synthetic=False,
        description=f"{record.title}: pose and labels (no videos)",
        extra={"label_only": True, "source": "boris + deeplabcut", "boris_subject": "adult",
               "trimmed": {"label frames minus pose frames": {video: len(labels) - pose.n_frames}
                           if len(labels) != pose.n_frames else {}}, "subset": False},
        pose_info={"animals": pose.animals, "points": pose.points, "skeleton": "ethome", "arena_px": None},
        root=root)
    dataset.save()
    return dataset


def observation_labels_for(obs, behaviours: list[str], subject: str) -> np.ndarray:
    """(T, K) labels of one BORIS subject over ``behaviours`` (error naming the file if absent)."""
    from deg.data.boris import observation_labels
    from deg.data.labels import LabelFormatError

    per_subject = observation_labels(obs, behaviours=behaviours)
    if subject not in per_subject:
        raise LabelFormatError(f"{obs.source}: no events of subject {subject!r} (subjects: {list(per_subject)})")
    return per_subject[subject][0]


# ============================================================================ sturman_oft_pose
def _sturman_pose(dataset_id: str, videos: Sequence[str] | None, progress: bool) -> Dataset:
    from deg.data import download, registry
    from deg.data.labels import read_sturman, select_behaviours

    record = registry.get(dataset_id)
    label_name = record.file_names("labels")[0]
    files = download.fetch(dataset_id, progress=progress)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*without a behaviour type")   # known row, see read_sturman
        parsed = read_sturman(files[label_name], fps=record.fps)
    names = [v for v in STURMAN_POSE_VIDEOS if videos is None or v in videos]
    root = _begin(dataset_id)
    trimmed, arena, points = {}, {}, None
    for video in names:
        dlc = parsed.dlc_files.get(video)
        if dlc not in files:
            raise ValueError(f"{files[label_name]}: video {video}'s DLCFile {dlc!r} is not among the pose files "
                             f"{record.file_names('pose')}")
        pose = read_pose(files[dlc])
        points = points or pose.points
        _place(files[dlc], root / "pose" / f"{video}.csv")
        arena[video] = arena_size(pose)
        for annotator in parsed.annotators:
            kept, behaviours = select_behaviours(parsed.matrices[(video, annotator)], parsed.behaviours,
                                                 list(record.behaviours[1:]))
            matrix, cut = _cut(kept, pose.n_frames)
            trimmed[f"{annotator}/{video}"] = cut
            write_deg_labels(root / "labels" / annotator / f"{video}.csv", matrix, behaviours)
    sizes = np.array(list(arena.values()))
    dataset = Dataset(
        id=dataset_id, fps=float(record.fps), behaviours=list(record.behaviours), annotators=parsed.annotators,
        train_annotator=record.train_annotator, videos=names, synthetic=False,
        description=f"{record.title}: pose excerpts and the OFT labels of the same frames (no videos)",
        extra={"label_only": True, "source": "sturman + deeplabcut",
               "trimmed": {"label frames cut to the pose excerpt": trimmed}, "subset": videos is not None,
               "dropped_behaviours": sorted(set(parsed.behaviours) - set(record.behaviours))},
        pose_info={"animals": ["single"], "points": points, "skeleton": "sturman",
                   "arena_points": [*STURMAN_CORNERS, "centre"],          # corners and centre of the arena
                   "body_points": [p for p in points if p not in (*STURMAN_CORNERS, "centre")],
                   "arena_px": [round(float(v), 1) for v in np.median(sizes, axis=0)],
                   "arena_px_by_video": {v: [round(float(x), 1) for x in s] for v, s in arena.items()}},
        root=root)
    dataset.save()
    return dataset


def arena_size(pose: Pose, corners: Sequence[str] = STURMAN_CORNERS, min_likelihood: float = 0.9) -> tuple[float, float]:
    """(H, W) of the arena in pixels from tracked corners (top-left, top-right, bottom-left, bottom-right).

    Medians over confident frames of the left/right edge heights and top/bottom edge widths.
    """
    xy = pose.select(points=list(corners)).xy[:, 0]                    # (T, 4, 3)
    ok = (xy[..., 2] >= min_likelihood).all(axis=1)
    if not ok.any():
        raise ValueError(f"{pose.source}: no frame with all arena corners confident")
    tl, tr, bl, br = (xy[ok, i, :2] for i in range(4))
    width = np.median(np.concatenate([np.linalg.norm(tr - tl, axis=1), np.linalg.norm(br - bl, axis=1)]))
    height = np.median(np.concatenate([np.linalg.norm(bl - tl, axis=1), np.linalg.norm(br - tr, axis=1)]))
    return float(height), float(width)


# ============================================================================ entry point
PREPARERS: dict[str, Callable[[str, Sequence[str] | None, bool], Dataset]] = {
    "rat_social": _rat,
    "behaviordepot_freezing": _behaviordepot,
    "ethome_social": _ethome,
    "sturman_oft_pose": _sturman_pose,
}


def prepare(dataset_id: str, force: bool = False, progress: bool = True,
            videos: Sequence[str] | None = None) -> Dataset:
    """Prepare pose dataset ``dataset_id`` (a key of :data:`PREPARERS`); reuse a complete one.

    ``videos`` restricts it to some of its videos (quick looks, tests); the dataset then says
    ``extra["subset"] = True`` and a later full call prepares it again.
    """
    if dataset_id not in PREPARERS:
        raise KeyError(f"{dataset_id!r} is not a pose dataset; known: {', '.join(PREPARERS)}")
    root = paths.dataset_dir(dataset_id)
    if (root / COMPLETE).exists() and not force:
        existing = open_dataset(dataset_id)
        if (videos is None and not existing.extra.get("subset")) or \
                (videos is not None and sorted(existing.videos) == sorted(videos)):
            return existing
    return PREPARERS[dataset_id](dataset_id, videos, progress)


def prepare_or_skip(dataset_id: str, progress: bool = False, timeout: float = 10.0) -> tuple[Dataset | None, str]:
    """``(dataset, "")`` when ``dataset_id`` is prepared or can be; ``(None, reason)`` otherwise.

    For figure runs that include the real pose datasets whenever they are on disk or reachable:
    before downloading, the first missing file's source (``DEG_DATA_MIRROR`` or origin) is probed
    once with ``timeout`` seconds, so an offline machine skips in seconds instead of retrying
    every file. Checksum and format errors are not skipped: they raise.
    """
    import urllib.error
    import urllib.request

    from deg.data import download, registry

    if (paths.dataset_dir(dataset_id) / COMPLETE).exists():
        existing = open_dataset(dataset_id)
        if not existing.extra.get("subset"):
            return existing, ""
    record = registry.get(dataset_id)
    raw = paths.dataset_dir(dataset_id) / "raw"
    missing = [f for f in record.files if not (raw / f.name).is_file()]
    if missing:
        source = download.resolve_source(missing[0], dataset_id)
        if isinstance(source, Path):
            if not source.is_file():
                return None, f"{dataset_id}: skipped: {missing[0].name} is not in the mirror folder ({source})"
        elif source is None:
            return None, f"{dataset_id}: skipped: {missing[0].name} has no known URL"
        else:
            try:
                with urllib.request.urlopen(urllib.request.Request(source, method="HEAD"), timeout=timeout):
                    pass
            except (urllib.error.URLError, OSError, ValueError) as exc:
                where = "mirror" if os.environ.get(download.MIRROR_ENV) else "origin"
                return None, f"{dataset_id}: skipped: {where} not reachable ({source}: {exc})"
    try:
        return prepare(dataset_id, progress=progress), ""
    except download.DownloadError as exc:
        if isinstance(exc, download.ChecksumError):
            raise
        return None, f"{dataset_id}: skipped: {exc}"
