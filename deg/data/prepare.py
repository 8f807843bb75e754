"""Bring a registry dataset into the standard layout (``deg.data.datasets``): locked, built aside, swapped in.

What each kind of record becomes:

* synthetic ids: rendered by :mod:`deg.data.synthetic` (offline, seconds);
* Sturman (``sturman_oft``, ``sturman_epm``, ``sturman_fst``): the interval label file is
  downloaded (origin, or ``DEG_DATA_MIRROR`` with fallback to the origin), parsed with
  :func:`deg.data.labels.read_sturman` over the record's recording window
  (``DatasetRecord.recording_s``: OFT and EPM 600 s = 15,000 frames, FST 360 s = 9,000 frames at
  25 fps) and written as per-frame label CSVs, one folder per annotator. The videos (Zenodo
  3608658) go into ``videos/`` when they come: from a mirror (``<mirror>/<id>/<id>.zip``, an
  archive of the video files) or by hand (``FROM=`` a folder or archive holding them). A video
  is matched to its labels by name (``OFT_11.mp4``) or by the DeepLabCut file name the label
  file records (``12_01_A_190507144429.mp4``); its frame count decides the label length (rows
  past the video's end dropped, frames past the window unlabelled). Without videos the dataset is
  label-only (``extra["label_only"]``) and feeds the human-vs-human and bout panels;
* the authors' six datasets (``mouse_ventral1``, ..., ``fly``): the record's archive (from a
  mirror, or ``FROM=`` a DeepEthogram project folder or a .zip/.tar of one, as downloaded from
  the authors' Dropbox folder) is verified (:func:`deg.data.filecheck.validate_content`), unpacked
  aside, and imported with :func:`deg.data.labels.import_deg_project` keeping the record's
  behaviours, fps, resize and flips in ``dataset.json``;
* the pose datasets (``rat_social``, ``behaviordepot_freezing``, ``ethome_social``,
  ``sturman_oft_pose``): labels and ``pose/<video>.csv``, no videos (:mod:`deg.data.prepare_pose`);
* ``dlc_openfield`` (a video without labels): ``videos/<stem>.mp4``, no annotators;
* any other record: its files are downloaded into ``data/<id>/raw`` (no ``COMPLETE`` marker).

Preparation holds a per-dataset lock (``data/.locks/<id>.lock``, ``fcntl.flock``: released by the
kernel even on ``kill -9``). A second ``prepare`` of the same dataset waits for the first (saying
so) and then finds it complete; ``lock_timeout`` (``--lock-timeout``) bounds the wait and raises
:class:`PrepareBusyError`. Every dataset is built in a folder beside ``data/<id>`` and swapped in
only when complete (:func:`deg.data.datasets.build_aside`); what a killed attempt left beside it is
cleared, and its downloads kept, by the next one (:func:`deg.data.datasets.recover_interrupted_builds`).

Command line: ``python -m deg.data.prepare <id> [<id> ...] [--force] [--from PATH]``
(``make data DATASET=<id> FROM=PATH``). Exit status: 0 ready, 1 a dataset could not be prepared
(one line on stderr naming the file and the cause), 2 bad arguments, 3 the data folder is read-only,
4 the disk is full (as :mod:`deg.cli`; the line names the folder or the file).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from deg import io, paths
from deg.data import prepare_pose
from deg.data.datasets import COMPLETE, Dataset, DatasetError, build_aside, open_dataset, recover_interrupted_builds

log = logging.getLogger(__name__)

SYNTHETIC_PREFIX = "synthetic_"
STURMAN_PREFIX = "sturman_"
LOCK_DIR = ".locks"


class PrepareBusyError(RuntimeError):
    """Another process holds the preparation lock of this dataset."""


def is_prepared(dataset_id: str) -> bool:
    return (paths.dataset_dir(dataset_id) / COMPLETE).exists()


def lock_path(dataset_id: str) -> Path:
    return paths.data_dir() / LOCK_DIR / f"{dataset_id}.lock"


@contextlib.contextmanager
def prepare_lock(dataset_id: str, timeout: float | None = None, poll: float = 0.2) -> Iterator[Path]:
    """Hold the exclusive preparation lock of ``dataset_id``; wait for it (``timeout`` s, None = forever)."""
    path = lock_path(dataset_id)
    io.ensure_dir(path.parent)
    try:
        fh = open(path, "a+")
    except OSError as exc:               # a read-only data folder: ReadOnlyError naming it
        raise io.read_only_error(exc, path.parent, path) from exc
    with fh:
        waited_since = None
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                now = time.monotonic()
                if waited_since is None:
                    waited_since = now
                    if timeout != 0:
                        print(f"prepare {dataset_id}: waiting for another process (pid {holder}) that is "
                              f"preparing it; lock {path}", file=sys.stderr, flush=True)
                if timeout is not None and now - waited_since >= timeout:
                    raise PrepareBusyError(f"prepare {dataset_id}: another process (pid {holder}) holds the lock "
                                           f"{path}; try again when it has finished") from None
                time.sleep(poll)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield path
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare(dataset_id: str, force: bool = False, progress: bool = True, source: str | os.PathLike | None = None,
            lock_timeout: float | None = None) -> Dataset | Path:
    """Prepare ``dataset_id``; returns the Dataset (or the raw folder for download-only ids).

    ``source`` is a hand-obtained copy (``make data FROM=``): a DeepEthogram project folder or an
    archive of one for the authors' datasets, a folder or archive of the videos for Sturman. A
    complete dataset is returned as it is unless ``force`` or ``source`` is given.
    """
    from deg.data import registry

    with prepare_lock(dataset_id, timeout=lock_timeout):
        for line in recover_interrupted_builds(paths.dataset_dir(dataset_id)):   # a killed earlier attempt
            print(f"prepare {dataset_id}: {line}", file=sys.stderr, flush=True)
        if dataset_id.startswith(SYNTHETIC_PREFIX):
            if source is not None:
                raise ValueError(f"{dataset_id} is generated; it takes no FROM= source")
            return _prepare_synthetic(dataset_id, force=force, progress=progress)
        if dataset_id in prepare_pose.PREPARERS:          # pose + labels, no videos (deg.data.prepare_pose)
            if source is not None:
                raise ValueError(f"{dataset_id} is downloaded from its origin; it takes no FROM= source")
            return prepare_pose.prepare(dataset_id, force=force, progress=progress)
        record = registry.get(dataset_id)
        if is_prepared(dataset_id) and not force and source is None:
            return open_dataset(dataset_id)
        if dataset_id.startswith(STURMAN_PREFIX) and record.recording_s:
            return prepare_sturman(record, source=source, progress=progress)
        if record.kind == "video" and record.file_names("archive"):     # the authors' project archives
            return prepare_project(record, source=source, progress=progress)
        if source is None and record.kind == "video" and not record.behaviours and record.file_names("videos"):
            return prepare_unlabelled_videos(record, progress=progress)
        if source is not None:
            raise ValueError(f"{dataset_id}: FROM= is for the authors' datasets and Sturman videos only")
        from deg.data import download

        files = download.fetch(dataset_id, progress=progress)
        return Path(next(iter(files.values()))).parent if files else paths.dataset_dir(dataset_id) / "raw"


# ------------------------------------------------------------------------------ synthetic
def _prepare_synthetic(dataset_id: str, force: bool, progress: bool) -> Dataset:
    from deg.data import synthetic

    final = paths.dataset_dir(dataset_id)
    if (final / "dataset.json").exists():
        try:
            existing = Dataset.load(final)
        except DatasetError:
            existing = None
        if existing is not None and not existing.synthetic:
            raise DatasetError(f"{final}: holds a non-synthetic dataset; refusing to overwrite it")
        digest = synthetic.spec_hash(synthetic.get_spec(dataset_id), 0)
        if existing is not None and not force and existing.extra.get("synthetic_hash") == digest:
            return synthetic.generate(dataset_id, root=final, progress=progress)   # verified, reused
    with build_aside(final) as tmp:
        synthetic.generate(dataset_id, root=tmp, force=True, progress=progress)
    return Dataset.load(final)


# ------------------------------------------------------------------------------ hand-obtained copies
@contextlib.contextmanager
def source_folder(source: str | os.PathLike) -> Iterator[Path]:
    """A folder to read ``source`` from: the folder itself, or an archive verified and unpacked aside.

    The unpacked copy lives in ``data/.tmp-unpack-*`` and is removed afterwards.
    """
    from deg.data import download, filecheck

    source = Path(source).expanduser()
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file or folder")
    try:
        filecheck.validate_content(source, source.name, archive=True)
    except filecheck.ContentError as exc:
        raise download.ArchiveError(f"{exc}") from None
    paths.data_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-unpack-", dir=paths.data_dir()))
    try:
        yield download.extract_archive(source, work / "content")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def find_project(folder: str | os.PathLike) -> Path:
    """The DeepEthogram project folder inside ``folder``: where ``project_config.yaml`` lies.

    The shallowest one wins (an archive usually wraps the project in one folder); several at the
    same depth are ambiguous and raise.
    """
    from deg.data.labels import LabelFormatError

    folder = Path(folder)
    configs = sorted(folder.rglob("project_config.yaml"), key=lambda p: (len(p.parts), str(p)))
    configs = [c for c in configs if "__MACOSX" not in c.parts]
    if not configs:
        raise LabelFormatError(f"{folder}: no DeepEthogram project inside (no project_config.yaml; expected "
                               "<project>/project_config.yaml and <project>/DATA/<video>/)")
    same_depth = [c for c in configs if len(c.parts) == len(configs[0].parts)]
    if len(same_depth) > 1:
        raise LabelFormatError(f"{folder}: several DeepEthogram projects at the same depth: "
                               f"{[str(c.parent) for c in same_depth]}; pass one of them")
    return configs[0].parent


# ------------------------------------------------------------------------------ the authors' datasets
def prepare_project(record, source: str | os.PathLike | None = None, progress: bool = True) -> Dataset:
    """Import an authors' dataset from ``source`` or its fetched archive; callers hold the lock."""
    from deg.data import download
    from deg.data.labels import import_deg_project

    if source is None:
        archive = record.file_names("archive")[0]
        files = download.fetch(record, files=[archive], progress=progress)
        source, how = files[archive], "archive fetched from a mirror"
    else:
        how = f"imported by hand from {Path(source).expanduser()}"
    horizontal, vertical = record.flips if record.flips is not None else (True, True)
    with source_folder(source) as folder:
        project = find_project(folder)
        return import_deg_project(
            project, paths.data_dir(), dataset_id=record.id, fps=record.fps, behaviours=record.behaviours,
            image_size=record.resize, flips=(horizontal, vertical),
            extra={"registry_id": record.id, "paper_name": record.paper_name, "n_splits": record.n_splits,
                   "obtained": how, "flips_stated_in_paper": record.flips is not None})


# ------------------------------------------------------------------------------ Sturman
def _dlc_prefix(dlc_file: str) -> str:
    """``12_01_A_190507144429DeepCut_resnet50_...csv`` -> ``12_01_A_190507144429`` (the video's name)."""
    return re.split(r"DeepCut|DLC_", Path(dlc_file).stem, maxsplit=1)[0].rstrip("_-")


def match_sturman_videos(videos: list[str], dlc_files: dict[str, str], folder: Path) -> dict[str, Path]:
    """Video files under ``folder`` for label videos ``videos``: by name or by DeepLabCut file name."""
    from deg.data import filecheck
    from deg.data.labels import LabelFormatError

    by_stem: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in filecheck.VIDEO_SUFFIXES and "__MACOSX" not in path.parts:
            by_stem.setdefault(path.stem.lower(), path)
    found = {}
    for video in videos:
        keys = [video.lower()] + ([_dlc_prefix(dlc_files[video]).lower()] if video in dlc_files else [])
        path = next((by_stem[k] for k in keys if k in by_stem), None)
        if path is None:
            continue
        if path.suffix.lower() != ".mp4":
            raise LabelFormatError(f"{path}: only .mp4 videos are imported; transcode it first "
                                   f"(e.g. ffmpeg -i {path.name} {video}.mp4)")
        found[video] = path
    return found


def _fit_window(matrix: np.ndarray, n_frames: int) -> np.ndarray:
    """Labels over the recording window cut to, or padded (unlabelled, -1) to, the video's length."""
    if len(matrix) >= n_frames:
        return matrix[:n_frames]
    pad = np.full((n_frames - len(matrix), matrix.shape[1]), -1, dtype=matrix.dtype)
    return np.concatenate([matrix, pad])


def prepare_sturman(record, source: str | os.PathLike | None = None, progress: bool = True) -> Dataset:
    """Build a Sturman record's dataset (see the module docstring); callers hold the lock."""
    from deg.data import download
    from deg.data import video as video_io
    from deg.data.labels import place_video, read_sturman, select_behaviours, write_deg_labels

    final = paths.dataset_dir(record.id)
    label_name = record.file_names("labels")[0]
    if source is None:
        files = download.fetch(record, progress=progress)          # placeholders reported, not fatal
        placeholder = (record.file_names("videos") or [None])[0]
        video_folder = files.get(placeholder) if placeholder else None
    else:
        files = download.fetch(record, files=[label_name], progress=progress)
        video_folder = None
    window = int(round(record.recording_s * record.fps))
    # The record's behaviours, not every type in the file: Sturman-OFT's rare "Jumping" occurs in
    # only 2 of Jin's 20 videos, too few for a train/validation/test split (see the record's notes).
    # Dropped types' frames count as background unless another behaviour is on.
    parsed = read_sturman(files[label_name], fps=record.fps, n_frames=window)
    keep = list(record.behaviours[1:])
    videos = parsed.videos
    annotators = parsed.annotators
    with contextlib.ExitStack() as stack:
        if source is not None:
            video_folder = stack.enter_context(source_folder(source))
        video_files = match_sturman_videos(videos, parsed.dlc_files, Path(video_folder)) if video_folder else {}
        frames = {v: video_io.video_info(p).n_frames for v, p in video_files.items()}
        with build_aside(final) as root:
            for (video, annotator), matrix in parsed.matrices.items():
                kept, behaviours = select_behaviours(matrix, parsed.behaviours, keep)
                write_deg_labels(root / "labels" / annotator / f"{video}.csv",
                                 _fit_window(kept, frames.get(video, window)), behaviours)
            for video, path in video_files.items():
                place_video(path, root / "videos" / f"{video}.mp4")
            train = record.train_annotator if record.train_annotator in annotators else annotators[0]
            what = (f"{len(video_files)} of {len(videos)} videos" if video_files
                    else "labels only (videos not available offline)")
            dataset = Dataset(
                id=record.id, fps=float(record.fps), behaviours=behaviours, annotators=annotators,
                train_annotator=train, videos=videos, synthetic=False,
                flips={"horizontal": bool(record.flips[0]), "vertical": bool(record.flips[1])},
                image_size=tuple(record.resize) if record.resize else None,
                description=f"{record.title}: {what}",
                extra={"source_file": label_name, "label_only": not video_files,
                       "recording_s": record.recording_s, "window_frames": window,
                       "video_frames": frames, "videos_missing": [v for v in videos if v not in video_files],
                       "n_splits": record.n_splits,
                       "dropped_behaviours": sorted(set(parsed.behaviours) - set(behaviours))}, root=root)
            dataset.save()
    return Dataset.load(final)


# ------------------------------------------------------------------------------ videos only
def prepare_unlabelled_videos(record, progress: bool = True) -> Dataset:
    """A video-only record (dlc_openfield): videos/<stem>.mp4, no labels (for self-supervised stages)."""
    from deg.data import download
    from deg.data.labels import place_video

    files = download.fetch(record, files=record.file_names("videos"), progress=progress)
    final = paths.dataset_dir(record.id)
    with build_aside(final) as root:
        names = []
        for name, path in files.items():
            stem = Path(name).stem
            place_video(path, root / "videos" / f"{stem}.mp4")
            names.append(stem)
        Dataset(id=record.id, fps=float(record.fps), behaviours=["background"], annotators=[], train_annotator="",
                videos=names, synthetic=False, description=f"{record.title}: video only, no behaviour labels",
                extra={"unlabelled": True}, root=root).save()
    return Dataset.load(final)




# ------------------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    from deg.data import download
    from deg.data.labels import LabelFormatError

    parser = argparse.ArgumentParser(description="Prepare datasets in data/<id>/ (locked, built aside, swapped in)")
    parser.add_argument("ids", nargs="+")
    parser.add_argument("--force", action="store_true", help="rebuild even when complete")
    parser.add_argument("--from", dest="source", metavar="PATH",
                        help="a hand-obtained copy: DeepEthogram project folder or archive (authors' datasets), "
                             "folder or archive of the videos (Sturman)")
    parser.add_argument("--lock-timeout", type=float, default=None,
                        help="seconds to wait for another process preparing the same dataset (default: wait)")
    args = parser.parse_args(argv)
    if args.source and len(args.ids) != 1:
        parser.error("--from takes exactly one dataset id")
    for dataset_id in args.ids:
        try:
            result = prepare(dataset_id, force=args.force, source=args.source, lock_timeout=args.lock_timeout)
        except (io.DiskFullError, io.ReadOnlyError) as exc:      # deg.cli's codes: 4 no room, 3 refused
            print(f"prepare {dataset_id}: {exc}", file=sys.stderr)
            return 4 if isinstance(exc, io.DiskFullError) else 3
        except (KeyError, ValueError, FileNotFoundError, download.DownloadError, LabelFormatError,
                DatasetError, PrepareBusyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"prepare {dataset_id}: {message}", file=sys.stderr)
            return 1
        print(f"{dataset_id}: ready in {getattr(result, 'root', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
