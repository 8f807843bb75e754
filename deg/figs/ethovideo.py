"""Videos 1-9: raw frames above the annotator's and the model's ethograms, scrolling under a cursor.

The paper's supplementary videos show, per dataset, "Top: raw image. Title indicates frame number
in video. Middle: human labels. Black box indicates the current frame. Bottom: DeepEthogram
predictions". This module draws the same thing with numpy only: the text that never changes
(behaviour names, block titles) is rendered once with matplotlib into a static canvas; every
output frame is that canvas plus the (integer-upscaled) video frame, a window of each ethogram
cut out of a pre-rendered strip, a black box around the current frame's column and the frame
number drawn with a small bitmap font. All of it is vectorised over chunks of frames and streamed
to :func:`deg.data.video.write_video` (atomic MP4).

Ethogram cells: behaviour ``k`` present = its colour (:func:`behaviour_colours`), absent = white,
unlabelled (-1) = light grey. The window shows ``span`` frames; it is centred on the current frame
except near the clip's ends, where it stops and the cursor moves instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

OFF = np.array([255, 255, 255], np.uint8)        # behaviour absent
UNLABELLED = np.array([210, 210, 210], np.uint8)  # -1 in a label matrix
CURSOR = np.array([0, 0, 0], np.uint8)
FRAME = np.array([170, 170, 170], np.uint8)       # outline of an ethogram window
BACKGROUND_COLOUR = (96, 96, 96)                  # column 0, "background"
_TAB10 = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127))

# 3 x 5 bitmap digits (rows top to bottom), for the frame counter.
_DIGITS = np.array([[int(c) for c in "".join(rows)] for rows in (
    ("111", "101", "101", "101", "111"), ("010", "110", "010", "010", "111"), ("111", "001", "111", "100", "111"),
    ("111", "001", "111", "001", "111"), ("101", "101", "111", "001", "001"), ("111", "100", "111", "001", "111"),
    ("111", "100", "111", "101", "111"), ("111", "001", "010", "010", "010"), ("111", "101", "111", "101", "111"),
    ("111", "101", "111", "001", "111"))], dtype=bool).reshape(10, 5, 3)


class EthoVideoError(ValueError):
    """Inputs that cannot be drawn together (lengths or behaviour counts differ)."""


def behaviour_colours(n: int) -> np.ndarray:
    """(n, 3) uint8 colours: dark grey for background (column 0), then the tab10 cycle."""
    cols = [BACKGROUND_COLOUR] + [_TAB10[i % len(_TAB10)] for i in range(max(n - 1, 0))]
    return np.array(cols[:n], dtype=np.uint8).reshape(n, 3)


def ethogram_image(labels: np.ndarray, colours: np.ndarray, row_h: int, col_w: int) -> np.ndarray:
    """Label matrix (T, K) -> image (K row_h, T col_w, 3) uint8; row k = behaviour k, column t = frame t."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != len(colours):
        raise EthoVideoError(f"labels {labels.shape} do not match {len(colours)} behaviour colours")
    cells = np.where((labels == 1)[..., None], np.asarray(colours, np.uint8)[None], OFF)   # (T, K, 3)
    cells = np.where((labels < 0)[..., None], UNLABELLED, cells).transpose(1, 0, 2)       # (K, T, 3)
    return np.repeat(np.repeat(cells, row_h, axis=0), col_w, axis=1)


def window_starts(n_frames: int, span: int) -> np.ndarray:
    """First frame of the ethogram window shown at each frame: centred on it, clamped to the clip."""
    t = np.arange(n_frames)
    return np.clip(t - span // 2, 0, max(n_frames - span, 0))


def choose_window(labels: np.ndarray, length: int) -> int:
    """Start of the ``length``-frame window of ``labels`` (T, K) with the most label changes
    (the liveliest stretch to show); 0 when the video is not longer than ``length``."""
    labels = np.asarray(labels)
    T = len(labels)
    if T <= length:
        return 0
    changes = np.r_[0, (np.diff(labels, axis=0) != 0).any(axis=1).astype(np.int64)]
    csum = np.r_[0, np.cumsum(changes)]
    counts = csum[length:] - csum[:-length]          # changes in [s, s + length)
    return int(np.argmax(counts))


@dataclass(frozen=True)
class Layout:
    """Pixel geometry of an output frame (all in pixels, origin top-left)."""

    height: int
    width: int
    scale: int                     # video frame upscaling factor
    video_y: int
    video_x: int
    video_h: int
    video_w: int
    gutter: int                    # width of the behaviour-name column
    span: int                      # frames shown in an ethogram window
    row_h: int
    col_w: int
    block_y: tuple[int, ...]       # top row of each ethogram block
    n_behaviours: int
    counter_y: int
    counter_x: int
    digit_scale: int

    @property
    def block_h(self) -> int:
        return self.n_behaviours * self.row_h

    def cell_centre(self, block: int, behaviour: int, column: int) -> tuple[int, int]:
        """(y, x) of the centre of window column ``column`` and row ``behaviour`` of ``block``."""
        return (self.block_y[block] + behaviour * self.row_h + self.row_h // 2,
                self.gutter + column * self.col_w + self.col_w // 2)


def make_layout(frame_hw: tuple[int, int], n_behaviours: int, n_blocks: int, span: int,
                target_height: int = 256, row_h: int = 12, min_width: int = 480, gutter: int = 110) -> Layout:
    """Geometry for frames of size ``frame_hw`` and ``n_blocks`` ethograms of ``n_behaviours`` rows."""
    h, w = frame_hw
    scale = max(1, int(round(target_height / h)))
    vh, vw = h * scale, w * scale
    col_w = max(2, int(np.ceil((max(min_width, vw) - gutter) / span)))
    width = max(gutter + span * col_w + 2, vw)   # +2: the window outline
    width += width % 2
    header, title_h, gap = 22, 18, 6
    video_y = header
    video_x = (width - vw) // 2
    y = video_y + vh + gap
    blocks = []
    for _ in range(n_blocks):
        y += title_h
        blocks.append(y)
        y += n_behaviours * row_h + gap
    height = y + y % 2
    return Layout(height=height, width=width, scale=scale, video_y=video_y, video_x=video_x, video_h=vh,
                  video_w=vw, gutter=gutter, span=span, row_h=row_h, col_w=col_w, block_y=tuple(blocks),
                  n_behaviours=n_behaviours, counter_y=4, counter_x=gutter + 60, digit_scale=2)


def static_canvas(layout: Layout, behaviours: Sequence[str], block_titles: Sequence[str],
                  colours: np.ndarray, title: str = "") -> np.ndarray:
    """The parts of every frame that never change, (H, W, 3) uint8: white background, title and
    'frame' label, block titles, behaviour names in their colours. Rendered once with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(layout.width / dpi, layout.height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    H, W = layout.height, layout.width

    def text(x, y, s, **kw):
        fig.text(x / W, 1 - y / H, s, va="center", **kw)

    text(layout.counter_x - 6, layout.counter_y + 5 * layout.digit_scale / 2, "frame", fontsize=8, ha="right")
    if title:
        text(W - 4, 12, title, fontsize=7, ha="right")
    for block, name in zip(layout.block_y, block_titles):
        text(layout.gutter, block - 9, name, fontsize=7, ha="left", fontweight="bold")
        for k, beh in enumerate(behaviours):
            colour = tuple(np.asarray(colours[k]) / 255.0)
            text(layout.gutter - 4, block + k * layout.row_h + layout.row_h / 2, beh, fontsize=6.5, ha="right",
                 color=colour)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    canvas = np.full((H, W, 3), 255, np.uint8)
    h, w = min(H, rgba.shape[0]), min(W, rgba.shape[1])
    canvas[:h, :w] = rgba[:h, :w]
    # light grey frame around each ethogram window (white "absent" cells on a white page)
    x0, x1 = layout.gutter - 1, layout.gutter + layout.span * layout.col_w
    for by in layout.block_y:
        y0, y1 = by - 1, by + layout.block_h
        canvas[[y0, y1], x0:x1 + 1] = FRAME
        canvas[y0:y1 + 1, [x0, min(x1, W - 1)]] = FRAME
    return canvas


def _draw_numbers(out: np.ndarray, numbers: np.ndarray, y: int, x: int, scale: int) -> None:
    """Write non-negative integers (one per frame of ``out`` (n, H, W, 3)) in black, in place."""
    n_digits = max(1, len(str(int(numbers.max())))) if len(numbers) else 1
    powers = 10 ** np.arange(n_digits - 1, -1, -1)
    digits = (numbers[:, None] // powers[None]) % 10                          # (n, d)
    glyphs = _DIGITS[digits]                                                   # (n, d, 5, 3)
    glyphs = np.pad(glyphs, ((0, 0), (0, 0), (0, 0), (0, 1)))                  # 1 px spacing
    strip = glyphs.transpose(0, 2, 1, 3).reshape(len(numbers), 5, n_digits * 4)
    strip = np.repeat(np.repeat(strip, scale, axis=1), scale, axis=2)
    h, w = strip.shape[1:]
    region = out[:, y:y + h, x:x + w]
    region[strip[:, :region.shape[1], :region.shape[2]]] = CURSOR


def render(frames: np.ndarray, ethograms: Mapping[str, np.ndarray], behaviours: Sequence[str],
           first_frame: int = 0, span: int | None = None, title: str = "", chunk: int = 64,
           layout: Layout | None = None) -> tuple[Layout, Iterator[np.ndarray]]:
    """Draw the video.

    frames: (T, H, W, 3) uint8 raw frames; ethograms: block title -> (T, K) label matrix (1 =
    present, 0 = absent, -1 = unlabelled), drawn top to bottom in the mapping's order; behaviours:
    the K names; first_frame: the video frame number of ``frames[0]`` (shown as the counter);
    span: frames per ethogram window (default min(T, 120)). Returns the layout and an iterator of
    (n <= chunk, H_out, W_out, 3) uint8 chunks, T frames in all.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise EthoVideoError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    T, K = len(frames), len(behaviours)
    mats = {}
    for name, labels in ethograms.items():
        labels = np.asarray(labels)
        if labels.shape != (T, K):
            raise EthoVideoError(f"ethogram {name!r} has shape {labels.shape}, expected ({T}, {K})")
        mats[name] = labels
    if T == 0:
        raise EthoVideoError("no frames to draw")
    span = int(min(T, span or 120))
    layout = layout or make_layout(frames.shape[1:3], K, len(mats), span)
    colours = behaviour_colours(K)
    canvas = static_canvas(layout, behaviours, list(mats), colours, title)
    strips = [ethogram_image(m, colours, layout.row_h, layout.col_w) for m in mats.values()]
    starts = window_starts(T, span)
    cursor = np.arange(T) - starts
    win_px = np.arange(span * layout.col_w)
    s = layout.scale
    bh = layout.block_h

    def chunks() -> Iterator[np.ndarray]:
        for a in range(0, T, chunk):
            idx = np.arange(a, min(a + chunk, T))
            n = len(idx)
            out = np.broadcast_to(canvas, (n, *canvas.shape)).copy()
            video = np.repeat(np.repeat(frames[idx], s, axis=1), s, axis=2)
            out[:, layout.video_y:layout.video_y + layout.video_h,
                layout.video_x:layout.video_x + layout.video_w] = video
            cols = starts[idx, None] * layout.col_w + win_px[None]            # (n, span col_w)
            x0 = layout.gutter
            for by, strip in zip(layout.block_y, strips):
                out[:, by:by + bh, x0:x0 + span * layout.col_w] = strip[:, cols].transpose(1, 0, 2, 3)
                # black box around the current frame's column
                left = x0 + cursor[idx] * layout.col_w - 1
                right = left + layout.col_w + 1
                rows = np.arange(by - 1, by + bh + 1)
                fi = np.arange(n)[:, None]
                for xs in (left, right):
                    xs = np.clip(xs, 0, layout.width - 1)
                    out[fi, rows[None], xs[:, None]] = CURSOR
                xr = np.clip(left[:, None] + np.arange(layout.col_w + 2)[None], 0, layout.width - 1)
                out[fi, by - 1, xr] = CURSOR
                out[fi, by + bh, xr] = CURSOR
            _draw_numbers(out, first_frame + idx, layout.counter_y, layout.counter_x, layout.digit_scale)
            yield out

    return layout, chunks()


def write_ethogram_video(path: str | Path, frames: np.ndarray, ethograms: Mapping[str, np.ndarray],
                         behaviours: Sequence[str], fps: float, first_frame: int = 0, span: int | None = None,
                         title: str = "") -> tuple[Path, Layout]:
    """Render (:func:`render`) and encode to ``path`` (MP4, atomic, via deg.data.video.write_video)."""
    from deg.data.video import write_video

    layout, chunks = render(frames, ethograms, behaviours, first_frame=first_frame, span=span, title=title)
    return write_video(path, chunks, fps=fps), layout


def still(frames: np.ndarray, ethograms: Mapping[str, np.ndarray], behaviours: Sequence[str], index: int,
          first_frame: int = 0, span: int | None = None, title: str = "") -> np.ndarray:
    """The single output frame ``index`` (H_out, W_out, 3) of :func:`render` (for a PNG still)."""
    chunk = 16
    _, chunks = render(frames, ethograms, behaviours, first_frame=first_frame, span=span, title=title, chunk=chunk)
    if not 0 <= index < len(frames):
        raise EthoVideoError(f"frame index {index} outside 0..{len(frames) - 1}")
    for i, out in enumerate(chunks):
        if i == index // chunk:
            return out[index % chunk]
    raise AssertionError("unreachable")


def ethogram_table(ethograms: Mapping[str, np.ndarray], behaviours: Sequence[str], first_frame: int = 0):
    """Long table of the ethograms shown: frame, source, behaviour, value (1 / 0 / -1)."""
    import pandas as pd

    frames_out = []
    for name, labels in ethograms.items():
        labels = np.asarray(labels)
        T, K = labels.shape
        frames_out.append(pd.DataFrame({"frame": np.repeat(first_frame + np.arange(T), K),
                                        "source": name, "behaviour": np.tile(list(behaviours), T),
                                        "value": labels.reshape(-1).astype(int)}))
    return pd.concat(frames_out, ignore_index=True)
