"""Frames in memory, clip sampling and batching for the training stages.

* :func:`load_frames` decodes each video once at the run's image size into a uint8 ``.npy`` cache
  (``results/_cache/frames/<dataset>/``, shared by every preset and split, keyed by the video
  file's size and mtime), then maps it into memory. Small datasets are thus decoded once and held
  in RAM; large ones are read from the page cache.
* A *clip* centred on frame t is frames ``t - n//2 ... t + n - 1 - n//2``; at the edges of a video
  the first/last frame is repeated, so every frame gets a clip and a prediction.
* Samplers draw from an explicit ``np.random.Generator`` whose state is checkpointed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from deg import io, paths
from deg.provenance import config_key

# Above this many bytes of frames a run keeps the cache memory-mapped instead of copying it to RAM.
RAM_BUDGET_BYTES = 6 * 1024**3


def _round_down(x: int, multiple: int) -> int:
    return max(multiple, (x // multiple) * multiple)


def resolve_image_size(profile_size, dataset_size, native_hw: tuple[int, int] | None) -> tuple[int, int]:
    """(H, W) frames are resized to: the profile's, else the dataset's, else native rounded down to 32.

    Flow generators need H, W divisible by 8 and ResNets work best with multiples of 32.
    """
    size = profile_size or dataset_size
    if size is not None:
        h, w = int(size[0]), int(size[1])
        if h % 8 or w % 8 or h < 16 or w < 16:
            raise ValueError(f"image size {(h, w)} must be >= 16 and divisible by 8 (flow generator pyramid)")
        return h, w
    if native_hw is None:
        raise ValueError("no image size in the profile or dataset and no native size to fall back on")
    return _round_down(int(native_hw[0]), 32), _round_down(int(native_hw[1]), 32)


def frame_cache_path(dataset_id: str, video: str, video_path: Path, size: tuple[int, int]) -> Path:
    st = Path(video_path).stat()
    fingerprint = config_key({"name": Path(video_path).name, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
                              "size": list(size)}, length=12)
    return paths.results_dir() / "_cache" / "frames" / dataset_id / f"{video}-{size[0]}x{size[1]}-{fingerprint}.npy"


def load_frames(dataset, videos: Sequence[str], size: tuple[int, int], progress: bool = False) -> dict[str, np.ndarray]:
    """{video: uint8 (T, H, W, 3)} at ``size``, decoded once and cached (see module docstring)."""
    from tqdm.auto import tqdm

    from deg.data.video import iter_frames, video_info

    out: dict[str, np.ndarray] = {}
    total = 0
    for video in tqdm(videos, desc=f"frames {size[0]}x{size[1]}", disable=not progress, leave=False):
        path = dataset.video_path(video)
        if path is None:
            raise ValueError(f"dataset {dataset.id!r} ({dataset.root}): no video file for {video!r} "
                             "(label-only datasets cannot be trained on)")
        cache = frame_cache_path(dataset.id, video, path, size)
        n = video_info(path).n_frames
        arr = read_frame_cache(cache, n, size)
        if arr is None:
            write_frame_cache(cache, iter_frames(path, size=size), n, size, source=path)
            arr = read_frame_cache(cache, n, size)
            if arr is None:
                raise ValueError(f"{cache}: frame cache just written from {path} does not read back")
        out[video] = arr
        total += arr.nbytes
    if total <= RAM_BUDGET_BYTES:
        out = {v: np.ascontiguousarray(a) for v, a in out.items()}
    return out


class FrameCacheWarning(UserWarning):
    """A damaged frame cache file was found and is being rebuilt; the message names it."""


def write_frame_cache(cache: Path, chunks, n: int, size: tuple[int, int], source: Path) -> Path:
    """Stream uint8 chunks (t, H, W, 3) into an ``.npy`` of shape (n, H, W, 3), atomically.

    Plain ``write`` calls, not a memory map: a full disk then raises ``ENOSPC`` (reported by
    :func:`deg.io.atomic_path` with the file's name) where writes through a map would kill the
    process with SIGBUS. A long video never sits in RAM whole.
    """
    shape = (int(n), int(size[0]), int(size[1]), 3)
    with io.atomic_path(cache, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                                   "fortran_order": False, "shape": shape})
        t = 0
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=np.uint8)
            if tuple(chunk.shape[1:]) != shape[1:]:
                raise ValueError(f"{source}: decoded frames of shape {chunk.shape[1:]}, expected {shape[1:]}")
            t += len(chunk)
            if t > n:
                raise ValueError(f"{source}: decoded more than the {n} frames the container holds")
            fh.write(chunk.tobytes())
        if t != n:
            raise ValueError(f"{source}: decoded {t} frames, the container holds {n}")
    return cache


def read_frame_cache(cache: Path, n: int, size: tuple[int, int]) -> np.ndarray | None:
    """The cached (n, H, W, 3) uint8 frames memory-mapped, or None when absent or damaged.

    Checked before use: the ``.npy`` header (dtype uint8, C order, shape (n, H, W, 3)) and the
    file size (header + n*H*W*3 bytes exactly), so a file cut short by a full disk or a copy, or
    one from another decoder setting, is never read. A damaged file is deleted with a
    :class:`FrameCacheWarning` naming it; the caller rebuilds it.
    """
    import warnings

    cache = Path(cache)
    if not cache.exists():
        return None
    expected = (int(n), int(size[0]), int(size[1]), 3)
    problem = None
    try:
        with open(cache, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
        if dtype != np.uint8 or fortran or tuple(shape) != expected:
            problem = f"holds {dtype} {tuple(shape)}{' (Fortran order)' if fortran else ''}, expected uint8 {expected}"
        elif cache.stat().st_size != offset + int(np.prod(expected)):
            problem = f"is {cache.stat().st_size} bytes, expected {offset + int(np.prod(expected))} (cut short?)"
    except (ValueError, OSError, EOFError) as exc:
        problem = f"has an unreadable header ({exc})"
    if problem is not None:
        warnings.warn(f"{cache}: damaged frame cache {problem}; deleting and rebuilding it",
                      FrameCacheWarning, stacklevel=3)
        cache.unlink(missing_ok=True)
        return None
    arr = np.load(cache, mmap_mode="r")
    _check_frames(arr, cache, size)
    return arr


def _check_frames(frames: np.ndarray, where, size) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or tuple(frames.shape[1:3]) != tuple(size):
        raise ValueError(f"{where}: expected uint8 frames (T, {size[0]}, {size[1]}, 3), got "
                         f"{frames.dtype} {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError(f"{where}: video has no frames")


# --------------------------------------------------------------------------------------
# Clips
# --------------------------------------------------------------------------------------
def clip_indices(centers: np.ndarray, n_frames: int, length: int) -> np.ndarray:
    """(B, n_frames) frame indices of clips centred on ``centers``, edge frames repeated."""
    offsets = np.arange(n_frames) - n_frames // 2
    return np.clip(np.asarray(centers)[:, None] + offsets[None, :], 0, length - 1)


def gather_clips(frames: Mapping[str, np.ndarray], videos: Sequence[str], centers: np.ndarray,
                 n_frames: int) -> np.ndarray:
    """uint8 (B, n_frames, H, W, 3): the clip of ``videos[i]`` centred on ``centers[i]``."""
    videos = np.asarray(videos)
    centers = np.asarray(centers)
    first = frames[str(videos[0])]
    out = np.empty((len(centers), n_frames) + first.shape[1:], dtype=np.uint8)
    for video in np.unique(videos):
        rows = np.flatnonzero(videos == video)
        arr = frames[str(video)]
        out[rows] = arr[clip_indices(centers[rows], n_frames, len(arr))]
    return out


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """numpy -> tensor on ``device`` (pinned, non-blocking copy on CUDA)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


# --------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------
class FrameSampler:
    """Uniform random frames from ``videos`` (optionally only frames where ``eligible`` is True).

    ``sample(n)`` -> (videos (n,) str array, frames (n,) int array), from ``rng``.
    """

    def __init__(self, lengths: Mapping[str, int], videos: Sequence[str], rng: np.random.Generator,
                 eligible: Mapping[str, np.ndarray] | None = None):
        self.videos = np.asarray(list(videos))
        vid, frame = [], []
        for i, video in enumerate(self.videos):
            idx = (np.flatnonzero(eligible[video]) if eligible is not None
                   else np.arange(int(lengths[video])))
            vid.append(np.full(len(idx), i))
            frame.append(idx)
        self.vid = np.concatenate(vid) if vid else np.zeros(0, int)
        self.frame = np.concatenate(frame) if frame else np.zeros(0, int)
        if len(self.frame) == 0:
            raise ValueError(f"no eligible frames to sample in videos {list(self.videos)}")
        self.rng = rng

    def __len__(self) -> int:
        return len(self.frame)

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        pick = self.rng.integers(0, len(self.frame), size=n)
        return self.videos[self.vid[pick]], self.frame[pick]

    def spaced(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` evenly spaced eligible frames (all of them when n <= 0 or n >= len): validation sets."""
        if n <= 0 or n >= len(self.frame):
            pick = np.arange(len(self.frame))
        else:
            pick = np.unique(np.linspace(0, len(self.frame) - 1, n).round().astype(int))
        return self.videos[self.vid[pick]], self.frame[pick]


def sample_windows(lengths: Mapping[str, int], videos: Sequence[str], length: int, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random windows of ``length`` frames: (videos (n,), starts (n,)).

    Videos are drawn in proportion to their frame counts, then a start uniformly in
    [0, T - length] (0 when the video is shorter than the window; see :func:`window`).
    """
    videos = np.asarray(list(videos))
    lens = np.array([int(lengths[v]) for v in videos], dtype=float)
    which = rng.choice(len(videos), size=n, p=lens / lens.sum())
    room = np.maximum(lens[which] - length, 0).astype(int)
    starts = (rng.random(n) * (room + 1)).astype(int)
    return videos[which], starts


def window(array: np.ndarray, start: int, length: int, fill) -> np.ndarray:
    """``array[start:start+length]`` along axis 0, padded with ``fill`` past the end."""
    part = array[start:start + length]
    if len(part) == length:
        return part
    pad = np.full((length - len(part),) + array.shape[1:], fill, dtype=array.dtype)
    return np.concatenate([part, pad])
