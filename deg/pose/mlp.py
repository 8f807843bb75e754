"""The paper's keypoint MLP (Methods, "Keypoint-based classification", after Sturman et al. 2020).

Input: the keypoint features of frames T-15..T+15 flattened (44 x 31 = 1364 for the paper's
skeleton); a multilayer perceptron 1364 -> 256 -> 128 -> K with ReLU and dropout 0.35 "between
each layer". Trained with the DeepEthogram sequence models' tricks, through the package's own
pieces: the binary focal loss with up-weighted rare behaviours and label smoothing
(:func:`deg.losses.focal_loss`, :func:`deg.losses.pos_weight_from_counts`), output biases from
the class balance (:func:`deg.losses.bias_from_counts`), Adam with the learning rate reduced on a
validation-F1 plateau and the stopping rule (:func:`deg.train.loop.fit`: "100 epochs or when the
learning rate reduces below 5e-7"), plain L2 (:class:`deg.train.loop.WeightPenalty`), best
weights for inference, then F1-optimal thresholds and bout-length postprocessing (done by
:mod:`deg.pose.run` for every pose method alike).

Features are z-scored with the training frames' statistics (not stated in the paper; the
features mix arena units and radians).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deg.pose.features import Standardiser, gather_windows, window_offsets


class KeypointMLP(nn.Module):
    """(N, W * F) -> logits (N, K): Dropout-Linear-ReLU x len(hidden), then Dropout-Linear."""

    def __init__(self, n_in: int, n_classes: int, hidden=(256, 128), dropout: float = 0.35):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Dropout(dropout), nn.Linear(width, h), nn.ReLU()]
            width = h
        layers += [nn.Dropout(dropout), nn.Linear(width, n_classes)]
        self.net = nn.Sequential(*layers)

    @property
    def output(self) -> nn.Linear:
        return self.net[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FramePool:
    """Every frame of some videos, for sampling windows without a Python loop.

    z: the videos' standardised features concatenated (N, F); ``first`` / ``length`` (V,) per
    video; ``vid`` / ``frame`` (N,) the video and frame of each row.
    """

    def __init__(self, features: dict[str, np.ndarray], videos: list[str], norm: Standardiser):
        self.z = np.concatenate([norm(features[v]) for v in videos])
        self.length = np.array([len(features[v]) for v in videos])
        self.first = np.concatenate([[0], np.cumsum(self.length)[:-1]])
        self.vid = np.repeat(np.arange(len(videos)), self.length)
        self.frame = np.concatenate([np.arange(n) for n in self.length])

    def __len__(self) -> int:
        return len(self.vid)

    def windows(self, rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Flattened windows (n, W * F) around the frames of ``rows`` (n,); edges repeat."""
        v, t = self.vid[rows], self.frame[rows]
        idx = self.first[v][:, None] + np.clip(t[:, None] + offsets[None, :], 0, self.length[v][:, None] - 1)
        return self.z[idx].reshape(len(rows), -1)


@torch.no_grad()
def predict(model: KeypointMLP, x: np.ndarray, norm: Standardiser, half: int, batch: int = 4096) -> np.ndarray:
    """Sigmoid probabilities (T, K) for every frame of one video's features x (T, F)."""
    model.eval()
    offsets = window_offsets(half, half)
    frames = np.arange(len(x))
    z = norm(x)
    out = [torch.sigmoid(model(torch.from_numpy(gather_windows(z, frames[i:i + batch], offsets)
                                                .reshape(len(frames[i:i + batch]), -1)))).numpy()
           for i in range(0, len(frames), batch)]
    return np.concatenate(out).astype(np.float32)


def train(stage_dir: Path, features: dict[str, np.ndarray], labels: dict[str, np.ndarray],
          train_videos: list[str], val_videos: list[str], hp: dict[str, Any], key: str, seed: int,
          progress: bool = False) -> tuple[KeypointMLP, Standardiser, Any]:
    """Train the MLP in ``stage_dir`` (resumable); returns (best model, standardiser, FitResult).

    features: video -> (T, F) keypoint features; labels: video -> (T, K) -1/0/1. ``hp``: the
    pose hyperparameters (:func:`deg.pose.run.pose_hparams`) including the HPARAMS entries it
    reads (focal_gamma, pos_weight_beta, label_smoothing, lr_factor, lr_min).
    """
    from deg.losses import bias_from_counts, focal_loss, pos_weight_from_counts
    from deg.train.common import mean_f1, seed_everything
    from deg.train.loop import LoopConfig, WeightPenalty, fit, load_best_weights

    np_rng, _ = seed_everything(seed)
    half = int(hp["pose_window_half"])
    offsets = window_offsets(half, half)
    norm = Standardiser.fit(np.concatenate([features[v] for v in train_videos]))
    n_in = len(offsets) * next(iter(features.values())).shape[1]
    K = next(iter(labels.values())).shape[1]

    def build() -> KeypointMLP:
        return KeypointMLP(n_in, K, tuple(hp["mlp_hidden"]), float(hp["mlp_dropout"]))

    model = build()
    train_lab = np.concatenate([labels[v] for v in train_videos])
    pos, neg = (train_lab == 1).sum(0), (train_lab == 0).sum(0)
    with torch.no_grad():
        model.output.bias.copy_(bias_from_counts(pos, neg))
    pos_weight = pos_weight_from_counts(pos, neg, beta=hp["pos_weight_beta"])
    pool = FramePool(features, train_videos, norm)
    y_all = torch.from_numpy(train_lab)
    batch = int(hp["mlp_batch"])
    steps = hp.get("mlp_max_steps") or int(math.ceil(hp["mlp_epochs"] * len(pool) / batch))
    val_lab = np.concatenate([labels[v] for v in val_videos])

    def train_step(step: int) -> torch.Tensor:
        rows = np_rng.integers(0, len(pool), size=batch)
        x = torch.from_numpy(pool.windows(rows, offsets))
        return focal_loss(model(x), y_all[rows], pos_weight, gamma=hp["focal_gamma"], smoothing=hp["label_smoothing"])

    def validate() -> float:
        probs = np.concatenate([predict(model, features[v], norm, half) for v in val_videos])
        return mean_f1(probs, val_lab)

    cfg = LoopConfig(max_steps=int(steps), val_every=int(hp["mlp_val_every"]),
                     patience_steps=int(hp["mlp_patience_steps"]), lr=float(hp["mlp_lr"]),
                     lr_factor=float(hp["lr_factor"]), lr_min=float(hp["lr_min"]), mode="max",
                     checkpoint_min_interval_s=30.0)
    reg = WeightPenalty(model, alpha=0.0, beta=float(hp["mlp_l2_alpha"]))
    result = fit(stage_dir, model, train_step, validate, cfg, key=key, regulariser=reg,
                 generators={"sampler": np_rng}, desc="pose_mlp", progress=progress)
    best = load_best_weights(stage_dir, build)
    return best, norm, result
