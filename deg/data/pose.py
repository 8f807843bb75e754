"""The one in-memory pose form, its reader and writer, and pose aligned with labels.

Every pose source (DeepLabCut CSV or ``.h5``, single or multi-animal; the synthetic generator;
the prepared public pose datasets) ends up as a :class:`Pose`: one float32 array
``xy`` of shape (T, animals, points, 3) holding x, y (pixels, x right, y down) and the
network's likelihood, NaN where a point is missing.

* :func:`read_pose` detects the format from the content: HDF5 signature -> pandas HDF5 table
  (needs PyTables, ``tables``); gzip magic or text -> DeepLabCut CSV, parsed by
  :func:`deg.data.keypoints.parse_dlc_csv` (one CSV parser in the package).
* :func:`write_pose` writes the DeepLabCut multi-animal CSV layout (header rows ``scorer``,
  ``individuals``, ``bodyparts``, ``coords``; one row per frame; empty cells where missing),
  atomically.
* :func:`iter_pose_labels` yields, per video of a prepared dataset, the (T, K) label matrix of
  each annotator and the Pose, cut to a common length, saying what was trimmed.

Malformed input raises :class:`PoseFormatError` (the keypoint reader's error type, a
``ValueError``) naming the file.
"""
from __future__ import annotations

import gzip
import io as _io
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import pandas as pd

from deg import io
from deg.data.keypoints import (
    KeypointFileNotFoundError,
    KeypointFormatError,
    Keypoints,
    parse_dlc_csv,
)

if TYPE_CHECKING:
    from deg.data.datasets import Dataset

PoseFormatError = KeypointFormatError          # one error type for every malformed pose file
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b"
COORDS = ("x", "y", "likelihood")


@dataclass
class Pose:
    """Tracks of A animals x P points over T frames.

    xy: (T, A, P, 3) float32: x, y in pixels and likelihood in [0, 1]; NaN where missing.
    animals: the A animal names (``"single"`` for single-animal DeepLabCut files).
    points: the P point (body part) names, the same for every animal.
    fps: frames per second when known (DeepLabCut files do not store it).
    source: the file read, if any.
    """
    xy: np.ndarray
    animals: list[str]
    points: list[str]
    fps: float | None = None
    source: Path | None = None
    scorer: str = ""

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float32)
        if self.xy.ndim != 4 or self.xy.shape[-1] != 3:
            raise ValueError(f"Pose.xy must be (T, animals, points, 3), got {self.xy.shape}")
        if self.xy.shape[1:3] != (len(self.animals), len(self.points)):
            raise ValueError(f"Pose.xy has {self.xy.shape[1]} animals x {self.xy.shape[2]} points but "
                             f"{len(self.animals)} animal and {len(self.points)} point names were given")

    @property
    def n_frames(self) -> int:
        return int(self.xy.shape[0])

    @property
    def coords(self) -> np.ndarray:
        """(T, A, P, 2) x, y view."""
        return self.xy[..., :2]

    @property
    def likelihood(self) -> np.ndarray:
        """(T, A, P) likelihood view."""
        return self.xy[..., 2]

    def head(self, n_frames: int) -> "Pose":
        """The first ``n_frames`` frames (a view)."""
        return replace(self, xy=self.xy[:n_frames])

    def select(self, animals: Sequence[str] | None = None, points: Sequence[str] | None = None) -> "Pose":
        """A Pose with only the named animals / points, in the order given."""
        animals = list(self.animals if animals is None else animals)
        points = list(self.points if points is None else points)
        for wanted, have, what in ((animals, self.animals, "animals"), (points, self.points, "points")):
            missing = [n for n in wanted if n not in have]
            if missing:
                raise KeyError(f"{what} {missing} not in this pose ({have}; source {self.source})")
        a = [self.animals.index(n) for n in animals]
        p = [self.points.index(n) for n in points]
        return replace(self, xy=self.xy[:, a][:, :, p], animals=animals, points=points)

    def to_keypoints(self) -> Keypoints:
        """The keypoint reader's form (for :func:`deg.data.keypoints.interpolate_low_confidence`)."""
        return Keypoints(xy=self.xy[..., :2].copy(), likelihood=self.xy[..., 2].copy(),
                         animals=list(self.animals), bodyparts=list(self.points), scorer=self.scorer,
                         frame_index=np.arange(self.n_frames, dtype=np.int64), path=self.source)

    @classmethod
    def from_keypoints(cls, kp: Keypoints, fps: float | None = None) -> "Pose":
        xy = np.concatenate([kp.xy, kp.likelihood[..., None]], axis=-1)
        return cls(xy=xy, animals=list(kp.animals), points=list(kp.bodyparts), fps=fps, source=kp.path,
                   scorer=kp.scorer)


# ============================================================================ reading
def detect_pose_format(path: str | os.PathLike) -> str:
    """``"h5"`` or ``"csv"`` from the file's first bytes (HDF5 signature, else CSV text/gzip)."""
    path = Path(path)
    if not path.is_file():
        raise KeypointFileNotFoundError(f"{path}: pose file not found")
    with open(path, "rb") as fh:
        head = fh.read(8)
    return "h5" if head == HDF5_SIGNATURE else "csv"


def read_pose(path: str | os.PathLike, fps: float | None = None) -> Pose:
    """Read a DeepLabCut pose file (CSV, CSV.gz or pandas HDF5), format detected from the content.

    Single-animal files give one animal ``"single"``. Files without likelihood columns (some
    ``.h5`` exports, e.g. MABe 2022) get likelihood 1 where a point is present; there a point at
    exactly (0, 0) is read as missing, that being how those files store it.
    """
    path = Path(path)
    if detect_pose_format(path) == "h5":
        pose = _read_h5(path)
    else:
        raw = path.read_bytes()
        if raw.startswith(GZIP_MAGIC):
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise PoseFormatError(f"{path}: not a valid gzip file ({exc})") from exc
        pose = Pose.from_keypoints(parse_dlc_csv(raw, path))
    pose.fps = fps
    return pose


def _read_h5(path: Path) -> Pose:
    try:
        import tables  # noqa: F401  (pandas needs it for HDF5; fail with a clear message)
    except ImportError as exc:                      # pragma: no cover - pinned dependency
        raise ImportError(f"{path}: reading DeepLabCut .h5 files needs PyTables (pip install tables)") from exc
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            if not keys:
                raise PoseFormatError(f"{path}: HDF5 file holds no pandas table")
            if len(keys) > 1 and "/df_with_missing" not in keys:
                raise PoseFormatError(f"{path}: several tables {keys} and none named df_with_missing")
            frame = store["/df_with_missing" if "/df_with_missing" in keys else keys[0]]
    except PoseFormatError:
        raise
    except Exception as exc:                        # PyTables / pandas raise many types here
        raise PoseFormatError(f"{path}: not a readable pandas HDF5 pose table ({type(exc).__name__}: {exc})") \
            from exc
    if not isinstance(frame, pd.DataFrame) or not isinstance(frame.columns, pd.MultiIndex):
        raise PoseFormatError(f"{path}: the table's columns are not a DeepLabCut (scorer, [individuals,] "
                              "bodyparts, coords) MultiIndex")
    names = [str(n).lower() if n is not None else "" for n in frame.columns.names]
    if names not in (["scorer", "bodyparts", "coords"], ["scorer", "individuals", "bodyparts", "coords"]):
        raise PoseFormatError(f"{path}: column levels {frame.columns.names} are not DeepLabCut's "
                              "(scorer, [individuals,] bodyparts, coords)")
    columns = frame.columns.to_frame(index=False)
    columns.columns = names
    if "individuals" not in names:
        columns["individuals"] = "single"
    coords = columns["coords"].astype(str).tolist()
    unknown = sorted(set(coords) - set(COORDS))
    if unknown:
        raise PoseFormatError(f"{path}: coords {unknown} found; only x, y, likelihood are understood")
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PoseFormatError(f"{path}: pose values are not numeric ({exc})") from exc
    animals_col = columns["individuals"].astype(str).tolist()
    parts_col = columns["bodyparts"].astype(str).tolist()
    animals, points = list(dict.fromkeys(animals_col)), list(dict.fromkeys(parts_col))
    keys = list(zip(animals_col, parts_col, coords))
    if len(set(keys)) != len(keys):
        raise PoseFormatError(f"{path}: a (individual, bodypart, coord) column appears twice")
    xy = np.full((len(frame), len(animals), len(points), 3), np.nan, dtype=np.float32)
    a_idx = np.array([animals.index(a) for a in animals_col])
    p_idx = np.array([points.index(p) for p in parts_col])
    c_idx = np.array([COORDS.index(c) for c in coords])
    xy[:, a_idx, p_idx, c_idx] = values
    has_likelihood = "likelihood" in coords
    if not has_likelihood:
        missing = (xy[..., 0] == 0) & (xy[..., 1] == 0)
        xy[missing, :2] = np.nan
        xy[..., 2] = np.where(np.isfinite(xy[..., :2]).all(-1), 1.0, np.nan)
    for a, p in {(a, p) for a, p, _ in keys}:
        lacking = [c for c in COORDS[: 3 if has_likelihood else 2] if (a, p, c) not in set(keys)]
        if lacking:
            raise PoseFormatError(f"{path}: {a}/{p} lacks coords {lacking}")
    scorer = str(columns["scorer"].iat[0]) if len(columns) else ""
    return Pose(xy=xy, animals=animals, points=points, source=path, scorer=scorer)


# ============================================================================ writing
def write_pose(path: str | os.PathLike, pose: Pose, float_format: str = "%.7g") -> Path:
    """Write ``pose`` as a DeepLabCut multi-animal CSV (atomically); returns the path.

    Header rows ``scorer / individuals / bodyparts / coords``, then one row per frame starting
    with its 0-based index; NaN becomes an empty cell, as DeepLabCut writes it. ``%.7g`` keeps
    float32 precision to about 1e-7 relative.
    """
    path = Path(path)
    T, A, P, _ = pose.xy.shape
    scorer = pose.scorer or "deg"
    bad = [n for n in [scorer, *pose.animals, *pose.points] if any(c in n for c in ',\n\r"')]
    if bad:
        raise ValueError(f"{path}: names {bad} contain a comma, quote or newline, which DeepLabCut CSVs cannot hold")
    animals = np.repeat(pose.animals, P * 3).tolist()
    parts = np.tile(np.repeat(pose.points, 3), A).tolist()
    coords = list(COORDS) * (A * P)
    header = "".join(",".join([label, *cells]) + "\n" for label, cells in (
        ("scorer", [scorer] * len(coords)), ("individuals", animals), ("bodyparts", parts), ("coords", coords)))
    frame = pd.DataFrame(pose.xy.reshape(T, A * P * 3))
    frame.insert(0, "frame", np.arange(T))
    body = _io.StringIO()
    frame.to_csv(body, header=False, index=False, na_rep="", float_format=float_format, lineterminator="\n")
    return io.write_text(path, header + body.getvalue())


# ============================================================================ pose + labels
@dataclass
class PoseLabels:
    """One video's labels and pose, frame-aligned.

    labels: ``{annotator: (T, K) int8}`` (background first, -1 unlabelled), K = the dataset's
    behaviours; pose: the Pose with T frames; trimmed: ``{source: frames cut}`` for every source
    (``"pose"`` or ``"labels/<annotator>"``) that was longer than T; note: the same in words
    (empty when nothing was cut).
    """
    video: str
    labels: dict[str, np.ndarray]
    pose: Pose
    trimmed: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def n_frames(self) -> int:
        return self.pose.n_frames


class PoseAlignmentWarning(UserWarning):
    """Labels and pose of a video differed in length and were cut to the shorter."""


def align_pose_labels(video: str, labels: dict[str, np.ndarray], pose: Pose, warn: bool = False) -> PoseLabels:
    """Cut ``labels`` (each (T_a, K)) and ``pose`` (T_p frames) to the shortest; report the cut.

    Frames are assumed to start together (frame 0 of the labels is frame 0 of the pose), which
    holds for every dataset this package prepares; only the ends are trimmed.
    """
    lengths = {"pose": pose.n_frames, **{f"labels/{a}": len(m) for a, m in labels.items()}}
    n = min(lengths.values())
    trimmed = {source: length - n for source, length in lengths.items() if length > n}
    note = ""
    if trimmed:
        parts = ", ".join(f"{source} {lengths[source]} -> {n} ({cut} frames cut)" for source, cut in trimmed.items())
        note = f"{video}: lengths differ; trimmed the ends to {n} frames: {parts}"
        if warn:
            warnings.warn(note, PoseAlignmentWarning, stacklevel=3)
    return PoseLabels(video=video, labels={a: m[:n] for a, m in labels.items()}, pose=pose.head(n),
                      trimmed=trimmed, note=note)


def iter_pose_labels(dataset: "Dataset", videos: Sequence[str] | None = None,
                     annotators: Sequence[str] | None = None, warn: bool = False) -> Iterator[PoseLabels]:
    """Yield :class:`PoseLabels` for each video of ``dataset`` that has pose.

    ``videos`` defaults to every video with a pose file; ``annotators`` to every annotator that
    labelled the video (the dataset's training annotator first). Videos without pose are skipped
    when ``videos`` is not given, and raise when they are named.
    """
    from deg.data.datasets import DatasetError

    names = list(videos) if videos is not None else [v for v in dataset.videos if dataset.pose_path(v) is not None]
    for video in names:
        pose = dataset.pose(video)
        if pose is None:
            raise DatasetError(f"{dataset.root}: video {video!r} has no pose file pose/{video}.csv")
        wanted = list(annotators) if annotators is not None else (
            [dataset.train_annotator] + [a for a in dataset.annotators if a != dataset.train_annotator])
        labels = {a: dataset.labels(video, a) for a in wanted if dataset.has_labels(video, a)}
        yield align_pose_labels(video, labels, pose, warn=warn)
