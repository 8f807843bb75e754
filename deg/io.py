"""Atomic file writes: nothing half-written ever sits under its final name.

Every writer in the package goes through :func:`atomic_path`: it yields a temporary path in
the destination's folder, and only when the block finishes without an exception is that file
fsync'ed and renamed over the destination (``os.replace`` is atomic on POSIX). A crash or a
``kill -9`` mid-write leaves at worst a ``.tmp-*`` file, which no reader takes for a result.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it to ``dest`` on success.

    ``suffix`` defaults to ``dest``'s own suffix so that libraries that pick a format by
    extension (PyAV, matplotlib, numpy) behave as they would on the final name.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{dest.name}-", suffix=suffix if suffix is not None else dest.suffix,
                               dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:  # read-only fd: fsync works, and so do hard links to read-only files
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_json(dest: str | os.PathLike, obj: Any) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def write_npz(dest: str | os.PathLike, **arrays: np.ndarray) -> Path:
    with atomic_path(dest, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(dest)


def write_csv(dest: str | os.PathLike, frame) -> Path:
    """Write a pandas DataFrame as CSV atomically (no index)."""
    with atomic_path(dest) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(dest)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
