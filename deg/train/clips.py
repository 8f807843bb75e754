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
        if not cache.exists():
            # Stream chunks into a memory-mapped .npy: a long video never sits in RAM twice.
            n = video_info(path).n_frames
            with io.atomic_path(cache, suffix=".npy") as tmp:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size[0], size[1], 3))
                t = 0
                for chunk in iter_frames(path, size=size):
                    arr[t:t + len(chunk)] = chunk
                    t += len(chunk)
                if t != n:
                    raise ValueError(f"{path}: decoded {t} frames, the container holds {n}")
                arr.flush()
                del arr
        arr = np.load(cache, mmap_mode="r")
        _check_frames(arr, cache, size)
        out[video] = arr
        total += arr.nbytes
    if total <= RAM_BUDGET_BYTES:
        out = {v: np.ascontiguousarray(a) for v, a in out.items()}
    return out


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
