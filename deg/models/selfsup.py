"""Selfee (Jia et al., eLife 2022): SimSiam + CLD on "live frames", meta-representations, k-NN.

Facts (the paper and its public code, github.com/EBGU/Selfee; hyperparameters in
:data:`deg.presets.SELFSUP_HPARAMS`):

* **Live frames**: the grey frames t - d, t and t + d become the three colour channels of one
  image (past, current, future), so a single 2D CNN sees motion. d = 2 frames at 30 fps; a
  neighbour beyond the video's ends is replaced by the current frame.
* **Augmentations**, drawn independently for the two views: a random crop (width and height
  each 70-100% of the frame) resized back, a rotation of up to 37 degrees (zero padding),
  horizontal and vertical flips, the Turbo colour map (p = 0.5) and brightness / contrast /
  saturation / hue jitter of 0.1 in random order.
* **Network**: ResNet backbone -> projector (Linear-BN-ReLU, Linear-BN-ReLU, Linear-BN) ->
  ``z``; predictor (Linear-BN-ReLU-Linear, bottleneck 1/4) -> ``p``; a CLD branch (a linear map
  with normalised weights and inputs, then L2 normalisation) -> ``g``.
* **Loss**: SimSiam ``2 - cos(p1, sg(z2)) - cos(p2, sg(z1))`` (sg = stop-gradient) plus
  ``2.0 x`` CLD: k-means (10 clusters, 10 iterations) on each view's ``g``; each view's ``g`` is
  classified against the *other* view's centroids (temperature 0.07, cross-entropy with the
  other view's cluster labels).
* **Meta-representation** of a frame: the projector output ``z`` (Selfee's ``infer``).
* **Downstream**: weighted k-NN (k = 200, cosine similarity, weights exp(s / 0.07), votes
  balanced by class frequency) of human-labelled behaviours, then a temporal mode filter of
  21 frames (0.7 s at 30 fps); and a t-SNE map of the meta-representations.

Differences kept on purpose (README, deviations): the backbone is the DEG preset's spatial
stream ResNet (ResNet18 for DEG_f; Selfee used ResNet50) at the profile's image size; the
behaviours of a DeepEthogram dataset overlap (multi-label), so k-NN votes per behaviour
(present / absent, each side balanced by its frequency) instead of over exclusive classes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deg.presets import SELFSUP_HPARAMS as HP


# --------------------------------------------------------------------------------------
# Live frames
# --------------------------------------------------------------------------------------
def live_interval(fps: float, interval_s: float = HP["live_interval_s"]) -> int:
    """Frames between past, current and future in a live frame (>= 1)."""
    return max(1, int(round(float(interval_s) * float(fps))))


def live_frames(frames: np.ndarray, centers: Sequence[int], interval: int,
                gray_weights: Sequence[float] = HP["gray_weights"]) -> np.ndarray:
    """uint8 (B, H, W, 3) live frames: channels = grey(t - d), grey(t), grey(t + d).

    frames: uint8 (T, H, W, 3) RGB of one video; centers: (B,) frame indices t. A neighbour
    outside [0, T) is replaced by the current frame (as Selfee does for a missing file).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    t = np.asarray(centers, dtype=np.int64)
    n = len(frames)
    past, future = t - interval, t + interval
    past = np.where(past < 0, t, past)
    future = np.where(future >= n, t, future)
    w = np.asarray(gray_weights, dtype=np.float32)
    idx = np.stack([past, t, future], axis=1)                        # (B, 3)
    grey = frames[idx.reshape(-1)].astype(np.float32) @ w             # (3B, H, W)
    grey = grey.reshape(len(t), 3, *frames.shape[1:3])
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


# --------------------------------------------------------------------------------------
# Augmentations (on the device, parameters from an explicit generator)
# --------------------------------------------------------------------------------------
def _turbo_lut() -> torch.Tensor:
    from matplotlib import colormaps

    return torch.tensor(colormaps["turbo"](np.linspace(0, 1, 256))[:, :3], dtype=torch.float32)  # (256, 3)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma (ITU-R 601, as torchvision's rgb_to_grayscale)."""
    w = torch.tensor(HP["gray_weights"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


class SelfeeAugment:
    """Two independent random views of images (N, 3, H, W) in [0, 1], as Selfee's RandomTransformed."""

    def __init__(self, flips: dict[str, bool] | None = None, min_scale: float = HP["crop_min_scale"],
                 degrees: float = HP["rotation_degrees"], flip_p: float = HP["flip_p"],
                 turbo_p: float = HP["turbo_p"], jitter: float = HP["color_jitter"]):
        flips = flips if flips is not None else {"horizontal": True, "vertical": True}
        self.hflip = bool(flips.get("horizontal", False))
        self.vflip = bool(flips.get("vertical", False))
        self.min_scale, self.degrees, self.flip_p = float(min_scale), float(degrees), float(flip_p)
        self.turbo_p, self.jitter = float(turbo_p), float(jitter)
        self.lut = _turbo_lut()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from kornia.enhance import adjust_hue

        n, c, h, w = x.shape
        u = torch.rand(n, 12, generator=generator)
        # crop (scale sx, sy; centre cx, cy in normalised units) + rotation, one affine resample
        sx = self.min_scale + (1 - self.min_scale) * u[:, 0]
        sy = self.min_scale + (1 - self.min_scale) * u[:, 1]
        cx, cy = (1 - sx) * (2 * u[:, 2] - 1), (1 - sy) * (2 * u[:, 3] - 1)
        angle = torch.deg2rad(self.degrees * (2 * u[:, 4] - 1))
        cos, sin = torch.cos(angle), torch.sin(angle)
        ax, ay = w / 2.0, h / 2.0           # rotate in pixel units (normalised axes differ if H != W)
        theta = torch.stack([torch.stack([sx * cos, -sx * sin * ay / ax, cx], 1),
                             torch.stack([sy * sin * ax / ay, sy * cos, cy], 1)], 1)   # (N, 2, 3)
        flip = torch.ones(n, 2)
        flip[:, 0] = torch.where((u[:, 5] < self.flip_p) & self.hflip, -1.0, 1.0)
        flip[:, 1] = torch.where((u[:, 6] < self.flip_p) & self.vflip, -1.0, 1.0)
        theta[:, :, :2] = theta[:, :, :2] * flip[:, None, :]
        grid = F.affine_grid(theta.to(x), (n, c, h, w), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # Turbo colour map, channel c through the map's c-th component
        turbo = (u[:, 7] < self.turbo_p).to(x.device)
        if turbo.any():
            lut = self.lut.to(x)
            idx = (x.clamp(0, 1) * 255).round().long()
            mapped = torch.stack([lut[idx[:, k], k] for k in range(3)], 1)
            x = torch.where(turbo.view(n, 1, 1, 1), mapped, x)
        j = self.jitter
        factors = (1 + j * (2 * u[:, 8:11] - 1)).to(x)          # brightness, contrast, saturation
        hue = (j * (2 * u[:, 11] - 1) * 2 * np.pi).to(x)        # torchvision hue 0.1 = 0.1 turn
        f = factors.view(n, 3, 1, 1, 1)
        # torchvision's definitions (Selfee used them): brightness scales; contrast blends with
        # the mean grey level; saturation blends with the grey image
        ops = [lambda y: y * f[:, 0],
               lambda y: f[:, 1] * y + (1 - f[:, 1]) * _grey(y).mean(dim=(1, 2, 3), keepdim=True),
               lambda y: f[:, 2] * y + (1 - f[:, 2]) * _grey(y),
               lambda y: adjust_hue(y, hue)]
        for k in torch.randperm(4, generator=generator).tolist():   # random order (per batch)
            x = ops[k](x).clamp(0, 1)
        return x


# --------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------
class NormedLinear(nn.Module):
    """x / |x| @ W / |W| (columns normalised): cosine similarities to ``out`` directions."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, d_out).uniform_(-1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


class SimSiamCLD(nn.Module):
    """Backbone -> projector z (N, D) -> predictor p (N, D) and CLD branch g (N, D_cld), unit norm.

    ``backbone`` maps images (N, 3, H, W) to pooled features (N, width); D = width.
    """

    def __init__(self, backbone: nn.Module, width: int, projector_layers: int = HP["projector_layers"],
                 predictor_ratio: float = HP["predictor_ratio"], cld_dim_ratio: float = HP["cld_dim_ratio"]):
        super().__init__()
        self.backbone = backbone
        layers: list[nn.Module] = []
        for i in range(projector_layers):
            layers += [nn.Linear(width, width), nn.BatchNorm1d(width)]
            if i < projector_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        self.projector = nn.Sequential(*layers)
        bottleneck = max(1, int(round(width * predictor_ratio)))
        self.predictor = nn.Sequential(nn.Linear(width, bottleneck), nn.BatchNorm1d(bottleneck),
                                       nn.ReLU(inplace=True), nn.Linear(bottleneck, width))
        self.cld = NormedLinear(width, max(1, int(round(width * cld_dim_ratio))))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Meta-representations z (N, D) of images (N, 3, H, W)."""
        return self.projector(self.backbone(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.embed(x)
        return {"z": z, "p": self.predictor(z), "g": F.normalize(self.cld(z), dim=1)}


def build_selfee(arch: str) -> SimSiamCLD:
    """SimSiam + CLD on the spatial-stream backbone of a DEG feature extractor (2D only)."""
    from deg.models.feature import SPECS, Stream

    if arch not in SPECS:
        raise KeyError(f"unknown backbone {arch!r}; known: {', '.join(SPECS)}")
    if SPECS[arch].dims != 2:
        raise ValueError(f"Selfee pretraining needs a 2D backbone; {arch!r} is 3D (DEG_s): live frames are images")
    stream = Stream(SPECS[arch], in_channels=3, n_classes=1, dropout=0.0)
    width = stream.backbone(torch.zeros(2, 3, 32, 32)).shape[1]
    return SimSiamCLD(stream.backbone, width)


# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------
def simsiam_loss(p1: torch.Tensor, z1: torch.Tensor, p2: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """2 - cos(p1, sg(z2)) - cos(p2, sg(z1)), means over the batch; 0 (aligned) ... 4."""
    return (2 - F.cosine_similarity(p1, z2.detach(), dim=-1).mean()
            - F.cosine_similarity(p2, z1.detach(), dim=-1).mean())


def kmeans(x: torch.Tensor, k: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on (N, D), initialised with the first k rows (Selfee): (labels (N,), centroids (k, D)).

    An empty cluster keeps a count of 1 (zero centroid), as in Selfee. The centroids are means of
    ``x`` and carry its gradient, as in Selfee's implementation.
    """
    k = min(int(k), x.shape[0])
    c = x[:k].clone()
    labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for _ in range(int(iters)):
        labels = torch.cdist(x.detach(), c.detach()).argmin(dim=1)
        counts = torch.bincount(labels, minlength=k).clamp_min(1).to(x.dtype)
        c = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device).index_add(0, labels, x) / counts[:, None]
    return labels, c


def cld_loss(g1: torch.Tensor, g2: torch.Tensor, k: int = HP["cld_clusters"], iters: int = HP["cld_iters"],
             temperature: float = HP["cld_temperature"]) -> torch.Tensor:
    """Cross-level discrimination: each view's g (N, D) classified among the other view's k-means groups."""
    labels1, cent1 = kmeans(g1, k, iters)
    labels2, cent2 = kmeans(g2, k, iters)
    return 0.5 * (F.cross_entropy(g1 @ cent2.t() / temperature, labels2)
                  + F.cross_entropy(g2 @ cent1.t() / temperature, labels1))


def selfee_loss(out1: dict[str, torch.Tensor], out2: dict[str, torch.Tensor],
                cld_weight: float = HP["cld_weight"]) -> tuple[torch.Tensor, dict[str, float]]:
    """(SimSiam + cld_weight x CLD, parts) of the two views' network outputs."""
    ss = simsiam_loss(out1["p"], out1["z"], out2["p"], out2["z"])
    cld = cld_loss(out1["g"], out2["g"]) if cld_weight else ss.new_zeros(())
    return ss + cld_weight * cld, {"simsiam": float(ss.detach()), "cld": float(cld.detach()),
                                   "collapse": collapse_level(out1["z"])}


@torch.no_grad()
def collapse_level(z: torch.Tensor) -> float:
    """1 - sqrt(D) x mean per-dimension std of the L2-normalised z: 0 = spread, 1 = collapsed."""
    zn = F.normalize(z.detach().float(), dim=1)
    return float(1 - np.sqrt(zn.shape[1]) * zn.std(dim=0).mean())


# --------------------------------------------------------------------------------------
# k-NN classification and temporal mode filter
# --------------------------------------------------------------------------------------
def knn_scores(reference: np.ndarray, ref_labels: np.ndarray, query: np.ndarray, k: int = HP["knn_k"],
               tau: float = HP["knn_tau"], balance: bool = HP["knn_balance"], chunk: int = 2048) -> np.ndarray:
    """Per-behaviour k-NN scores (Q, K) in [0, 1] of queries (Q, D) from labelled references (N, D).

    ref_labels: (N, K) 0/1 (rows with -1 must be dropped beforehand). Neighbours: the k most
    cosine-similar references, weight exp(similarity / tau). Behaviour k's score is its weighted
    "present" vote over the present + absent votes, each side multiplied by N / its count
    (Selfee's class balancing) when ``balance``.
    """
    ref_labels = np.asarray(ref_labels)
    if len(reference) != len(ref_labels) or len(reference) == 0:
        raise ValueError(f"need matching non-empty references: {len(reference)} vectors, {len(ref_labels)} labels")
    if (ref_labels < 0).any():
        raise ValueError("reference labels must be 0/1 (drop unlabelled rows first)")
    ref = F.normalize(torch.as_tensor(np.asarray(reference), dtype=torch.float32), dim=1)
    y = torch.as_tensor(ref_labels, dtype=torch.float32)
    n = len(ref)
    pos = y.sum(0)
    w_pos = n / pos.clamp_min(1) if balance else torch.ones_like(pos)
    w_neg = n / (n - pos).clamp_min(1) if balance else torch.ones_like(pos)
    k = min(int(k), n)
    out = []
    for start in range(0, len(query), chunk):
        q = F.normalize(torch.as_tensor(np.asarray(query[start:start + chunk]), dtype=torch.float32), dim=1)
        sim, idx = (q @ ref.t()).topk(k, dim=1)                 # (q, k)
        weight = torch.exp(sim / tau)
        weight = weight / weight.max(dim=1, keepdim=True).values  # scale-free: avoids overflow
        votes = y[idx]                                            # (q, k, K)
        present = (weight[..., None] * votes).sum(1) * w_pos
        absent = (weight[..., None] * (1 - votes)).sum(1) * w_neg
        out.append((present / (present + absent).clamp_min(1e-12)).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, y.shape[1]), np.float32)


def mode_filter(binary: np.ndarray, window: int) -> np.ndarray:
    """(T, K) 0/1 -> the mode of each centred window, per column (windows shrink at the ends; a
    tie, possible there only, gives 0 as scipy.stats.mode in Selfee's code)."""
    binary = np.asarray(binary, dtype=np.float64)
    half = max(int(window), 1) // 2
    csum = np.concatenate([np.zeros((1, binary.shape[1])), np.cumsum(binary, axis=0)])
    t = np.arange(len(binary))
    lo, hi = np.maximum(t - half, 0), np.minimum(t + half + 1, len(binary))
    mean = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
    return (mean > 0.5).astype(np.uint8)


def window_mean(x: np.ndarray, window: int) -> np.ndarray:
    """(T, K) sliding mean over a centred window (shrunk at the ends): Selfee's "Aver" filter."""
    x = np.asarray(x, dtype=np.float64)
    half = max(int(window), 1) // 2
    csum = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    t = np.arange(len(x))
    lo, hi = np.maximum(t - half, 0), np.minimum(t + half + 1, len(x))
    return ((csum[hi] - csum[lo]) / (hi - lo)[:, None]).astype(np.float32)


def embed_2d(vectors: np.ndarray, seed: int = 0, pca_dims: int = HP["embed_pca_dims"],
             perplexity: float = HP["embed_perplexity"]) -> np.ndarray:
    """(N, D) -> (N, 2): PCA to ``pca_dims`` then t-SNE (Selfee's visualisation), seeded."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(vectors, dtype=np.float64)
    if len(x) < 5:
        raise ValueError(f"a 2-D map needs at least 5 vectors, got {len(x)}")
    dims = min(pca_dims, x.shape[1], len(x) - 1)
    x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    perp = float(min(perplexity, max(2.0, (len(x) - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(x).astype(np.float32)
