"""Keypoint features from a skeleton description (paper Methods, "Keypoint-based classification").

The paper computed, for the seven DeepLabCut points of Mouse-Openfield (nose, four paws, tail
base, tail tip), after linear interpolation of points with likelihood < 0.9 and normalisation of
pixels by the arena's width and height:

* x and y of every point (and of the centroid, "the mean of all paw locations");
* the same after aligning to the body axis ("the nose was to the right and the tailbase to the
  left");
* angles between the tail and the body axis and between each paw and the body axis;
* distances nose-tailbase, tailbase-tailtip, fore-to-hind paw (left and right averaged),
  forepaw-nose, left-right forepaws, left-right hindpaws;
* the area of the body polygon (paws, nose, tailbase).

That is (7 + 1 centroid) x 2 x 2 = 32 coordinates + 5 angles + 6 distances + 1 area = 44
features per frame, 44 x 31 = 1364 with the window T-15..T+15. :class:`Skeleton` generalises
the list: which points, which two define the body axis, which make the centroid, the angle
triplets, the distance groups (pairs averaged), the polygon, and for several animals the
distances between animals. :data:`SKELETONS` holds the paper's and one per pose dataset.

Shapes: a pose array is float32 (T, A, P, 3) = x, y, likelihood for T frames, A animals, P
points (the order of ``points``); features are float32 (T, F).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from deg.data.keypoints import Keypoints, interpolate_low_confidence


class SkeletonError(ValueError):
    """A skeleton names points the pose does not have, or is malformed."""


@dataclass(frozen=True)
class Skeleton:
    """Which features to compute from the named points of one animal (and between animals).

    angles: (a, vertex, c) triplets: the signed angle at ``vertex`` from the ray vertex->c to the
    ray vertex->a (radians in (-pi, pi]); the name "centroid" may be used as a point.
    distances: groups of (a, b) pairs; each group is one feature, the mean of its distances.
    between: (a, b) pairs across animals: distance from animal i's a to animal j's b, i != j.
    arena: points that mark the arena (e.g. its corners); their median extent normalises the
    coordinates. Without them (and without the dataset's ``arena_px``) the arena is the 1st-99th
    percentile extent of the animals' points.
    """

    name: str
    points: tuple[str, ...]
    front: str
    back: str
    centroid: tuple[str, ...]
    angles: tuple[tuple[str, str, str], ...] = ()
    distances: tuple[tuple[tuple[str, str], ...], ...] = ()
    polygon: tuple[str, ...] = ()
    between: tuple[tuple[str, str], ...] = ()
    arena: tuple[str, ...] = ()
    description: str = ""
    # (point, (other names of it in pose files, ...)): lets one skeleton read files whose
    # trackers named the same point differently (BehaviorDEPOT's two demo sessions do)
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # likelihood below which points are interpolated; None = HPARAMS["keypoint_min_likelihood"]
    # (the paper's 0.9, for its single-mouse DeepLabCut models)
    min_likelihood: float | None = None

    def __post_init__(self) -> None:
        known = set(self.points) | {"centroid"}
        used = {self.front, self.back, *self.centroid, *self.polygon, *self.arena}
        used |= {p for t in self.angles for p in t} | {p for g in self.distances for pair in g for p in pair}
        used |= {p for pair in self.between for p in pair}
        unknown = sorted(used - known - set(self.arena))
        if unknown:
            raise SkeletonError(f"skeleton {self.name!r} uses points {unknown} not in its points {list(self.points)}")
        if not self.centroid:
            raise SkeletonError(f"skeleton {self.name!r}: centroid needs at least one point")
        if self.polygon and len(self.polygon) < 3:
            raise SkeletonError(f"skeleton {self.name!r}: a polygon needs at least 3 points")

    def to_dict(self) -> dict:
        return asdict(self)

    def feature_names(self, n_animals: int = 1) -> list[str]:
        """Names of the F columns of :func:`frame_features`, in order."""
        names: list[str] = []
        for a in range(n_animals):
            pre = f"a{a}_" if n_animals > 1 else ""
            pts = list(self.points) + ["centroid"]
            names += [f"{pre}{p}_{c}" for p in pts for c in "xy"]
            names += [f"{pre}{p}_aligned_{c}" for p in pts for c in "xy"]
            names += [f"{pre}angle_{a_}_{v}_{c}" for a_, v, c in self.angles]
            names += [f"{pre}dist_" + "+".join(f"{p}-{q}" for p, q in g) for g in self.distances]
            names += [f"{pre}area"] if self.polygon else []
        for i in range(n_animals):
            for j in range(n_animals):
                if i != j:
                    names += [f"between_a{i}_{p}-a{j}_{q}" for p, q in self.between]
        return names


_PAWS = ("left_forepaw", "right_forepaw", "left_hindpaw", "right_hindpaw")
SKELETONS: dict[str, Skeleton] = {
    # The paper's Mouse-Openfield skeleton: 44 features per frame.
    "mouse_openfield": Skeleton(
        "mouse_openfield", points=("nose",) + _PAWS + ("tailbase", "tailtip"), front="nose", back="tailbase",
        centroid=_PAWS,
        angles=(("tailtip", "tailbase", "nose"),) + tuple((p, "centroid", "nose") for p in _PAWS),
        distances=((("nose", "tailbase"),), (("tailbase", "tailtip"),),
                   (("left_forepaw", "left_hindpaw"), ("right_forepaw", "right_hindpaw")),
                   (("left_forepaw", "nose"), ("right_forepaw", "nose")),
                   (("left_forepaw", "right_forepaw"),), (("left_hindpaw", "right_hindpaw"),)),
        polygon=("nose", "right_forepaw", "right_hindpaw", "tailbase", "left_hindpaw", "left_forepaw"),
        description="the paper's 7 points (Methods, Keypoint-based classification): 44 features"),
    # The synthetic generator's animal (deg.data.synthetic.POSE_POINTS).
    "synthetic_mouse5": Skeleton(
        "synthetic_mouse5", points=("nose", "head", "body_centre", "tail_base", "tail_tip"), front="nose",
        back="tail_base", centroid=("body_centre",),
        angles=(("tail_tip", "tail_base", "nose"), ("nose", "head", "body_centre"),
                ("head", "body_centre", "tail_base")),
        distances=((("nose", "tail_base"),), (("tail_base", "tail_tip"),), (("nose", "head"),),
                   (("head", "body_centre"),), (("nose", "tail_tip"),)),
        polygon=("nose", "head", "body_centre", "tail_base"),
        description="synthetic animal, 5 points"),
    # rat_social: two rats, 5 points each along the midline.
    "rat_social": Skeleton(
        "rat_social", points=("top", "body", "tail", "tail-m", "tail-e"), front="top", back="tail",
        centroid=("body",),
        angles=(("tail-m", "tail", "top"), ("tail-e", "tail-m", "tail"), ("top", "body", "tail")),
        distances=((("top", "tail"),), (("tail", "tail-e"),), (("top", "body"),), (("body", "tail"),)),
        polygon=("top", "body", "tail", "tail-m"),
        between=(("top", "top"), ("top", "body"), ("top", "tail"), ("body", "body")),
        # multi-animal DeepLabCut (dlcrnet) reports lower likelihoods: measured on video 10, 20% of
        # points reach 0.9 and 73% reach 0.5; at 0.9 most points would be interpolated
        min_likelihood=0.5,
        description="two rats x 5 midline points (Caltech annotations)"),
    # behaviordepot_freezing: one mouse, 8 points (demo1 and demo2 name them differently; demo1's
    # "Tail" and demo2's "midtail" both stand for the tail point here).
    "behaviordepot": Skeleton(
        "behaviordepot", points=("nose", "left_ear", "right_ear", "mid_back", "left_hip", "right_hip", "tailbase",
                                 "tail"),
        front="nose", back="tailbase", centroid=("mid_back",),
        angles=(("tail", "tailbase", "nose"), ("left_hip", "centroid", "nose"), ("right_hip", "centroid", "nose"),
                ("nose", "mid_back", "tailbase")),
        distances=((("nose", "tailbase"),), (("tailbase", "tail"),), (("left_ear", "right_ear"),),
                   (("left_hip", "right_hip"),), (("left_ear", "nose"), ("right_ear", "nose")),
                   (("left_hip", "left_ear"), ("right_hip", "right_ear"))),
        polygon=("nose", "right_ear", "right_hip", "tailbase", "left_hip", "left_ear"),
        aliases=(("nose", ("Nose",)), ("left_ear", ("Left Ear", "l_ear")), ("right_ear", ("Right Ear", "r_ear")),
                 ("mid_back", ("Mid-Back", "midback")), ("left_hip", ("Left Leg", "l_hip")),
                 ("right_hip", ("Right Leg", "r_hip")), ("tailbase", ("Tailbase",)), ("tail", ("Tail", "midtail"))),
        description="BehaviorDEPOT mouse, 8 points"),
    # ethome_social: adult and juvenile mouse, 7 points each (the CalMS21 layout).
    "ethome": Skeleton(
        "ethome", points=("nose", "leftear", "rightear", "neck", "lefthip", "righthip", "tail"), front="nose",
        back="tail", centroid=("neck", "lefthip", "righthip"),
        angles=(("nose", "neck", "tail"), ("lefthip", "centroid", "nose"), ("righthip", "centroid", "nose")),
        distances=((("nose", "tail"),), (("leftear", "rightear"),), (("lefthip", "righthip"),),
                   (("nose", "neck"),), (("neck", "tail"),)),
        polygon=("nose", "rightear", "righthip", "tail", "lefthip", "leftear"),
        between=(("nose", "nose"), ("nose", "tail"), ("nose", "neck"), ("neck", "neck")),
        description="two mice x 7 points (CalMS21 layout)"),
    # sturman_oft: 13 body points and the arena's corners (Sturman et al. 2020).
    "sturman": Skeleton(
        "sturman", points=("nose", "headcentre", "neck", "earl", "earr", "bodycentre", "bcl", "bcr", "hipl", "hipr",
                           "tailbase", "tailcentre", "tailtip"),
        front="nose", back="tailbase", centroid=("bodycentre",),
        angles=(("tailtip", "tailbase", "nose"), ("nose", "neck", "bodycentre"), ("neck", "bodycentre", "tailbase"),
                ("hipl", "centroid", "nose"), ("hipr", "centroid", "nose")),
        distances=((("nose", "tailbase"),), (("tailbase", "tailtip"),), (("earl", "earr"),), (("hipl", "hipr"),),
                   (("bcl", "bcr"),), (("nose", "neck"),), (("neck", "bodycentre"),)),
        polygon=("nose", "earr", "bcr", "hipr", "tailbase", "hipl", "bcl", "earl"),
        arena=("tl", "tr", "bl", "br"),
        description="Sturman OFT: 13 body points; the arena corners normalise"),
}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise KeyError(f"unknown skeleton {name!r}; known: {', '.join(SKELETONS)}") from None


# --------------------------------------------------------------------------------------
# Cleaning and normalisation
# --------------------------------------------------------------------------------------
def point_index(points: Sequence[str], skeleton: Skeleton, source: str = "pose") -> dict[str, int]:
    """{name: column} of the skeleton's points (and arena points) in a pose's ``points``."""
    points = list(points)
    aliases = dict(skeleton.aliases)
    index, missing = {}, []
    for p in list(skeleton.points) + list(skeleton.arena):
        found = [n for n in (p, *aliases.get(p, ())) if n in points]
        if found:
            index[p] = points.index(found[0])
        elif p in skeleton.points:
            missing.append(p)
    if missing:
        raise SkeletonError(f"{source}: skeleton {skeleton.name!r} needs points {missing}; the pose has {points}")
    return index


def select_points(pose: np.ndarray, points: Sequence[str], skeleton: Skeleton,
                  source: str = "pose") -> tuple[np.ndarray, list[str]]:
    """(pose (T, A, P', 3), names): the skeleton's points (then its arena points found) under their
    skeleton names, whatever the file called them or in which order."""
    index = point_index(points, skeleton, source)
    names = list(index)
    return np.asarray(pose)[:, :, [index[n] for n in names]], names


def interpolate(pose: np.ndarray, points: Sequence[str], min_likelihood: float) -> np.ndarray:
    """(T, A, P, 2) float32 x, y with points below ``min_likelihood`` linearly interpolated.

    Uses :func:`deg.data.keypoints.interpolate_low_confidence`; a point never confident in the
    whole video stays NaN (the features replace NaN by 0 after normalisation).
    """
    pose = np.asarray(pose, dtype=np.float32)
    if pose.ndim != 4 or pose.shape[-1] != 3:
        raise ValueError(f"pose must be (T, animals, points, 3), got shape {pose.shape}")
    T, A, P, _ = pose.shape
    kp = Keypoints(xy=pose[..., :2], likelihood=pose[..., 2], animals=[str(a) for a in range(A)],
                   bodyparts=list(points), scorer="", frame_index=np.arange(T))
    return interpolate_low_confidence(kp, min_likelihood).xy


def arena_box(xy: np.ndarray, index: dict[str, int], skeleton: Skeleton,
              arena_px: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(origin (2,), size (2,)) of the arena in pixels; xy: interpolated (T, A, P, 2).

    In order: the skeleton's arena points (e.g. tracked corners: origin and size), the dataset's
    ``arena_px`` (H, W) with origin (0, 0) (the synthetic arena fills the frame), else the
    animals' 1st-99th percentile extent.
    """
    corners = [index[p] for p in skeleton.arena if p in index]
    if len(corners) >= 2:
        pts = np.nanmedian(xy[:, 0, corners, :], axis=0)                  # (n_corners, 2)
    elif arena_px is not None:
        return np.zeros(2, np.float32), np.array([arena_px[1], arena_px[0]], np.float32)
    else:
        body = xy[:, :, [index[p] for p in skeleton.points], :].reshape(-1, 2)
        body = body[np.isfinite(body).all(axis=1)]
        pts = np.percentile(body, [1, 99], axis=0) if len(body) else np.array([[0.0, 0.0], [1.0, 1.0]])
    lo, hi = np.nanmin(pts, axis=0), np.nanmax(pts, axis=0)
    size = np.where(hi - lo > 1e-6, hi - lo, 1.0)
    return lo.astype(np.float32), size.astype(np.float32)


def normalised_points(pose: np.ndarray, points: Sequence[str], skeleton: Skeleton, min_likelihood: float | None,
                      source: str = "pose", arena_px: Sequence[float] | None = None) -> np.ndarray:
    """(T, A, P_s + 1, 2) float32: the skeleton's points and the centroid, in arena units [0, 1].

    ``min_likelihood``: the skeleton's own threshold wins when it has one.
    """
    if skeleton.min_likelihood is not None:
        min_likelihood = skeleton.min_likelihood
    index = point_index(points, skeleton, source)
    xy = interpolate(pose, points, min_likelihood)
    origin, size = arena_box(xy, index, skeleton, arena_px)
    body = xy[:, :, [index[p] for p in skeleton.points], :]
    centroid = np.nanmean(xy[:, :, [index[p] for p in skeleton.centroid], :], axis=2, keepdims=True) \
        if np.isfinite(xy).any() else np.zeros_like(body[:, :, :1])
    out = (np.concatenate([body, centroid], axis=2) - origin) / size
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------
# Per-frame features
# --------------------------------------------------------------------------------------
def _signed_angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle from v to u, (...,) radians in (-pi, pi]; u, v (..., 2)."""
    cross = v[..., 0] * u[..., 1] - v[..., 1] * u[..., 0]
    dot = (u * v).sum(-1)
    return np.arctan2(cross, dot)


def polygon_area(poly: np.ndarray) -> np.ndarray:
    """Shoelace area of polygons (..., N, 2) -> (...,) (absolute value: either winding)."""
    x, y = poly[..., 0], poly[..., 1]
    return 0.5 * np.abs((x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y).sum(-1))


def frame_features(pts: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Per-frame features (T, F) float32 of normalised points (T, A, P_s + 1, 2) (last = centroid).

    The column order is :meth:`Skeleton.feature_names`. NaN (a point never seen) becomes 0.
    """
    T, A = pts.shape[:2]
    names = list(skeleton.points) + ["centroid"]
    col = {p: i for i, p in enumerate(names)}
    blocks = []
    for a in range(A):
        p = pts[:, a]                                                     # (T, P+1, 2)
        axis = p[:, col[skeleton.front]] - p[:, col[skeleton.back]]       # (T, 2) back -> front
        theta = np.arctan2(axis[:, 1], axis[:, 0])
        c, s = np.cos(-theta)[:, None], np.sin(-theta)[:, None]
        rel = p - p[:, col["centroid"]][:, None, :]
        aligned = np.stack([c * rel[..., 0] - s * rel[..., 1], s * rel[..., 0] + c * rel[..., 1]], axis=-1)
        feats = [p.reshape(T, -1), aligned.reshape(T, -1)]
        for a_, v, c_ in skeleton.angles:
            feats.append(_signed_angle(p[:, col[a_]] - p[:, col[v]], p[:, col[c_]] - p[:, col[v]])[:, None])
        for group in skeleton.distances:
            d = np.mean([np.linalg.norm(p[:, col[x]] - p[:, col[y]], axis=-1) for x, y in group], axis=0)
            feats.append(d[:, None])
        if skeleton.polygon:
            feats.append(polygon_area(p[:, [col[q] for q in skeleton.polygon]])[:, None])
        blocks.append(np.concatenate(feats, axis=1))
    for i in range(A):
        for j in range(A):
            if i != j and skeleton.between:
                blocks.append(np.stack([np.linalg.norm(pts[:, i, col[x]] - pts[:, j, col[y]], axis=-1)
                                        for x, y in skeleton.between], axis=1))
    out = np.concatenate(blocks, axis=1).astype(np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def pose_features(pose: np.ndarray, points: Sequence[str], skeleton: Skeleton, min_likelihood: float | None,
                  source: str = "pose", arena_px: Sequence[float] | None = None) -> np.ndarray:
    """Pose (T, A, P, 3) -> keypoint features (T, F): interpolate, normalise, expand."""
    return frame_features(normalised_points(pose, points, skeleton, min_likelihood, source, arena_px), skeleton)


def velocities(pts: np.ndarray) -> np.ndarray:
    """Frame-wise velocity (T, A * (P_s + 1) * 2) of normalised points; frame 0 gets 0."""
    flat = pts.reshape(len(pts), -1)
    return np.concatenate([np.zeros_like(flat[:1]), np.diff(flat, axis=0)]).astype(np.float32)


# --------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------
def window_offsets(before: int, after: int) -> np.ndarray:
    """(before + after + 1,) frame offsets -before..after."""
    return np.arange(-before, after + 1)


def gather_windows(x: np.ndarray, frames: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Windows (N, W, F) of per-frame features x (T, F) around ``frames`` (N,); edges repeat."""
    idx = np.clip(np.asarray(frames)[:, None] + offsets[None, :], 0, len(x) - 1)
    return x[idx]


def windows(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """Every frame's flattened window (T, W * F) of x (T, F); W = before + after + 1."""
    return gather_windows(x, np.arange(len(x)), window_offsets(before, after)).reshape(len(x), -1)


@dataclass
class Standardiser:
    """Per-feature z-score with the training frames' mean and std (F,)."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    std: np.ndarray = field(default_factory=lambda: np.ones(0, np.float32))

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardiser":
        mean = x.mean(axis=0).astype(np.float32)
        std = x.std(axis=0).astype(np.float32)
        return cls(mean, np.where(std > 1e-8, std, 1.0).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)
