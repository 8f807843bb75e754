"""State of the ethogram viewer and labeller, independent of any view.

One video, the labels of one or several annotators ((T, K) int8, background first, -1 unlabelled),
optionally a model's probabilities and predictions ((T, K)), a frame cursor, and the labels being
edited (one annotator's). Frames are decoded on demand (``deg.data.video.read_video`` of one frame:
PyAV seeks to the nearest keyframe), and only a few recent frames are cached, so a 30-minute video
never sits in memory.

Edits (each undoable):

* :meth:`EthogramModel.toggle` a behaviour from the cursor: the first call opens a bout at the
  cursor, the second (at any frame) fills the frames between the two with the behaviour;
* :meth:`EthogramModel.stretch` a bout to new start/stop frames; :meth:`EthogramModel.delete` it.

The background column is recomputed after every edit (background = no behaviour on a labelled frame).
:meth:`EthogramModel.save` writes the DeepEthogram CSV layout atomically; before overwriting a file that
exists it copies it once per session to ``<stem>.backup-<UTC time>.csv`` beside it.
"""
from __future__ import annotations

import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from deg import bouts
from deg.data import video as video_io
from deg.data.labels import read_deg_labels, write_deg_labels

UNDO_DEPTH = 200          # edits kept for undo ((T, K) int8 copies: 54,000 x 6 bytes for 30 min at 30 fps)
FRAME_CACHE = 16          # decoded frames kept (scrubbing back and forth re-uses them)


class EthogramError(ValueError):
    """A label or prediction that does not fit the video, or an edit that makes no sense."""


@dataclass(frozen=True)
class Bout:
    behaviour: str
    start: int               # first frame
    stop: int                # one past the last frame


class EthogramModel:
    """Viewer/labeller state for one video.

    labels: {annotator: (T, K)}; ``editing`` names the annotator whose labels are edited and saved to
    ``label_path`` (a new annotator starts unlabelled: all -1 until a bout is marked; frames marked
    get 0/1 on every column). probabilities / predictions: (T, K) from a run or ``make predict``.
    """

    def __init__(self, video_path: str | Path, behaviours: Sequence[str], labels: dict[str, np.ndarray] | None = None,
                 editing: str = "me", label_path: str | Path | None = None,
                 probabilities: np.ndarray | None = None, predictions: np.ndarray | None = None):
        self.video_path = Path(video_path)
        info = video_io.video_info(self.video_path)
        self.n_frames, self.fps = int(info.n_frames), float(info.fps)
        self.behaviours = list(behaviours)
        if self.behaviours[:1] != ["background"]:
            raise EthogramError(f"behaviours must start with 'background', got {self.behaviours}")
        shape = (self.n_frames, len(self.behaviours))
        self.labels: dict[str, np.ndarray] = {}
        for who, matrix in (labels or {}).items():
            self.labels[who] = self._fit(np.asarray(matrix, dtype=np.int8), shape, f"labels of {who!r}")
        self.editing = editing
        if editing not in self.labels:
            self.labels[editing] = np.full(shape, -1, dtype=np.int8)
        self.label_path = Path(label_path) if label_path is not None else None
        self.probabilities = None if probabilities is None else self._fit(np.asarray(probabilities, np.float32), shape, "probabilities")
        self.predictions = None if predictions is None else self._fit(np.asarray(predictions, np.int8), shape, "predictions")
        self.cursor = 0
        self.open_bouts: dict[str, int] = {}          # behaviour -> frame its toggle opened
        self._undo: list[tuple[np.ndarray, dict[str, int]]] = []
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._backed_up = False
        self.dirty = False

    def _fit(self, matrix: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
        if matrix.ndim != 2 or matrix.shape[1] != shape[1]:
            raise EthogramError(f"{what}: shape {matrix.shape}, expected (T, {shape[1]}) for {self.behaviours}")
        if matrix.shape[0] != shape[0]:
            raise EthogramError(f"{what}: {matrix.shape[0]} frames, the video {self.video_path} has {shape[0]}")
        return matrix.copy()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open_labels(cls, video_path, label_path, editing: str = "me", others: dict[str, str | Path] | None = None,
                    **kwargs) -> "EthogramModel":
        """Edit the DeepEthogram CSV ``label_path`` (created on save if it does not exist) of a video;
        ``others`` {annotator: csv} are shown beside it."""
        label_path = Path(label_path)
        labels, names = {}, None
        for who, path in {**(others or {}), **({editing: label_path} if label_path.exists() else {})}.items():
            labels[who], file_names = read_deg_labels(path)
            if names is not None and file_names != names:
                raise EthogramError(f"{path}: behaviours {file_names} differ from {names}")
            names = file_names
        behaviours = kwargs.pop("behaviours", names)
        if behaviours is None:
            raise EthogramError(f"{label_path}: no label file to take the behaviours from; pass behaviours=")
        return cls(video_path, behaviours, labels, editing=editing, label_path=label_path, **kwargs)

    @classmethod
    def open_prediction(cls, video_path, probabilities_npz, label_path, editing: str = "me") -> "EthogramModel":
        """A new video with ``make predict``'s ``<stem>_probabilities.npz`` (probs, thresholds, behaviours)."""
        with np.load(probabilities_npz, allow_pickle=False) as npz:
            probs, behaviours = npz["probs"], [str(b) for b in npz["behaviours"]]
            thresholds = npz["thresholds"]
        preds_path = Path(probabilities_npz).with_name(Path(probabilities_npz).name.replace("_probabilities.npz", "_predictions.csv"))
        preds = read_deg_labels(preds_path)[0] if preds_path.exists() else (probs > thresholds).astype(np.int8)
        model = cls.open_labels(video_path, label_path, editing=editing, behaviours=behaviours,
                                probabilities=probs, predictions=preds)
        return model

    @classmethod
    def open_run(cls, run_dir, video: str, editing: str | None = None) -> "EthogramModel":
        """Review a run folder's predictions of ``video`` against every annotator's labels; edits go
        to the dataset's label file of ``editing`` (default: the dataset's training annotator)."""
        from deg import io
        from deg.data.datasets import open_dataset
        from deg.evaluate import read_predictions

        run_dir = Path(run_dir)
        meta = io.read_json(run_dir / "run.json")
        dataset = open_dataset(meta["dataset"])
        if video not in dataset.videos:
            raise EthogramError(f"{run_dir}: video {video!r} is not in dataset {dataset.id!r} ({dataset.videos})")
        video_path = dataset.video_path(video)
        if video_path is None:
            raise EthogramError(f"dataset {dataset.id!r} has no video file for {video!r}")
        labels = {a: dataset.labels(video, a) for a in dataset.annotators if dataset.has_labels(video, a)}
        arrays = read_predictions(run_dir, video, next(iter(labels.values())).shape)
        editing = editing or dataset.train_annotator
        return cls(video_path, dataset.behaviours, labels, editing=editing,
                   label_path=dataset.label_path(video, editing),
                   probabilities=arrays["probs"], predictions=arrays["preds"])

    # ------------------------------------------------------------------ cursor and frames
    def seek(self, frame: int) -> int:
        self.cursor = int(min(max(frame, 0), self.n_frames - 1))
        return self.cursor

    def step(self, n: int = 1) -> int:
        return self.seek(self.cursor + n)

    def frame(self, index: int | None = None) -> np.ndarray:
        """(H, W, 3) uint8 frame ``index`` (default: the cursor's), decoded on demand."""
        index = self.cursor if index is None else int(index)
        if not 0 <= index < self.n_frames:
            raise EthogramError(f"frame {index} outside 0..{self.n_frames - 1} of {self.video_path}")
        if index in self._frames:
            self._frames.move_to_end(index)
            return self._frames[index]
        image = video_io.read_video(self.video_path, start=index, stop=index + 1)[0]
        self._frames[index] = image
        while len(self._frames) > FRAME_CACHE:
            self._frames.popitem(last=False)
        return image

    # ------------------------------------------------------------------ bouts
    def bouts(self, annotator: str | None = None) -> list[Bout]:
        """Every bout (not background) of ``annotator`` (default: the edited labels), by start frame."""
        matrix = self.labels[annotator or self.editing]
        k, start, stop = bouts.find_bouts((matrix[:, 1:] == 1).astype(np.int8))
        found = [Bout(self.behaviours[1 + int(b)], int(s), int(e)) for b, s, e in zip(k, start, stop)]
        return sorted(found, key=lambda b: (b.start, b.behaviour))

    def jump_to(self, bout: Bout) -> int:
        return self.seek(bout.start)

    def _column(self, behaviour: str) -> int:
        if behaviour not in self.behaviours[1:]:
            raise EthogramError(f"unknown behaviour {behaviour!r}; labelled behaviours: {self.behaviours[1:]}")
        return self.behaviours.index(behaviour)

    def _bout_at(self, behaviour: str, frame: int) -> Bout:
        for bout in self.bouts():
            if bout.behaviour == behaviour and bout.start <= frame < bout.stop:
                return bout
        raise EthogramError(f"no {behaviour!r} bout at frame {frame}")

    # ------------------------------------------------------------------ edits
    def _push(self) -> None:
        self._undo.append((self.labels[self.editing].copy(), dict(self.open_bouts)))
        del self._undo[:-UNDO_DEPTH]

    def _set(self, column: int, start: int, stop: int, value: int) -> None:
        matrix = self.labels[self.editing]
        rows = slice(max(start, 0), min(stop, self.n_frames))
        unlabelled = matrix[rows, 0] == -1
        matrix[rows][unlabelled] = 0                     # marking a frame labels it (all columns 0/1)
        matrix[rows, column] = value
        behaviours = matrix[:, 1:]
        labelled = matrix[:, 0] != -1
        matrix[labelled, 0] = (behaviours[labelled] == 1).sum(1) == 0
        self.dirty = True

    def toggle(self, behaviour: str) -> Bout | None:
        """Open a bout of ``behaviour`` at the cursor, or close the open one there (returns the bout)."""
        column = self._column(behaviour)
        self._push()
        if behaviour not in self.open_bouts:
            self.open_bouts[behaviour] = self.cursor
            self._set(column, self.cursor, self.cursor + 1, 1)
            return None
        first = self.open_bouts.pop(behaviour)
        start, stop = min(first, self.cursor), max(first, self.cursor) + 1
        self._set(column, start, stop, 1)
        return Bout(behaviour, start, stop)

    def stretch(self, behaviour: str, frame: int, start: int, stop: int) -> Bout:
        """Move the bout of ``behaviour`` that covers ``frame`` to frames ``start:stop``."""
        if not 0 <= start < stop <= self.n_frames:
            raise EthogramError(f"bout {start}:{stop} outside the video's 0:{self.n_frames} or empty")
        old = self._bout_at(behaviour, frame)
        column = self._column(behaviour)
        self._push()
        self._set(column, old.start, old.stop, 0)
        self._set(column, start, stop, 1)
        return Bout(behaviour, start, stop)

    def delete(self, behaviour: str, frame: int) -> Bout:
        """Remove the bout of ``behaviour`` covering ``frame`` (its frames stay labelled: behaviour 0)."""
        old = self._bout_at(behaviour, frame)
        self._push()
        self._set(self._column(behaviour), old.start, old.stop, 0)
        return old

    def undo(self) -> bool:
        """Undo the last edit; False when there is nothing to undo."""
        if not self._undo:
            return False
        self.labels[self.editing], self.open_bouts = self._undo.pop()
        self.dirty = True
        return True

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path | None = None) -> Path:
        """Write the edited labels (DeepEthogram CSV, atomic); back up an existing file first."""
        path = Path(path) if path is not None else self.label_path
        if path is None:
            raise EthogramError("no label file to save to: pass path= or open the model with label_path")
        if path.exists() and not self._backed_up:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            backup = path.with_name(f"{path.stem}.backup-{stamp}{path.suffix}")
            n = 1
            while backup.exists():
                backup = path.with_name(f"{path.stem}.backup-{stamp}-{n}{path.suffix}")
                n += 1
            shutil.copy2(path, backup)
            self.last_backup = backup
            self._backed_up = True
        write_deg_labels(path, self.labels[self.editing], self.behaviours)
        self.label_path = path
        self.dirty = False
        return path

    # ------------------------------------------------------------------ rasters for a view
    def rasters(self) -> dict[str, np.ndarray]:
        """{row name: (K, T) float} for drawing: each annotator's labels (-1 -> NaN), then the model's
        predictions and probabilities when present."""
        out = {}
        for who, matrix in self.labels.items():
            out[f"labels: {who}"] = np.where(matrix.T < 0, np.nan, matrix.T).astype(np.float32)
        if self.predictions is not None:
            out["predictions"] = self.predictions.T.astype(np.float32)
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities.T.astype(np.float32)
        return out
