"""Figure 1C: colour coding of optic flow and the flow example written by the pipeline.

Colour code (the usual direction/magnitude wheel of optic-flow papers): **hue = direction**,
**saturation = magnitude** relative to ``max_magnitude`` (clipped at 1), value = 1, so a still
pixel is white and the fastest pixels are fully saturated. Directions are in image coordinates
(x to the right, y *down*, as the flow generator's channels 0 and 1, :mod:`deg.models.flow`):
right = red (hue 0), down = hue 1/4 (yellow-green), left = cyan (1/2), up = hue 3/4 (blue-violet).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import hsv_to_rgb


class FlowExampleError(ValueError):
    """A ``flow_example.npz`` that is missing or malformed (the message names the file)."""


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    """|flow| in pixels: flow (..., 2, H, W) -> (..., H, W)."""
    flow = np.asarray(flow, dtype=np.float64)
    return np.hypot(flow[..., 0, :, :], flow[..., 1, :, :])


def robust_max(flows: np.ndarray, percentile: float = 99.0) -> float:
    """A shared saturation magnitude for several flows: the ``percentile`` of |flow| (pixels),
    so that a few outlier pixels do not wash out the rest; at least 1e-6."""
    mag = flow_magnitude(flows)
    return float(max(np.percentile(mag, percentile), 1e-6)) if mag.size else 1e-6


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code optic flow.

    flow: (2, H, W) or (N, 2, H, W) float, channel 0 = x (right), 1 = y (down), in pixels.
    max_magnitude: magnitude shown fully saturated (default: the largest |flow|). Returns uint8
    (H, W, 3) or (N, H, W, 3) RGB.
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim not in (3, 4) or flow.shape[-3] != 2:
        raise ValueError(f"flow must be (2, H, W) or (N, 2, H, W), got shape {flow.shape}")
    if not np.isfinite(flow).all():
        raise ValueError("flow contains NaN or infinite values")
    dx, dy = flow[..., 0, :, :], flow[..., 1, :, :]
    mag = np.hypot(dx, dy)
    if max_magnitude is None:
        max_magnitude = float(mag.max()) if mag.size else 1.0
    if max_magnitude <= 0:
        max_magnitude = 1.0
    hue = np.mod(np.arctan2(dy, dx) / (2 * np.pi), 1.0)
    sat = np.clip(mag / max_magnitude, 0.0, 1.0)
    hsv = np.stack([hue, sat, np.ones_like(hue)], axis=-1)
    return np.round(hsv_to_rgb(hsv) * 255).astype(np.uint8)


def colour_wheel(size: int = 129, max_magnitude: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The legend: (size, size, 3) uint8 image of :func:`flow_to_rgb` over displacements from
    -max_magnitude to +max_magnitude on both axes (row 0 = up, column 0 = left), and a (size,
    size) bool mask of the pixels inside the unit circle (outside: white)."""
    axis = np.linspace(-max_magnitude, max_magnitude, size)
    dy, dx = np.meshgrid(axis, axis, indexing="ij")
    rgb = flow_to_rgb(np.stack([dx, dy]), max_magnitude=max_magnitude)
    inside = np.hypot(dx, dy) <= max_magnitude
    rgb[~inside] = 255
    return rgb, inside


def load_flow_example(path: str | Path) -> dict[str, np.ndarray | str | int]:
    """Read ``flow_example.npz``: frames uint8 (n, H, W, 3), flows float32 (n - 1, 2, h, w)
    (finest scale of the flow generator, usually half resolution), video name and centre frame."""
    path = Path(path)
    if not path.exists():
        raise FlowExampleError(f"{path}: missing; the run's flow stage has not finished")
    try:
        with np.load(path) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise FlowExampleError(f"{path}: not a readable npz file ({exc})") from exc
    for key in ("frames", "flows"):
        if key not in data:
            raise FlowExampleError(f"{path}: lacks {key!r} (has {sorted(data)})")
    frames, flows = data["frames"], data["flows"]
    if frames.ndim != 4 or frames.shape[-1] != 3 or flows.ndim != 4 or flows.shape[1] != 2:
        raise FlowExampleError(f"{path}: expected frames (n, H, W, 3) and flows (n-1, 2, h, w), got "
                               f"{frames.shape} and {flows.shape}")
    if len(flows) != len(frames) - 1:
        raise FlowExampleError(f"{path}: {len(frames)} frames but {len(flows)} flows (expected n - 1)")
    return {"frames": frames.astype(np.uint8), "flows": flows.astype(np.float32),
            "video": str(data.get("video", "")), "center": int(data.get("center", -1))}
