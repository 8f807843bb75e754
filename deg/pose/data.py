"""A prepared dataset's pose and labels in the form the pose methods use (:class:`PoseSet`).

Per *unit* (a video, or a contiguous segment of one, see below): pose (T, A, P, 3) float32
(x, y, likelihood), the training annotator's labels (T, K) and every other annotator's labels,
frame-aligned by :func:`deg.data.pose.iter_pose_labels`.

Splits are by video as for DEG (:func:`deg.data.splits.make_splits`). A dataset with fewer than
``pose_min_units`` pose videos (BehaviorDEPOT: 2 sessions, ethome: 1, Sturman-OFT pose: 2
excerpts) cannot be split 60/20/20 by video; each of its videos is then cut into contiguous
segments named ``<video>@<start>-<stop>`` (frames, stop exclusive), which stand in for videos in
the splits and in every table (the ``video`` column). Segments are long (hundreds of frames), so
the T-15..T+15 windows leak at most 15 frames across a border.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deg.pose.features import SKELETONS, Skeleton, select_points

# Skeleton by dataset id when dataset.json does not name one the feature table knows.
DATASET_SKELETONS = {"rat_social": "rat_social", "behaviordepot_freezing": "behaviordepot",
                     "ethome_social": "ethome", "sturman_oft_pose": "sturman"}


class PoseDataError(ValueError):
    """A dataset without usable pose and labels; the message names the dataset folder."""


@dataclass
class PoseSet:
    dataset_id: str
    fps: float
    behaviours: list[str]
    train_annotator: str
    annotators: list[str]
    synthetic: bool
    points: list[str]
    animals: list[str]
    skeleton: Skeleton
    arena_px: list[float] | None
    pose: dict[str, np.ndarray]                       # unit -> (T, A, P, 3)
    labels: dict[str, np.ndarray]                     # unit -> (T, K), training annotator
    humans: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)   # annotator -> unit -> (T, K)
    segments: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # unit -> (video, start, stop)
    notes: list[str] = field(default_factory=list)
    # {video: why} of the dataset's videos no pose method can use (labels without pose, pose
    # without the training annotator's labels): recorded in every run, never silently dropped
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def units(self) -> list[str]:
        return sorted(self.labels)

    def summary(self) -> dict[str, Any]:
        return {"dataset": self.dataset_id, "behaviours": self.behaviours, "train_annotator": self.train_annotator,
                "annotators": self.annotators, "fps": self.fps, "units": len(self.labels), "segmented": bool(self.segments),
                "frames": int(sum(len(v) for v in self.labels.values())), "skeleton": self.skeleton.name,
                "points": self.points, "animals": self.animals, "notes": self.notes, "left_out": self.left_out}


def skeleton_for(dataset) -> Skeleton:
    """The skeleton named in dataset.json's pose entry, else the dataset id's, else an error."""
    info = dataset.pose_info or {}
    name = info.get("skeleton")
    if name in SKELETONS:
        return SKELETONS[name]
    if dataset.id in DATASET_SKELETONS:
        return SKELETONS[DATASET_SKELETONS[dataset.id]]
    raise PoseDataError(f"{dataset.root}: no skeleton for dataset {dataset.id!r} (dataset.json pose entry "
                        f"names {name!r}); add one to deg.pose.features.SKELETONS")


def segment(units: dict[str, Any], n_segments: int) -> dict[str, tuple[str, int, int]]:
    """{segment name: (video, start, stop)} cutting each video (name -> length) into equal parts."""
    out = {}
    for video, length in units.items():
        edges = np.linspace(0, length, n_segments + 1).round().astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            if b > a:
                out[f"{video}@{a}-{b}"] = (video, int(a), int(b))
    return out


def load_pose_set(dataset, skeleton: Skeleton | None = None, min_units: int = 5) -> PoseSet:
    """Every pose video of ``dataset`` (a :class:`deg.data.datasets.Dataset`) with training labels."""
    from deg.data.pose import iter_pose_labels

    if not dataset.has_pose:
        raise PoseDataError(f"{dataset.root}: dataset {dataset.id!r} has no pose files (pose/<video>.csv)")
    skeleton = skeleton or skeleton_for(dataset)
    pose, labels, humans, notes = {}, {}, {}, []
    left_out = {v: f"labels of {dataset.train_annotator!r} but no pose file (pose/{v}.csv)" for v in dataset.videos
                if dataset.pose_path(v) is None and dataset.has_labels(v, dataset.train_annotator)}
    points = animals = None
    for item in iter_pose_labels(dataset):
        if dataset.train_annotator not in item.labels:
            left_out[item.video] = f"pose but no labels of the training annotator {dataset.train_annotator!r}"
            continue
        xy, names = select_points(item.pose.xy, item.pose.points, skeleton, str(dataset.pose_path(item.video)))
        if points is None:
            points, animals = names, list(item.pose.animals)
        elif names != points or len(item.pose.animals) != len(animals):
            raise PoseDataError(f"{dataset.pose_path(item.video)}: points {names} x animals {item.pose.animals} "
                                f"differ from the dataset's first video ({points} x {animals})")
        pose[item.video] = xy
        labels[item.video] = np.asarray(item.labels[dataset.train_annotator])
        for a, m in item.labels.items():
            if a != dataset.train_annotator:
                humans.setdefault(a, {})[item.video] = np.asarray(m)
        if item.note:
            notes.append(item.note)
    if not labels:
        raise PoseDataError(f"{dataset.root}: no video has both pose and labels of {dataset.train_annotator!r}")
    segments: dict[str, tuple[str, int, int]] = {}
    if len(labels) < min_units:
        n = int(math.ceil(min_units / len(labels)))
        segments = segment({v: len(m) for v, m in labels.items()}, n)
        notes.append(f"{len(labels)} pose video(s) < {min_units}: each cut into {n} contiguous segments, "
                     "which the splits treat as videos")
        pose = {s: pose[v][a:b] for s, (v, a, b) in segments.items()}
        labels = {s: labels[v][a:b] for s, (v, a, b) in segments.items()}
        humans = {h: {s: m[v][a:b] for s, (v, a, b) in segments.items() if v in m} for h, m in humans.items()}
    info = dataset.pose_info or {}
    return PoseSet(dataset_id=dataset.id, fps=float(dataset.fps), behaviours=list(dataset.behaviours),
                   train_annotator=dataset.train_annotator, annotators=list(dataset.annotators),
                   synthetic=bool(dataset.synthetic), points=points, animals=animals, skeleton=skeleton,
                   arena_px=info.get("arena_px"), pose=pose, labels=labels, humans=humans, segments=segments,
                   notes=notes, left_out=dict(sorted(left_out.items())))
