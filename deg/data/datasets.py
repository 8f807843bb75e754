"""A dataset on disk: one folder, one ``dataset.json``, videos and per-annotator labels.

Layout (written by the synthetic generator, by ``deg.data.prepare`` for public datasets, and
by :func:`deg.data.labels.import_deg_project` for a user's DeepEthogram project)::

    data/<id>/
      dataset.json                 metadata, see :class:`Dataset`
      videos/<video>.mp4           optional: label-only datasets (Sturman labels) have none
      labels/<annotator>/<video>.csv   DeepEthogram per-frame layout: background first, 0/1, -1 unlabelled
      extra/<video>.csv            optional per-frame covariates (synthetic: x, y, heading)
      pose/<video>.csv             optional DeepLabCut CSV (multi-animal layout), see deg.data.pose
      COMPLETE                     written last; a folder without it is unfinished

Labels are (T, K) int8 matrices with ``background`` as column 0 and -1 for unlabelled frames.

Every writer builds a dataset beside its final folder (:func:`build_aside`) and swaps it in only
when it is complete (:func:`swap_in`), so a failed preparation or import leaves the previous
dataset as it was and no partial folder.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from deg import io, paths

COMPLETE = "COMPLETE"


class DatasetError(ValueError):
    """A dataset folder is missing, unfinished or inconsistent."""


@dataclass
class Dataset:
    id: str
    fps: float
    behaviours: list[str]            # column names, "background" first
    annotators: list[str]            # every annotator with a labels/<annotator>/ folder
    train_annotator: str             # the annotator models are trained on
    videos: list[str]                # video names (file stems), in a fixed order
    synthetic: bool = False
    flips: dict[str, bool] = field(default_factory=lambda: {"horizontal": True, "vertical": True})
    image_size: tuple[int, int] | None = None   # paper's (H, W) resize; None = keep
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # pose tracks, when the dataset has them: {"animals": [...], "points": [...], "skeleton": name,
    # "arena_px": [H, W] or None, ...} (see deg.data.pose); None = no pose
    pose_info: dict[str, Any] | None = None
    root: Path = field(default=Path("."), compare=False)

    # ----------------------------------------------------------------- construction
    @classmethod
    def load(cls, root: str | Path) -> "Dataset":
        root = Path(root)
        meta_path = root / "dataset.json"
        if not meta_path.exists():
            raise DatasetError(f"{root}: no dataset.json; prepare the dataset first "
                               "(make data, or deg.data.prepare.prepare(<id>))")
        if not (root / COMPLETE).exists():
            raise DatasetError(f"{root}: dataset folder is unfinished (no {COMPLETE} marker); "
                               "re-run its preparation")
        meta = io.read_json(meta_path)
        if isinstance(meta, dict) and "pose" in meta:
            meta = {**meta, "pose_info": meta["pose"]}      # stored as "pose" in dataset.json
            meta.pop("pose")
        try:
            ds = cls(**{k: v for k, v in meta.items() if k != "root"}, root=root)
        except TypeError as exc:
            raise DatasetError(f"{meta_path}: malformed metadata ({exc})") from exc
        if ds.behaviours[:1] != ["background"]:
            raise DatasetError(f"{meta_path}: behaviours must start with 'background', got {ds.behaviours[:3]}")
        if ds.annotators and ds.train_annotator not in ds.annotators:   # video-only datasets have none
            raise DatasetError(f"{meta_path}: train_annotator {ds.train_annotator!r} not in {ds.annotators}")
        if ds.image_size is not None:
            ds.image_size = tuple(ds.image_size)
        return ds

    def save(self) -> None:
        """Write dataset.json and the COMPLETE marker (call after all files are in place)."""
        meta = asdict(self)
        meta.pop("root")
        meta["pose"] = meta.pop("pose_info")
        io.write_json(self.root / "dataset.json", meta)
        io.write_text(self.root / COMPLETE, "ok\n")

    # ----------------------------------------------------------------- accessors
    @property
    def n_behaviours(self) -> int:
        return len(self.behaviours)

    @property
    def has_videos(self) -> bool:
        return any(self.video_path(v) is not None for v in self.videos)

    def video_path(self, video: str) -> Path | None:
        path = self.root / "videos" / f"{video}.mp4"
        return path if path.exists() else None

    def label_path(self, video: str, annotator: str | None = None) -> Path:
        return self.root / "labels" / (annotator or self.train_annotator) / f"{video}.csv"

    def labels(self, video: str, annotator: str | None = None) -> np.ndarray:
        """(T, K) int8 labels of ``video`` by ``annotator`` (default: the training annotator)."""
        path = self.label_path(video, annotator)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)   # a swapped-in rebuild is a new file
        except OSError:
            stamp = (0, 0, 0)                                  # the reader reports the missing file
        return _read_labels_cached(str(path), stamp, tuple(self.behaviours))

    def has_labels(self, video: str, annotator: str) -> bool:
        return self.label_path(video, annotator).exists()

    def left_out(self, annotator: str | None = None) -> dict[str, str]:
        """``{name: why}`` of the labelled items a training run cannot use, sorted by name:
        label files whose video the import did not find (``extra["labels_without_video"]``, see
        :func:`deg.data.labels.import_deg_project`) and listed videos with labels by
        ``annotator`` (default: the training annotator) whose video file is missing."""
        annotator = annotator or self.train_annotator
        why: dict[str, str] = {}
        project = self.extra.get("project_root", "?")
        for name in self.extra.get("labels_without_video", []) or []:
            why[str(name)] = f"label file without a video: the imported project ({project}) has no {name}.mp4"
        for name in self.videos:
            if self.video_path(name) is None and self.has_labels(name, annotator):
                why[name] = f"video file missing: {self.root / 'videos' / f'{name}.mp4'}"
        return dict(sorted(why.items()))

    def extra_path(self, video: str) -> Path | None:
        path = self.root / "extra" / f"{video}.csv"
        return path if path.exists() else None

    # ----------------------------------------------------------------- pose (deg.data.pose)
    @property
    def has_pose(self) -> bool:
        return any(self.pose_path(v) is not None for v in self.videos)

    def pose_path(self, video: str) -> Path | None:
        path = self.root / "pose" / f"{video}.csv"
        return path if path.exists() else None

    def pose(self, video: str):
        """The :class:`deg.data.pose.Pose` of ``video`` (read-only arrays, cached), or None."""
        path = self.pose_path(video)
        if path is None:
            return None
        stat = path.stat()
        fps = float((self.pose_info or {}).get("fps_by_video", {}).get(video, self.fps))   # mixed-rate datasets
        # a shallow copy: callers may rebind fields; the shared array itself is read-only
        return replace(_read_pose_cached(str(path), stat.st_mtime_ns, stat.st_size, fps))


@lru_cache(maxsize=64)
def _read_pose_cached(path: str, mtime_ns: int, size: int, fps: float):
    from deg.data.pose import read_pose

    pose = read_pose(path, fps=fps)
    pose.xy.setflags(write=False)
    return pose


# ----------------------------------------------------------------- building aside
@contextlib.contextmanager
def build_aside(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder beside ``final`` to build a dataset in; swap it in on success.

    The folder is ``<parent>/.tmp-<name>-XXXX`` (same file system, so the swap is a rename).
    On an exception it is removed and ``final`` is untouched. A dataset built in it must write
    its ``COMPLETE`` marker (``Dataset.save``) before the block ends; :func:`swap_in` refuses an
    unfinished one.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        swap_in(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


KEEP_ON_SWAP = ("raw",)     # downloads cached inside a dataset folder survive a rebuild


def recover_interrupted_builds(final: str | os.PathLike) -> list[str]:
    """Undo what a build of ``final`` killed mid-way (``kill -9``, power loss) left beside it.

    Call it only while holding the dataset's preparation lock (:func:`deg.data.prepare.prepare`
    does), never while another build of the same folder may run. A previous dataset renamed away
    by :func:`swap_in` (``.old-<name>-*/<name>``) is put back when ``final`` is gone; ``raw/``
    downloads already moved into an unfinished build return to ``final``; then the unfinished
    builds (``.tmp-<name>-*``) and old copies are deleted. Returns what was done, one line each.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return []
    pattern = re.compile(rf"\.(tmp|old)-{re.escape(final.name)}-[A-Za-z0-9_]{{8}}")
    leftovers = sorted(p for p in final.parent.iterdir() if p.is_dir() and pattern.fullmatch(p.name))
    done: list[str] = []
    for folder in leftovers:
        if folder.name.startswith(".old-") and not final.exists() and (folder / final.name / COMPLETE).exists():
            os.rename(folder / final.name, final)
            done.append(f"{final}: restored the previous dataset from {folder}")
    for folder in leftovers:
        for name in KEEP_ON_SWAP:
            kept = folder / name if folder.name.startswith(".tmp-") else folder / final.name / name
            if kept.is_dir() and final.is_dir() and not (final / name).exists():
                os.rename(kept, final / name)
                done.append(f"{final / name}: moved back from the interrupted build {folder}")
        shutil.rmtree(folder, ignore_errors=True)
        done.append(f"{folder}: removed (left by an interrupted build)")
    return done


def swap_in(built: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Replace ``final`` by the complete dataset folder ``built`` (two renames, no copying).

    The old folder is renamed away first, the new one renamed into place, then the old one
    deleted; ``raw/`` (cached downloads) moves from the old folder into the new one.
    """
    built, final = Path(built), Path(final)
    if not (built / COMPLETE).exists() or not (built / "dataset.json").exists():
        raise DatasetError(f"{built}: refusing to swap in an unfinished dataset (no {COMPLETE} marker)")
    if not final.exists():
        os.rename(built, final)
        return final
    for name in KEEP_ON_SWAP:
        if (final / name).is_dir() and not (built / name).exists():
            os.rename(final / name, built / name)
    old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
    os.rename(final, old / final.name)
    os.rename(built, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


@lru_cache(maxsize=256)
def _read_labels_cached(path: str, _stamp: tuple[int, int, int], behaviours: tuple[str, ...]) -> np.ndarray:
    from deg.data.labels import read_deg_labels

    matrix, names = read_deg_labels(path)
    if tuple(names) != behaviours:
        missing = [b for b in behaviours if b not in names]
        extra = [n for n in names if n not in behaviours]
        what = "; ".join(part for part in (f"missing column(s) {missing}" if missing else "",
                                           f"extra column(s) {extra}" if extra else "") if part) or "columns in another order"
        raise DatasetError(f"{path}: {what}: the file has {names}, the dataset's behaviours are {list(behaviours)}")
    matrix.setflags(write=False)
    return matrix


def open_dataset(name_or_path: str | Path) -> Dataset:
    """Open a prepared dataset by registry id (under ``deg.paths.data_dir()``) or by folder."""
    candidate = Path(name_or_path)
    if candidate.is_dir() and (candidate / "dataset.json").exists():
        return Dataset.load(candidate)
    return Dataset.load(paths.dataset_dir(str(name_or_path)))
