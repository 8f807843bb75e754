"""Video files in and out, with PyAV (FFmpeg).

Frames are ``uint8`` RGB arrays of shape ``(T, H, W, 3)`` everywhere in the package.

Frame identity. A frame's index is its rank among the video's presentation timestamps
(``pts``), read once per file by demuxing packets (no decoding; about 10 microseconds a
frame) and cached by path, size and modification time. Windowed reads seek to the keyframe at
or before the first wanted frame, decode forward and keep exactly the frames whose ``pts``
fall in the window, so ``read_video(p, start=a, stop=b)`` equals ``read_video(p)[a:b]``
whatever the keyframe spacing or B-frame reordering (with open GOPs a seek that misses the
first frame retries one keyframe earlier, then from the start). Before seeking, the decoder is
primed with the file's first packet, which carries x264's version SEI that FFmpeg needs to
decode old x264 4:4:4 streams correctly. Streams without timestamps fall back to decode order
(decoding from the start).

Frame counts. :func:`video_info` counts the packets of the video stream rather than trusting
the container header: the header's count is absent in many containers (MKV, some AVI) and
stays at its full value when an MP4 that carries its index up front was cut short. Counting
is exact and cheap (the file is read once, not decoded). For MP4/MOV files the count is also
checked against the header, and a shortfall raises :class:`VideoError` (truncated file).

Resizing uses FFmpeg's swscale inside :meth:`av.VideoFrame.to_ndarray` (bilinear). Measured on
the 640x480 test video on 2 CPU cores: 270-330 frames/s decoding + resizing to 64x64 versus
25-30 frames/s for decoding full frames and resizing with ``torch.nn.functional.interpolate``
(bilinear, antialiased); the two outputs differ by 0.1 grey level on average.

Writing uses H.264 (``libx264``, ``yuv420p``, constant rate factor ``crf``) when this PyAV
build has it (the pinned ``av`` wheels do), else MPEG-4 part 2 (``mpeg4``) at a high bit rate.
``yuv420p`` halves chroma resolution, so heights and widths must be even: odd sizes raise
instead of being padded silently.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from deg import io

DEFAULT_CHUNK = 256


class VideoError(ValueError):
    """A video file is missing, not a video, has no video stream, or is truncated/corrupt."""


class LabelLengthError(VideoError):
    """A label file's frame count differs from its video's."""


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int      # counted packets of the video stream (see module docstring)
    fps: float         # average frame rate
    height: int
    width: int
    codec: str         # decoder name, e.g. "h264"


# ------------------------------------------------------------------------------ opening
def _open(path: str | os.PathLike) -> tuple["av.container.InputContainer", "av.video.stream.VideoStream"]:
    """Open ``path`` and return (container, first video stream); VideoError on any problem."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such video file")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video file")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: not a readable video file ({exc.strerror or exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: contains no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"   # frame + slice threading in the decoder
    return container, stream


@dataclass(frozen=True)
class _Index:
    pts: np.ndarray | None   # (n_frames,) sorted presentation timestamps; None = no timestamps
    key_pts: np.ndarray      # (n_keyframes,) sorted timestamps of keyframe packets (empty if unknown)
    n_frames: int
    fps: float
    height: int
    width: int
    codec: str


def _index(path: str | os.PathLike) -> _Index:
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise VideoError(f"{path}: no such video file") from None
    return _index_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=128)
def _index_cached(path: str, _size: int, _mtime_ns: int) -> _Index:
    container, stream = _open(path)
    try:
        header_frames = int(stream.frames or 0)
        pts: list[int | None] = []
        key_pts: list[int] = []
        try:
            for packet in container.demux(stream):
                # size-0 packets flush the demuxer; "discard" packets are cut by an MP4 edit list
                if packet.size == 0 or getattr(packet, "is_discard", False):
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe and packet.pts is not None:
                    key_pts.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path}: corrupt video data after {len(pts)} frames ({exc.strerror or exc})") from exc
        n = len(pts)
        if n == 0:
            raise VideoError(f"{path}: video stream has no frames")
        fmt = container.format.name or ""
        if header_frames > n and ("mp4" in fmt or "mov" in fmt):
            raise VideoError(f"{path}: truncated or corrupt: header declares {header_frames} frames, "
                             f"only {n} are present")
        if any(p is None for p in pts):
            pts_arr = None
        else:
            pts_arr = np.sort(np.asarray(pts, dtype=np.int64))
            if np.any(np.diff(pts_arr) == 0):   # duplicate timestamps: pts cannot identify frames
                pts_arr = None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate:
            fps = float(rate)
        elif pts_arr is not None and n > 1 and stream.time_base:
            fps = float((n - 1) / ((pts_arr[-1] - pts_arr[0]) * stream.time_base))
        else:
            raise VideoError(f"{path}: frame rate unknown")
        ctx = stream.codec_context
        return _Index(pts_arr, np.sort(np.asarray(key_pts, dtype=np.int64)), n, fps, int(ctx.height),
                      int(ctx.width), ctx.name)
    finally:
        container.close()


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate, size and codec of ``path`` (frame count by counting packets)."""
    idx = _index(path)
    return VideoInfo(idx.n_frames, idx.fps, idx.height, idx.width, idx.codec)


# ------------------------------------------------------------------------------ reading
def _to_rgb(frame: "av.VideoFrame", size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", height=size[0], width=size[1], interpolation="BILINEAR")


def _check_size(size, path) -> tuple[int, int] | None:
    if size is None:
        return None
    h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"{path}: size must be positive (H, W), got {size}")
    return h, w


class _SeekMissed(Exception):
    """After a seek, the first wanted frame did not come out: with open GOPs, a frame shown just
    before a keyframe may depend on the previous GOP, and a seek can land on that keyframe."""


def _prime_and_seek(container, stream, target_pts: int) -> None:
    # Prime the decoder with the first packet before seeking. x264 writes its version in an SEI
    # message of the first packet only, and FFmpeg's H.264 decoder needs it to apply its
    # workaround for old x264 4:4:4 streams; without it, frames decoded after a seek come out
    # garbled (seen on the DeepLabCut open-field test video). One packet costs little.
    for packet in container.demux(stream):
        if packet.size:
            stream.decode(packet)
            break
    # backward=True: land on the keyframe at or before the first wanted frame
    container.seek(target_pts, stream=stream, backward=True, any_frame=False)


def _decode_window(path, size, start: int, stop: int, idx: _Index,
                   seek_pts: int | None) -> Iterator[np.ndarray]:
    """Decode frames ``start..stop-1``, after seeking to ``seek_pts`` (None: from the beginning)."""
    container, stream = _open(path)
    seek = seek_pts is not None
    expected = start
    try:
        if seek:
            _prime_and_seek(container, stream, seek_pts)
        decode_order = 0
        for frame in container.decode(stream):
            if idx.pts is not None:
                if frame.pts is None:
                    raise VideoError(f"{path}: decoded a frame without timestamp")
                i = int(np.searchsorted(idx.pts, frame.pts))
                if i >= idx.n_frames or idx.pts[i] != frame.pts:
                    continue    # not a frame of the index (e.g. cut by an edit list)
            else:
                i, decode_order = decode_order, decode_order + 1
            if i < start:
                continue
            if i >= stop:
                break
            if i != expected:
                if seek and expected == start:
                    raise _SeekMissed
                raise VideoError(f"{path}: frame {expected} missing from the decoded stream "
                                 f"(got frame {i}); the file is corrupt")
            expected += 1
            yield _to_rgb(frame, size)
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: decoding failed at frame {expected} ({exc.strerror or exc})") from exc
    finally:
        container.close()
    if seek and expected == start < stop:
        raise _SeekMissed
    if expected < stop:
        raise VideoError(f"{path}: decoded only frames {start}..{expected - 1} of {start}..{stop - 1}; "
                         "the file is truncated or corrupt")


def _frames(path: str | os.PathLike, size: tuple[int, int] | None, start: int, stop: int,
            idx: _Index) -> Iterator[np.ndarray]:
    """Yield frames ``start..stop-1`` of ``path`` one at a time, as (H, W, 3) uint8.

    Seeks when it can. If the seek does not deliver frame ``start`` first (open GOPs), seeks one
    keyframe earlier, and failing that decodes from the beginning: slower, always exact.
    """
    if start >= stop:
        return
    targets: list[int | None] = [None]
    if idx.pts is not None and start > 0:
        target = int(idx.pts[start])
        j = int(np.searchsorted(idx.key_pts, target, side="right")) - 2   # the keyframe before
        targets = [target] + ([int(idx.key_pts[j])] if j >= 0 else []) + [None]
    for k, target in enumerate(targets):
        try:
            yield from _decode_window(path, size, start, stop, idx, target)
            return
        except _SeekMissed:
            if k == len(targets) - 1:
                raise VideoError(f"{path}: cannot decode frame {start}; the file is corrupt") from None


def _window(path, start: int, stop: int | None, idx: _Index) -> tuple[int, int]:
    stop = idx.n_frames if stop is None else int(stop)
    start = int(start)
    if not 0 <= start <= stop <= idx.n_frames:
        raise ValueError(f"{path}: frame window [{start}, {stop}) outside the video's {idx.n_frames} frames")
    return start, stop


def read_video(path: str | os.PathLike, size: tuple[int, int] | None = None, start: int = 0,
               stop: int | None = None) -> np.ndarray:
    """Frames ``start`` (inclusive) to ``stop`` (exclusive) of ``path`` as (T, H, W, 3) uint8 RGB.

    ``size=(H, W)`` resizes every frame (bilinear). ``stop=None`` reads to the end. The window is
    exact: it equals the same slice of a full read.
    """
    idx = _index(path)
    size = _check_size(size, path)
    start, stop = _window(path, start, stop, idx)
    h, w = size if size is not None else (idx.height, idx.width)
    out = np.empty((stop - start, h, w, 3), dtype=np.uint8)
    for j, frame in enumerate(_frames(path, size, start, stop, idx)):
        out[j] = frame
    return out


def iter_frames(path: str | os.PathLike, size: tuple[int, int] | None = None,
                chunk: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
    """Stream the whole video as chunks of at most ``chunk`` frames, each (t, H, W, 3) uint8.

    Memory stays at one chunk whatever the video's length; chunks concatenate to ``read_video(path, size)``.
    """
    if chunk < 1:
        raise ValueError(f"{path}: chunk must be >= 1, got {chunk}")
    idx = _index(path)
    size = _check_size(size, path)
    h, w = size if size is not None else (idx.height, idx.width)
    buf = np.empty((min(chunk, idx.n_frames), h, w, 3), dtype=np.uint8)
    j = 0
    for frame in _frames(path, size, 0, idx.n_frames, idx):
        buf[j] = frame
        j += 1
        if j == len(buf):
            yield buf.copy()
            j = 0
    if j:
        yield buf[:j].copy()


def check_labels_match(video_path: str | os.PathLike, n_label_frames: int,
                       labels_path: str | os.PathLike | None = None) -> int:
    """Return the video's frame count; raise :class:`LabelLengthError` if labels have another length.

    Labels are never cut or padded to fit: a mismatch means the wrong file or a broken export.
    """
    n_video = video_info(video_path).n_frames
    if int(n_label_frames) != n_video:
        what = f"labels {labels_path}" if labels_path is not None else "labels"
        raise LabelLengthError(f"{video_path}: video has {n_video} frames but {what} have {int(n_label_frames)} "
                               "rows; labels must have exactly one row per frame")
    return n_video


# ------------------------------------------------------------------------------ writing
def default_codec() -> str:
    """``libx264`` when this PyAV build can encode it, else ``mpeg4``."""
    try:
        av.Codec("libx264", "w")
        return "libx264"
    except (av.error.FFmpegError, ValueError):   # UnknownCodecError subclasses ValueError
        return "mpeg4"


def _chunks(frames: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    if isinstance(frames, np.ndarray):
        yield frames
    else:
        yield from frames


@lru_cache(maxsize=1)
def _x264_cpu_options() -> dict[str, str]:
    """x264 options that keep its output repeatable on this CPU.

    Measured with the pinned av 18.1 wheels on an AMD EPYC with AVX-512: x264's AVX-512 kernels
    made the same frames encode to different files from call to call (as if they read
    uninitialised memory), so synthetic datasets were not reproducible from their seed. Capping
    x264 at its AVX2 kernels (every AVX-512 CPU has AVX2) restores identical files; other CPUs
    keep x264's own detection.
    """
    from deg.provenance import cpu_flags

    return {"x264-params": "asm=avx2"} if any(f.startswith("avx512") for f in cpu_flags()) else {}


def write_video(path: str | os.PathLike, frames: np.ndarray | Iterable[np.ndarray], fps: float,
                crf: int = 18, codec: str | None = None, preset: str = "medium") -> Path:
    """Encode ``frames`` to an MP4 file at ``path`` atomically; return ``path``.

    frames: (T, H, W, 3) uint8 RGB, or an iterable of such chunks (streaming, constant memory).
    H and W must be even (``yuv420p``). ``codec`` defaults to :func:`default_codec` (H.264 with
    ``crf`` and x264 ``preset``; the MPEG-4 fallback ignores both and uses a high bit rate).
    x264's output is deterministic for given frames and settings (see :func:`_x264_cpu_options`).
    """
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"{path}: write_video writes MP4 files; use a .mp4 name")
    if not fps or fps <= 0:
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    codec = codec or default_codec()
    rate = Fraction(fps).limit_denominator(1001)
    n_written = 0
    with io.atomic_path(path, suffix=".mp4") as tmp:
        # faststart: the index goes before the data, so players and readers can start at once
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = None
            for chunk in _chunks(frames):
                chunk = np.asarray(chunk)
                if chunk.dtype != np.uint8 or chunk.ndim != 4 or chunk.shape[-1] != 3:
                    raise ValueError(f"{path}: frames must be uint8 (T, H, W, 3), got {chunk.dtype} {chunk.shape}")
                if stream is None:
                    h, w = chunk.shape[1:3]
                    if h % 2 or w % 2:
                        raise ValueError(f"{path}: frame size {h}x{w} is odd; yuv420p video needs even "
                                         "height and width (crop or pad the frames first)")
                    options = ({"crf": str(int(crf)), "preset": preset, **_x264_cpu_options()}
                               if codec == "libx264" else {})
                    stream = container.add_stream(codec, rate=rate, options=options)
                    stream.height, stream.width, stream.pix_fmt = h, w, "yuv420p"
                    if codec != "libx264":
                        stream.bit_rate = int(max(2e6, 2.0 * h * w * float(rate)))
                elif chunk.shape[1:3] != (stream.height, stream.width):
                    raise ValueError(f"{path}: chunk of size {chunk.shape[1:3]} after frames of size "
                                     f"{(stream.height, stream.width)}")
                for rgb in chunk:
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    frame.pts = n_written
                    frame.time_base = 1 / rate
                    container.mux(stream.encode(frame))
                    n_written += 1
            if stream is None or n_written == 0:
                raise ValueError(f"{path}: no frames to write")
            container.mux(stream.encode(None))   # flush delayed frames
    return path
