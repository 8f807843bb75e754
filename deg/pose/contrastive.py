"""ContrastivePose (Zhou et al.; ``../shared/papers/contrastivepose.txt``) and its random forests.

Sliding window (Methods): "We take the frame t - 29 to frame t and concatenate into a 30 x 28
matrix as X_t" (2 animals x 7 points x 2 coordinates); here every animal's points and centroid
in arena units. Contrastive learning: two random augmentations of each window in a batch --
"random flipping along the x or y axis, rotation by random angles, and random translation along
both axes", the same for every frame of a window -- pass through the encoder and a projection
head; the NT-Xent loss (SimCLR, Chen et al. 2020) pulls the two views of a window together and
pushes the other 2N - 2 apart. No labels are used. The paper then fine-tunes with a few labels;
this package does not (the representation is the self-supervised one, a stated deviation).

Downstream, as the paper's tables, a random forest (scikit-learn) per feature set:
``rf_coords`` (positions and frame-wise velocities), ``rf_features`` (the skeleton's
hand-engineered features of :mod:`deg.pose.features` and velocities) and ``contrastive_pose``
(the learned representation of the window ending at t).

Shapes: windows (N, W, C) with C = animals x (points + 1) x 2; representation (T, D).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deg.pose.features import gather_windows, window_offsets


class PoseEncoder(nn.Module):
    """Window (N, W, C) -> representation (N, D): MLP on the flattened window; plus a projection head."""

    def __init__(self, window: int, channels: int, hidden: int, embedding: int, projection: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(window * channels, hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, embedding))
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(embedding, hidden), nn.ReLU(), nn.Linear(hidden, projection))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent loss of two views (N, P) of N samples: mean over the 2N anchors.

    With z = normalise([z1; z2]) and s_ij = z_i . z_j / tau, anchor i's loss is
    -log(exp(s_i,pos) / sum_{j != i} exp(s_ij)), pos = the other view of the same sample.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def augment(windows: torch.Tensor, hp: dict[str, Any], gen: torch.Generator) -> torch.Tensor:
    """Randomly flipped, rotated and translated copies of windows (N, W, C) in arena units.

    Points are taken relative to the arena centre (0.5, 0.5); one transform per window, the same
    for all its frames and points.
    """
    N, W, C = windows.shape
    xy = windows.reshape(N, W, C // 2, 2) - 0.5
    flip = torch.where(torch.rand(N, 2, generator=gen) < hp["cp_flip_p"], -1.0, 1.0)
    xy = xy * flip[:, None, None, :]
    if hp["cp_rotation"]:
        theta = torch.rand(N, generator=gen) * 2 * math.pi
        c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
        xy = torch.stack([c * xy[..., 0] - s * xy[..., 1], s * xy[..., 0] + c * xy[..., 1]], dim=-1)
    shift = (torch.rand(N, 2, generator=gen) * 2 - 1) * hp["cp_translation"]
    return (xy + shift[:, None, None, :]).reshape(N, W, C)


def _pool(points: dict[str, np.ndarray], videos: list[str]):
    flat = {v: points[v].reshape(len(points[v]), -1) for v in videos}
    z = np.concatenate([flat[v] for v in videos])
    length = np.array([len(flat[v]) for v in videos])
    first = np.concatenate([[0], np.cumsum(length)[:-1]])
    vid = np.repeat(np.arange(len(videos)), length)
    frame = np.concatenate([np.arange(n) for n in length])
    return z, length, first, vid, frame


def train_encoder(points: dict[str, np.ndarray], videos: list[str], hp: dict[str, Any], seed: int,
                  progress: bool = False) -> tuple[PoseEncoder, list[float]]:
    """Self-supervised NT-Xent training on windows of ``videos``' points (T, A, P + 1, 2).

    Returns the encoder (eval mode) and the loss of every step.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed)
    W = int(hp["cp_window"])
    offsets = window_offsets(W - 1, 0)
    z, length, first, vid, frame = _pool(points, videos)
    C = z.shape[1]
    model = PoseEncoder(W, C, int(hp["cp_hidden"]), int(hp["cp_embedding"]), int(hp["cp_projection"]))
    opt = torch.optim.Adam(model.parameters(), lr=float(hp["cp_lr"]))
    batch = int(min(hp["cp_batch"], len(vid)))
    losses = []
    model.train()
    for _ in tqdm(range(int(hp["cp_steps"])), desc="contrastive_pose", disable=not progress, leave=False):
        rows = rng.integers(0, len(vid), size=batch)
        v, t = vid[rows], frame[rows]
        idx = first[v][:, None] + np.clip(t[:, None] + offsets[None, :], 0, length[v][:, None] - 1)
        x = torch.from_numpy(z[idx])                                        # (B, W, C)
        loss = nt_xent(model.project(augment(x, hp, gen)), model.project(augment(x, hp, gen)),
                       float(hp["cp_temperature"]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


@torch.no_grad()
def represent(model: PoseEncoder, points: np.ndarray, window: int, batch: int = 4096) -> np.ndarray:
    """Representation (T, D) of the window ending at each frame of points (T, A, P + 1, 2)."""
    flat = points.reshape(len(points), -1).astype(np.float32) - 0.5
    offsets = window_offsets(window - 1, 0)
    frames = np.arange(len(flat))
    out = [model(torch.from_numpy(gather_windows(flat, frames[i:i + batch], offsets))).numpy()
           for i in range(0, len(frames), batch)]
    return np.concatenate(out).astype(np.float32)


def fit_forest(x: np.ndarray, y: np.ndarray, hp: dict[str, Any], seed: int, max_frames: int | None):
    """A multi-output random forest on frames x (N, F), labels y (N, K) 0/1/-1 (frames with -1 dropped)."""
    from sklearn.ensemble import RandomForestClassifier

    keep = np.flatnonzero((y >= 0).all(axis=1))
    if max_frames and len(keep) > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=max_frames, replace=False))
    forest = RandomForestClassifier(n_estimators=int(hp["rf_n_estimators"]),
                                    min_samples_leaf=int(hp["rf_min_samples_leaf"]), random_state=seed, n_jobs=1)
    forest.fit(x[keep], y[keep])
    return forest


def forest_proba(forest, x: np.ndarray, n_classes: int) -> np.ndarray:
    """P(behaviour k) (T, K) from a multi-output forest (a behaviour absent in training: 0)."""
    proba = forest.predict_proba(x)
    proba = proba if isinstance(proba, list) else [proba]
    out = np.zeros((len(x), n_classes), np.float32)
    for k, (p, classes) in enumerate(zip(proba, forest.classes_)):
        if 1 in classes:
            out[:, k] = p[:, list(classes).index(1)]
    return out
