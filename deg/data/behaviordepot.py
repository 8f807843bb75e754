"""BehaviorDEPOT manual annotations (``hB_*.mat``) to per-frame labels.

BehaviorDEPOT (Gabriel et al. 2022) saves a person's annotations as a MATLAB struct
``hBehavior``: ``TotalFrames`` and one field per behaviour (``Freezing``, ...) holding
``Vector`` (0/1 per frame), ``Bouts`` ((n, 2) start/stop frames, 1-indexed, inclusive),
``Length`` and ``Count``. Files come as MATLAB v5 (read with :func:`scipy.io.loadmat`) or v7.3
(HDF5, read with h5py); the version is detected from the file's first bytes.

``Vector`` is taken as the per-frame truth; ``Bouts`` is checked against it (a mismatch warns,
naming the file). Malformed input raises :class:`deg.data.labels.LabelFormatError` naming the
file.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deg.data.labels import BACKGROUND, LabelFileNotFoundError, LabelFormatError, LabelWarning, background_from

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
STRUCT = "hBehavior"


@dataclass
class BehaviorDepotLabels:
    """labels: (T, K) int8, background first, every frame labelled; T = TotalFrames."""
    video: str
    labels: np.ndarray
    behaviours: list[str]
    source: Path
    mat_version: str              # "5" or "7.3"


def is_behaviordepot(path: str | os.PathLike) -> bool:
    """True for a MATLAB file (v5 header text or v7.3 HDF5) -- the struct is checked on reading."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(520)
    except OSError:
        return False
    return head.startswith(b"MATLAB") or head[512:520] == HDF5_SIGNATURE or head[:8] == HDF5_SIGNATURE


def video_name(path: Path) -> str:
    """``hB_demo1_manual_annotations.mat.mat`` -> ``demo1_manual_annotations``."""
    name = re.sub(r"(\.mat)+$", "", path.name, flags=re.IGNORECASE)
    return re.sub(r"^hB_", "", name)


def _mat_version(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(520)
    if head[512:520] == HDF5_SIGNATURE or head[:8] == HDF5_SIGNATURE:
        return "7.3"
    if head.startswith(b"MATLAB 5.0") or head.startswith(b"MATLAB"):
        return "5"
    raise LabelFormatError(f"{path}: not a MATLAB .mat file (no MATLAB v5 header and no HDF5 signature)")


def _read_v5(path: Path) -> tuple[float, dict[str, tuple[np.ndarray, np.ndarray | None]]]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise LabelFormatError(f"{path}: unreadable MATLAB v5 file ({exc})") from exc
    if STRUCT not in mat:
        raise LabelFormatError(f"{path}: no '{STRUCT}' struct (variables: "
                               f"{[k for k in mat if not k.startswith('__')]})")
    hb = mat[STRUCT]
    fields = getattr(hb, "_fieldnames", None)
    if not fields:
        raise LabelFormatError(f"{path}: '{STRUCT}' is not a struct")
    total = getattr(hb, "TotalFrames", None)
    out = {}
    for name in fields:
        value = getattr(hb, name)
        if hasattr(value, "_fieldnames") and "Vector" in value._fieldnames:
            bouts = getattr(value, "Bouts", None)
            out[name] = (np.atleast_1d(np.asarray(value.Vector)),
                         None if bouts is None else np.asarray(bouts, dtype=np.float64).reshape(-1, 2))
    return total, out


def _read_v73(path: Path) -> tuple[float, dict[str, tuple[np.ndarray, np.ndarray | None]]]:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            if STRUCT not in fh or not isinstance(fh[STRUCT], h5py.Group):
                raise LabelFormatError(f"{path}: no '{STRUCT}' struct (top level: {list(fh.keys())})")
            group = fh[STRUCT]
            total = group["TotalFrames"][()] if "TotalFrames" in group else None
            out = {}
            for name, item in group.items():
                if isinstance(item, h5py.Group) and "Vector" in item:
                    # MATLAB stores arrays column-major: (2, n) on disk is the (n, 2) Bouts
                    bouts = item["Bouts"][()].T.reshape(-1, 2) if "Bouts" in item else None
                    out[name] = (item["Vector"][()].ravel(), bouts)
    except LabelFormatError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise LabelFormatError(f"{path}: unreadable MATLAB v7.3 (HDF5) file ({exc})") from exc
    return total, out


def read_behaviordepot(path: str | os.PathLike) -> BehaviorDepotLabels:
    """Read a BehaviorDEPOT ``hB_*.mat`` annotation file (MATLAB v5 or v7.3)."""
    path = Path(path)
    if not path.is_file():
        raise LabelFileNotFoundError(f"{path}: BehaviorDEPOT annotation file not found")
    version = _mat_version(path)
    total, fields = (_read_v73 if version == "7.3" else _read_v5)(path)
    if not fields:
        raise LabelFormatError(f"{path}: '{STRUCT}' holds no behaviour (no field with a 'Vector')")
    try:
        n_frames = int(np.asarray(total, dtype=np.float64).ravel()[0])
    except (TypeError, ValueError, IndexError):
        raise LabelFormatError(f"{path}: '{STRUCT}.TotalFrames' is missing or not a number") from None
    columns = []
    for name, (vector, bouts) in fields.items():
        vector = np.asarray(vector, dtype=np.float64)
        if len(vector) != n_frames:
            raise LabelFormatError(f"{path}: {name}.Vector has {len(vector)} frames but TotalFrames is {n_frames}")
        if not np.isin(vector, (0, 1)).all():
            raise LabelFormatError(f"{path}: {name}.Vector holds values other than 0/1")
        if bouts is not None and len(bouts):
            painted = np.zeros(n_frames, dtype=bool)
            for start, stop in bouts.astype(np.int64):               # tens of bouts
                painted[max(start - 1, 0):stop] = True                # 1-indexed, inclusive
            disagree = int((painted != (vector == 1)).sum())
            if disagree:
                warnings.warn(f"{path}: {name}.Bouts and {name}.Vector disagree on {disagree} frame(s); "
                              "using Vector", LabelWarning, stacklevel=2)
        columns.append(vector == 1)
    behaviours = [BACKGROUND] + [name for name in fields]
    return BehaviorDepotLabels(video=video_name(path), labels=background_from(np.stack(columns, axis=1)),
                               behaviours=behaviours, source=path, mat_version=version)
