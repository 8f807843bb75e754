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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

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
        if ds.train_annotator not in ds.annotators:
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
        return _read_labels_cached(str(self.label_path(video, annotator)), tuple(self.behaviours))

    def has_labels(self, video: str, annotator: str) -> bool:
        return self.label_path(video, annotator).exists()

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


@lru_cache(maxsize=256)
def _read_labels_cached(path: str, behaviours: tuple[str, ...]) -> np.ndarray:
    from deg.data.labels import read_deg_labels

    matrix, names = read_deg_labels(path)
    if tuple(names) != behaviours:
        raise DatasetError(f"{path}: behaviours {names} differ from the dataset's {list(behaviours)}")
    matrix.setflags(write=False)
    return matrix


def open_dataset(name_or_path: str | Path) -> Dataset:
    """Open a prepared dataset by registry id (under ``deg.paths.data_dir()``) or by folder."""
    candidate = Path(name_or_path)
    if candidate.is_dir() and (candidate / "dataset.json").exists():
        return Dataset.load(candidate)
    return Dataset.load(paths.dataset_dir(str(name_or_path)))
