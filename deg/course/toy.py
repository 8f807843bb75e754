"""Small, transparent models for the lessons: a linear classifier on coarse pixels.

The course's point in lessons 3 and 5 is how a behaviour classifier is trained and judged
(streams, fusion, class imbalance, splits, thresholds), which a linear model on a coarse grid of
pixels shows in seconds on a CPU. It is *not* DeepEthogram's feature extractor (a ResNet two-stream
model, :mod:`deg.models.feature`, trained by :mod:`deg.pipeline`, which lesson 7 runs); the
lessons say so where they use it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deg.data import video as video_io
from deg.losses import focal_loss


def frame_features(video_path, grid: int = 8) -> dict[str, np.ndarray]:
    """Per-frame features of one video: ``spatial`` (T, grid*grid) grey levels of the frame
    resized to grid x grid, ``motion`` (T, grid*grid) absolute difference to the previous frame
    at that size (zero for frame 0). Values in [0, 1]; float32."""
    frames = video_io.read_video(video_path, size=(grid * 4, grid * 4)).astype(np.float32) / 255.0
    grey = torch.from_numpy(frames.mean(axis=3))[:, None]                 # (T, 1, 4g, 4g)
    small = F.avg_pool2d(grey, 4)[:, 0].reshape(len(frames), -1).numpy()  # (T, g*g)
    motion = np.zeros_like(small)
    motion[1:] = np.abs(np.diff(small, axis=0))
    # Motion is a small difference of grey levels: scale it up to the spatial features' range.
    return {"spatial": small, "motion": motion * 10.0}


class LinearStreams(nn.Module):
    """One linear layer per stream; the fused logits are the streams' average (late fusion, as in
    DeepEthogram's two-stream model). ``forward`` maps {stream: (N, D_s)} to logits (N, K)."""

    def __init__(self, dims: dict[str, int], n_classes: int):
        super().__init__()
        self.streams = nn.ModuleDict({name: nn.Linear(d, n_classes) for name, d in dims.items()})

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.streams[name](feats[name]) for name in self.streams]).mean(0)


def fit_streams(train: dict[str, np.ndarray], labels: np.ndarray, streams: Sequence[str], steps: int,
                pos_weight: torch.Tensor | None = None, gamma: float = 1.0, smoothing: float = 0.0, lr: float = 0.05,
                seed: int = 0) -> tuple[LinearStreams, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Fit :class:`LinearStreams` on the named ``streams`` of ``train`` (each (T, D)) against
    ``labels`` (T, K) -1/0/1 with :func:`deg.losses.focal_loss` (full batch, Adam).

    Returns the model and the standardisation (mean, std) per stream, for :func:`predict_streams`."""
    torch.manual_seed(seed)
    model = LinearStreams({s: train[s].shape[1] for s in streams}, labels.shape[1])
    norm = {s: (train[s].mean(0), train[s].std(0) + 1e-6) for s in streams}
    x = {s: torch.from_numpy((train[s] - norm[s][0]) / norm[s][1]).float() for s in streams}
    y = torch.from_numpy(labels.astype(np.float32))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = focal_loss(model(x), y, pos_weight=pos_weight, gamma=gamma, smoothing=smoothing)
        loss.backward()
        opt.step()
    return model, norm


@torch.no_grad()
def predict_streams(model: LinearStreams, norm: dict, feats: dict[str, np.ndarray]) -> np.ndarray:
    """Probabilities (T, K) of ``model`` on ``feats`` (the streams it was fitted on)."""
    x = {s: torch.from_numpy((feats[s] - norm[s][0]) / norm[s][1]).float() for s in model.streams}
    return torch.sigmoid(model(x)).numpy()


def stack(per_video: dict[str, dict[str, np.ndarray]], videos: Sequence[str]) -> dict[str, np.ndarray]:
    """Concatenate the per-video feature dicts of ``videos`` along time."""
    keys = next(iter(per_video.values())).keys()
    return {k: np.concatenate([per_video[v][k] for v in videos]) for k in keys}
