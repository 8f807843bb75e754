"""Sequence model: Temporal Gaussian Mixture (TGM) network (Piergiovanni and Ryoo 2018) with the
paper's modifications (Methods, "Sequence models").

A TGM layer learns ``n_filters`` temporal kernels of length L, each a bump with a learned centre
in [0, L-1] (tanh) and a learned positive width, normalised to sum to 1. With soft attention
every (output, input) channel pair gets a softmax-weighted mixture of those filters, so each
kernel is non-negative and sums to 1: a learned temporal smoothing shared by all D feature
dimensions. The bump is a Cauchy (Lorentzian) in the published DeepEthogram code and a Gaussian
in the TGM paper; ``HPARAMS["tgm_kernel"]`` picks it.

The model stacks the TGM layers on the (dropped-out) input features, takes the max over the
C_out channels (no super-events), and uses "late fusion": one head (1x1 conv D -> 128, ReLU,
dropout, 1x1 conv 128 -> K) on the input features and another on the TGM features, their K-dim
logits averaged before the sigmoid. 128 hidden channels instead of the TGM paper's 512.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deg.losses import bias_from_counts
from deg.models.flow import InputShapeError
from deg.presets import HPARAMS

MIN_WIDTH = 0.25    # frames; keeps the Cauchy / Gaussian width strictly positive
INIT_WIDTH = 2.0    # frames; initial width of every filter


def _inverse_softplus(y: float) -> float:
    return math.log(math.expm1(y))


class TGMLayer(nn.Module):
    """One TGM layer: (N, C_in, T, D) -> (N, C_out, T, D), temporal "same" padding.

    Time-major: each feature dimension d is filtered along T, so the kernel is (L, 1) and D is
    the innermost, contiguous axis. The same filter laid out as (1, L) over (D, T) rows computes
    the same numbers, but oneDNN's CPU kernels are slow on it: a demo sequence step (batch 4,
    T = 90, D = 1024, one thread, 2-core AVX2 EPYC) took 0.50-0.52 s that way, most of it the
    convolutions' backward pass, and 0.27-0.32 s this way.

    Output channel o = mean over input channels i of (kernel[o, i] * x_i) along time, where
    kernel[o, i] (length L, odd) is non-negative and sums to 1, so the layer preserves the scale
    of its input (the TGM paper sums over inputs; the mean only rescales by 1/C_in). Without soft
    attention, every input channel is filtered by every filter and a 1x1 conv mixes the
    C_in x n_filters responses into C_out channels (the TGM paper's alternative).
    """

    def __init__(self, length: int = HPARAMS["tgm_filter_length"], n_filters: int = HPARAMS["tgm_n_filters"],
                 c_in: int = HPARAMS["tgm_c_in"], c_out: int = HPARAMS["tgm_c_out"],
                 kernel: str = HPARAMS["tgm_kernel"], soft_attention: bool = HPARAMS["tgm_soft_attention"]):
        super().__init__()
        if length < 1 or length % 2 == 0:
            raise ValueError(f"TGM filter length must be odd (centred kernel), got {length}")
        if kernel not in ("cauchy", "gaussian"):
            raise ValueError(f"TGM kernel must be 'cauchy' or 'gaussian', got {kernel!r}")
        self.length, self.n_filters, self.c_in, self.c_out = length, n_filters, c_in, c_out
        self.kernel, self.soft_attention = kernel, soft_attention
        # centres spread evenly over [0, L-1] at init: mu = (L-1) (tanh(c) + 1) / 2
        frac = (torch.arange(n_filters, dtype=torch.float32) + 0.5) / n_filters
        self.center = nn.Parameter(torch.atanh(2 * frac - 1))
        self.width = nn.Parameter(torch.full((n_filters,), _inverse_softplus(INIT_WIDTH - MIN_WIDTH)))
        if soft_attention:
            self.attention = nn.Parameter(0.5 * torch.randn(c_out, c_in, n_filters))
            self.mix = None
        else:
            self.attention = None
            self.mix = nn.Conv2d(c_in * n_filters, c_out, 1)

    def filters(self) -> torch.Tensor:
        """(n_filters, L) non-negative filters, each summing to 1."""
        mu = (self.length - 1) * (torch.tanh(self.center) + 1) / 2
        width = MIN_WIDTH + F.softplus(self.width)
        t = torch.arange(self.length, device=mu.device, dtype=mu.dtype)
        z = (t[None, :] - mu[:, None]) / width[:, None]
        bump = 1 / (1 + z * z) if self.kernel == "cauchy" else torch.exp(-0.5 * z * z)
        return bump / bump.sum(dim=1, keepdim=True)

    def kernels(self) -> torch.Tensor:
        """Soft attention: (C_out, C_in, L) mixtures, each non-negative and summing to 1."""
        if self.attention is None:
            raise RuntimeError("kernels() needs soft attention; this layer mixes filter responses with a 1x1 conv")
        return torch.einsum("oin,nl->oil", self.attention.softmax(dim=-1), self.filters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.c_in:
            raise InputShapeError(f"TGM layer expects (N, {self.c_in}, T, D), got {tuple(x.shape)}")
        pad = (self.length // 2, 0)
        if self.attention is not None:
            w = (self.kernels() / self.c_in).unsqueeze(3)                     # (C_out, C_in, L, 1)
            return F.conv2d(x, w.to(x.dtype), padding=pad)
        f = self.filters().repeat(self.c_in, 1).unsqueeze(1).unsqueeze(3)    # (C_in * n, 1, L, 1)
        responses = F.conv2d(x, f.to(x.dtype), padding=pad, groups=self.c_in)
        return self.mix(responses)


def _head(n_features: int, hidden: int, n_classes: int, dropout: float, nonlinear: bool = True,
          final_bn: bool = False) -> nn.Sequential:
    """(N, D, T) -> (N, K, T): 1x1 conv, ReLU, dropout, 1x1 conv (``nonlinear``) or dropout, one 1x1
    conv; then batch norm of the logits when ``final_bn`` (paper, Hyperparameter optimization)."""
    layers = ([nn.Conv1d(n_features, hidden, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
               nn.Conv1d(hidden, n_classes, 1)] if nonlinear else [nn.Dropout(dropout), nn.Conv1d(n_features, n_classes, 1)])
    return nn.Sequential(*layers, *([nn.BatchNorm1d(n_classes)] if final_bn else []))


class TGM(nn.Module):
    """TGM sequence model: features (N, D, T) -> logits (N, K, T).

    D = 1024 is the concatenation of the spatial and flow features. Each output frame depends on
    the inputs within +/- n_layers x (L // 2) frames (zero padding at the ends).
    """

    def __init__(self, n_features: int = 1024, n_classes: int = 1, *,
                 length: int = HPARAMS["tgm_filter_length"], n_filters: int = HPARAMS["tgm_n_filters"],
                 c_in: int = HPARAMS["tgm_c_in"], c_out: int = HPARAMS["tgm_c_out"],
                 n_layers: int = HPARAMS["tgm_n_layers"], hidden: int = HPARAMS["tgm_hidden"],
                 input_dropout: float = HPARAMS["tgm_input_dropout"],
                 output_dropout: float = HPARAMS["tgm_output_dropout"],
                 kernel: str = HPARAMS["tgm_kernel"], soft_attention: bool = HPARAMS["tgm_soft_attention"],
                 nonlinear_head: bool = True, final_bn: bool = False):
        super().__init__()
        self.n_features, self.n_classes, self.c_in = n_features, n_classes, c_in
        layer = partial(TGMLayer, length, n_filters, kernel=kernel, soft_attention=soft_attention)
        self.tgm = nn.ModuleList([layer(c_in, c_out)] + [layer(c_out, c_out) for _ in range(n_layers - 1)])
        self.input_dropout = nn.Dropout(input_dropout)
        self.input_head = _head(n_features, hidden, n_classes, output_dropout, nonlinear_head, final_bn)
        self.tgm_head = _head(n_features, hidden, n_classes, output_dropout, nonlinear_head, final_bn)

    def tgm_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D, T) -> learned TGM features (N, D, T): the layers, then max over C_out."""
        h = x.transpose(1, 2).unsqueeze(1).expand(-1, self.c_in, -1, -1)   # (N, C_in, T, D): TGMLayer's layout
        for layer in self.tgm:
            h = layer(h)
        return h.amax(dim=1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.n_features:
            raise InputShapeError(f"TGM expects (N, D={self.n_features}, T), got {tuple(x.shape)}")
        x = self.input_dropout(x)
        # late fusion: average the two heads' logits before the sigmoid
        return (self.input_head(x) + self.tgm_head(self.tgm_features(x))) / 2

    def init_output_bias(self, positives: Sequence[float], negatives: Sequence[float]) -> None:
        """Both heads' final bias = log(positives / negatives), so the fused logit starts there too."""
        bias = bias_from_counts(positives, negatives)
        if bias.numel() != self.n_classes:
            raise ValueError(f"got counts for {bias.numel()} behaviours, model has {self.n_classes}")
        with torch.no_grad():
            for head in (self.input_head, self.tgm_head):
                # the last layer's shift: the final conv's bias, or the batch norm's when there is one
                head[-1].bias.copy_(bias.to(head[-1].bias))


def build_sequence_model(name: str, n_features: int = 1024, n_classes: int | None = None, **kwargs) -> nn.Module:
    """The named sequence model (``"tgm"``) mapping (N, n_features, T) to (N, n_classes, T)."""
    if n_classes is None or n_classes < 1:
        raise ValueError(f"build_sequence_model needs n_classes >= 1, got {n_classes!r}")
    try:
        ctor = SEQUENCE_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown sequence model {name!r}; known: {', '.join(SEQUENCE_MODELS)}") from None
    return ctor(n_features=n_features, n_classes=n_classes, **kwargs)


SEQUENCE_MODELS: dict[str, Callable[..., nn.Module]] = {"tgm": TGM}
