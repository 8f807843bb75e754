"""Loss functions and regularisers (paper Methods, "Loss functions" and "Regularization").

* MotionNet loss for the flow generators (Zhu et al. 2017): per output scale, a generalised
  Charbonnier photometric error between frame t and frame t+1 warped back by the flow, 1 - SSIM,
  and a Charbonnier smoothness penalty on the flow gradients; plus an L1 sparsity term for
  TinyMotionNet3D.
* Weighted binary focal loss with label smoothing for feature extractors and sequence models.
* L2-SP (Li et al. 2018) towards pretrained weights, and plain L2 for the sequence model.

Every constant is an argument: the values of ``deg.presets.HPARAMS`` (or a run's replacement of
them) are passed by the caller -- :meth:`MotionNetLossConfig.from_hparams` for the flow loss,
``ctx.hparams[...]`` in :mod:`deg.train` for the others -- and nothing here reads the table, so an
override reaches every term it names. Losses are computed in float32 even under bfloat16
autocast: the Charbonnier epsilon (1e-7) and the warping grid need the precision.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


class LossInputError(ValueError):
    """Tensors given to a loss have inconsistent shapes or values."""


# --------------------------------------------------------------------------------------
# MotionNet loss
# --------------------------------------------------------------------------------------
def charbonnier(x: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    """Generalised Charbonnier penalty rho(x) = (x^2 + eps^2)^alpha, elementwise, float32."""
    x = x.float()
    return (x * x + eps * eps) ** alpha


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 3, data_range: float = 1.0,
         reduction: str = "mean") -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of two image batches (N, C, H, W).

    Local statistics over a ``window`` x ``window`` mean filter (borders average only the pixels
    inside the image, so any H, W >= 1 works, down to the 1/8 scale of tiny frames);
    C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = ``data_range``. ``reduction="none"`` returns the
    per-pixel map (N, C, H, W); "mean" its mean.
    """
    if a.shape != b.shape or a.dim() != 4:
        raise LossInputError(f"ssim needs two (N, C, H, W) tensors of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    a, b = a.float(), b.float()
    pool = lambda x: F.avg_pool2d(x, window, 1, window // 2, count_include_pad=False)  # noqa: E731
    mu_a, mu_b = pool(a), pool(b)
    var_a = pool(a * a) - mu_a * mu_a
    var_b = pool(b * b) - mu_b * mu_b
    cov = pool(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    if reduction == "none":
        return s
    if reduction == "mean":
        return s.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def smoothness(flow: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    """Charbonnier smoothness of flows (N, 2P, H, W) (P frame pairs), a scalar.

    Per pixel and pair: rho(du/dx) + rho(du/dy) + rho(dv/dx) + rho(dv/dy) with forward
    differences; each term averaged over the pixels where it is defined, then summed over the
    four terms and averaged over pairs. Equivalently 2 x (mean rho(d/dx) + mean rho(d/dy)) over
    all channels.
    """
    if flow.dim() != 4 or flow.shape[1] % 2:
        raise LossInputError(f"flow must be (N, 2P, H, W), got {tuple(flow.shape)}")
    flow = flow.float()
    dx = flow[..., :, 1:] - flow[..., :, :-1]
    dy = flow[..., 1:, :] - flow[..., :-1, :]
    zero = flow.new_zeros(())
    tx = charbonnier(dx, alpha, eps).mean() if dx.numel() else zero
    ty = charbonnier(dy, alpha, eps).mean() if dy.numel() else zero
    return 2 * (tx + ty)


def _frames_at(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """clip (N, 3, T, H, W) -> (N, T, 3, h, w) resized by area averaging (exact for /2, /4, /8)."""
    n, c, t, h, w = clip.shape
    frames = clip.transpose(1, 2).reshape(n * t, c, h, w).float()
    if (h, w) != tuple(size):
        frames = F.interpolate(frames, size=size, mode="area")
    return frames.reshape(n, t, c, *size)


@dataclass(frozen=True)
class MotionNetLossConfig:
    """The MotionNet loss's constants (paper Methods, "MotionNet loss"; HPARAMS ``flow_*``)."""

    pixel_weight: float               # lambda_0
    pixel_alpha: float                # Charbonnier exponent of the photometric term
    ssim_weight: float                # lambda_1
    smooth_weights: tuple[float, ...]  # lambda_2 per scale, largest first
    smooth_alpha: float               # Charbonnier exponent of the smoothness term
    eps: float                        # Charbonnier epsilon (both terms)
    sparsity_weight_3d: float         # lambda_3, TinyMotionNet3D only
    smooth_factor_3d: float           # lambda_2 x this for TinyMotionNet3D

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> "MotionNetLossConfig":
        """From a run's complete HPARAMS (``ctx.hparams``); a missing entry is a KeyError."""
        return cls(pixel_weight=float(hparams["flow_pixel_weight"]), pixel_alpha=float(hparams["flow_pixel_alpha"]),
                   ssim_weight=float(hparams["flow_ssim_weight"]),
                   smooth_weights=tuple(float(w) for w in hparams["flow_smooth_weights"]),
                   smooth_alpha=float(hparams["flow_smooth_alpha"]), eps=float(hparams["flow_eps"]),
                   sparsity_weight_3d=float(hparams["flow3d_sparsity_weight"]),
                   smooth_factor_3d=float(hparams["flow3d_smooth_factor"]))


def motionnet_loss(clip: torch.Tensor, flows: Sequence[torch.Tensor], config: MotionNetLossConfig,
                   is_3d: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """Unsupervised flow loss summed over scales (paper "MotionNet loss").

    clip (N, 3, T, H, W); flows finest first, each (N, 2(T-1), h_s, w_s) in pixels of its scale,
    channel 2i / 2i+1 = x / y displacement of pair (i, i+1). At each scale the clip is resized
    to (h_s, w_s), frame i is reconstructed from frame i+1 (:func:`deg.models.flow.warp`) and

        L_s = l0 * mean rho_a0(I_i - I^_i) + l1 * mean(1 - SSIM(I_i, I^_i))
              + l2_s * smooth_a2(V) [+ l3 * mean|V|]              (l3 and l2_s x 0.25: 3D only)

    with the constants of ``config`` (paper: l0 = l1 = 1, a0 = 0.4, a2 = 0.3, l2_s = 0.01, 0.02,
    0.04 from the largest to the smallest scale, l3 = 0.05). Returns (sum over scales, parts)
    where parts holds each weighted term summed over scales ("pixel", "ssim", "smooth",
    "sparsity") and "total"; parts sum to total.
    """
    from deg.models.flow import warp  # local import: models depend on losses, not the reverse

    if clip.dim() != 5 or clip.shape[1] != 3:
        raise LossInputError(f"clip must be (N, 3, T, H, W), got {tuple(clip.shape)}")
    n, _, t, _, _ = clip.shape
    smooth_w = config.smooth_weights
    if len(flows) > len(smooth_w):
        raise LossInputError(f"got {len(flows)} flow scales, the loss has smoothness weights for {len(smooth_w)}")
    factor = config.smooth_factor_3d if is_3d else 1.0
    totals = dict.fromkeys(("pixel", "ssim", "smooth", "sparsity"), clip.new_zeros((), dtype=torch.float32))
    for flow, l2 in zip(flows, smooth_w):
        if flow.dim() != 4 or flow.shape[0] != n or flow.shape[1] != 2 * (t - 1):
            raise LossInputError(f"flow {tuple(flow.shape)} does not match clip {tuple(clip.shape)}: "
                                 f"need (N, 2(T-1) = {2 * (t - 1)}, h, w)")
        h, w = flow.shape[-2:]
        frames = _frames_at(clip, (h, w))                           # (N, T, 3, h, w)
        current = frames[:, :-1].reshape(n * (t - 1), 3, h, w)
        following = frames[:, 1:].reshape(n * (t - 1), 3, h, w)
        v = flow.float().reshape(n * (t - 1), 2, h, w)
        recon = warp(following, v)
        totals["pixel"] = totals["pixel"] + config.pixel_weight * charbonnier(
            current - recon, config.pixel_alpha, config.eps).mean()
        totals["ssim"] = totals["ssim"] + config.ssim_weight * (1 - ssim(current, recon, reduction="none")).mean()
        totals["smooth"] = totals["smooth"] + l2 * factor * smoothness(v, config.smooth_alpha, config.eps)
        if is_3d:
            totals["sparsity"] = totals["sparsity"] + config.sparsity_weight_3d * v.abs().mean()
    total = sum(totals.values())
    parts = {k: float(v.detach()) for k, v in totals.items()}
    parts["total"] = float(total.detach())
    return total, parts


# --------------------------------------------------------------------------------------
# Classification loss
# --------------------------------------------------------------------------------------
def _counts(x: Sequence[float] | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float64).flatten()
    if (t < 0).any() or not torch.isfinite(t).all():
        raise LossInputError(f"example counts must be finite and >= 0, got {t.tolist()}")
    return t


def pos_weight_from_counts(positives: Sequence[float] | torch.Tensor, negatives: Sequence[float] | torch.Tensor,
                           beta: float) -> torch.Tensor:
    """w_k = (negatives_k / positives_k)^beta, float32 (K,). Zero counts are taken as one example."""
    pos, neg = _counts(positives), _counts(negatives)
    if pos.shape != neg.shape:
        raise LossInputError(f"positives {tuple(pos.shape)} and negatives {tuple(neg.shape)} differ in length")
    return (neg.clamp_min(1) / pos.clamp_min(1)).pow(beta).float()


def bias_from_counts(positives: Sequence[float] | torch.Tensor, negatives: Sequence[float] | torch.Tensor,
                     eps: float = 1.0) -> torch.Tensor:
    """Output-layer bias b_k = log(positives_k / negatives_k), float32 (K,) (paper "Bias initialization").

    Counts below ``eps`` (default one example) are raised to it so an absent behaviour gets a
    large negative but finite, still trainable bias.
    """
    pos, neg = _counts(positives), _counts(negatives)
    if pos.shape != neg.shape:
        raise LossInputError(f"positives {tuple(pos.shape)} and negatives {tuple(neg.shape)} differ in length")
    return torch.log(pos.clamp_min(eps) / neg.clamp_min(eps)).float()


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None, *,
               gamma: float, smoothing: float) -> torch.Tensor:
    """Weighted binary focal loss with label smoothing, mean over labelled elements.

    logits (N, K) or (N, K, T); targets of the same shape with 1 / 0, and -1 for unlabelled
    elements, which are ignored; pos_weight (K,) or None (all ones). With y' = y (1 - 2 s) + s
    (s = ``smoothing``: targets 0.05 / 0.95) and p = sigmoid(logit):

        l = -[ w_k (1 - p)^gamma y' log p + p^gamma (1 - y') log(1 - p) ]

    gamma = 0, s = 0 gives ``BCEWithLogitsLoss(pos_weight=w)``. Returns a float32 scalar (zero,
    still attached to the graph, when nothing is labelled).
    """
    if logits.shape != targets.shape or logits.dim() not in (2, 3):
        raise LossInputError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must share "
                             "shape (N, K) or (N, K, T)")
    x = logits.float()
    y = targets.to(x.dtype)
    labelled = y >= 0
    if ((y != 0) & (y != 1) & (y != -1)).any():
        raise LossInputError("targets must be 0, 1 or -1 (unlabelled)")
    y = torch.where(labelled, y, torch.zeros_like(y)) * (1 - 2 * smoothing) + smoothing
    log_p, log_q = F.logsigmoid(x), F.logsigmoid(-x)  # log p, log(1 - p), stable for any logit
    if pos_weight is None:
        w = torch.ones((), dtype=x.dtype, device=x.device)
    else:
        if pos_weight.numel() != x.shape[1]:
            raise LossInputError(f"pos_weight has {pos_weight.numel()} entries, logits have K={x.shape[1]}")
        w = pos_weight.to(x).reshape(1, -1, *([1] * (x.dim() - 2)))
    pos_term = w * y * log_p
    neg_term = (1 - y) * log_q
    if gamma:
        pos_term = pos_term * torch.exp(gamma * log_q)  # (1 - p)^gamma
        neg_term = neg_term * torch.exp(gamma * log_p)  # p^gamma
    loss = -(pos_term + neg_term)
    n = labelled.sum()
    return (loss * labelled).sum() / n.clamp_min(1)


# --------------------------------------------------------------------------------------
# Regularisation
# --------------------------------------------------------------------------------------
def decayed_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Trainable parameters subject to weight penalties: all but biases and normalisation parameters."""
    skip = {f"{mn}.{pn}" if mn else pn
            for mn, m in model.named_modules() if isinstance(m, _NORM_TYPES)
            for pn, _ in m.named_parameters(recurse=False)}
    return {n: p for n, p in model.named_parameters()
            if p.requires_grad and n not in skip and not n.rsplit(".", 1)[-1].startswith("bias")}


class L2SP(nn.Module):
    """L2-SP penalty (Li et al. 2018): alpha/2 ||w - w0||^2 + beta/2 ||w'||^2.

    w are the model's decayed parameters (:func:`decayed_parameters`) that ``reference`` holds with
    the same shape and that are not in ``new_names``; w0 their reference values (the pretrained
    weights, kept as buffers so ``.to(device)`` moves them); w' every other decayed parameter.
    ``reference=None`` makes everything new: plain L2 with ``beta``. Calling the module returns
    the float32 scalar penalty for the model's current weights.
    """

    def __init__(self, model: nn.Module, alpha: float, beta: float,
                 reference: Mapping[str, torch.Tensor] | None = None, new_names: Iterable[str] = ()):
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)
        self._model = [model]  # a list, so the model is not registered as a submodule of the penalty
        reference = reference or {}
        new_names = set(new_names)
        self.pretrained_names: list[str] = []
        self.new_names: list[str] = []
        for name, p in decayed_parameters(model).items():
            ref = reference.get(name)
            if name in new_names or ref is None or tuple(ref.shape) != tuple(p.shape):
                self.new_names.append(name)
            else:
                self.pretrained_names.append(name)
                self.register_buffer(self._key(name), ref.detach().clone().to(p.device, torch.float32))

    @staticmethod
    def _key(name: str) -> str:
        return "ref__" + name.replace(".", "__")

    def forward(self) -> torch.Tensor:
        params = dict(self._model[0].named_parameters())
        zero = next(iter(params.values())).new_zeros((), dtype=torch.float32) if params else torch.zeros(())
        # .to() is a no-op unless the model moved to another device after this penalty was built
        sp = sum(((params[n].float() - getattr(self, self._key(n)).to(params[n].device)) ** 2).sum()
                 for n in self.pretrained_names)
        l2 = sum((params[n].float() ** 2).sum() for n in self.new_names)
        return self.alpha / 2 * (sp + zero) + self.beta / 2 * (l2 + zero)


def l2_penalty(model: nn.Module, alpha: float) -> torch.Tensor:
    """Plain L2, alpha/2 ||w||^2 over decayed parameters (sequence models: no pretraining)."""
    params = list(decayed_parameters(model).values())
    total = sum((p.float() ** 2).sum() for p in params) if params else torch.zeros(())
    return alpha / 2 * total
