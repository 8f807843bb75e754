"""Flow generators: TinyMotionNet, MotionNet and TinyMotionNet3D, plus differentiable warping.

All three are one U-Net-like network (paper Methods, "Flow generators"; Zhu et al. 2017,
Hidden Two-Stream Networks) described by a row of :data:`SPECS`:

* an encoder of conv + BatchNorm + LeakyReLU(0.1) layers whose stride-2 layers halve the
  resolution;
* a decoder that, at each up step, concatenates the encoder map of that resolution, the
  transposed-conv up-sampled features and the up-sampled coarser flow (its values times 2,
  because one pixel of the coarser scale is two pixels of the finer one: paper
  "Modifications"), then applies a 3x3 "iconv" and a predict-flow conv;
* flows at 1/2, 1/4 and 1/8 of the input resolution are returned, finest first, as
  continuous float32-range values in pixels of their own scale (no 0-255 quantisation).

The 2D nets stack the T frames along channels (3T in, 2(T-1) out). TinyMotionNet3D keeps time as
depth: temporal kernels of 3 (padded) on the encoder and decoder, and a temporal kernel of 2
(unpadded, so T frames -> T-1 frame pairs) on the last encoder layer and on the skip convs that
bring each encoder map from frames to frame pairs before concatenation (paper
"TinyMotionNet3D"). It returns the same (N, 2(T-1), h, w) layout as the 2D nets.

Channel layout of every returned flow: channel 2i is the x (column) displacement and 2i+1 the y
(row) displacement that maps frame i onto frame i+1, i.e. frame i is reconstructed from frame
i+1 by :func:`warp`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from deg.presets import HPARAMS

LEAK = 0.1          # LeakyReLU slope (Zhu et al. 2017)
N_SCALES = 3        # flows returned: 1/2, 1/4, 1/8 of the input (paper "Modifications")
PRED_INIT_GAIN = 0.1  # predict-flow convs start small so initial flows are a few pixels at most


class InputShapeError(ValueError):
    """A tensor given to a model has the wrong rank, channel count or size."""


@dataclass(frozen=True)
class FlowNetSpec:
    """One row of the flow-generator table.

    encoder: (out_channels, spatial kernel, stride) per conv layer; stride is 1 or 2.
    decoder: (deconv_out, iconv_out) per up step, coarse to fine; there are as many up steps
        as needed to reach 1/2 resolution.
    deconv_from_concat: the next deconv reads the concatenation (MotionNet, as in FlowNet-SD)
        instead of the iconv output (TinyMotionNet).
    dims: 2 (frames stacked along channels) or 3 (frames along depth).
    """

    encoder: tuple[tuple[int, int, int], ...]
    decoder: tuple[tuple[int, int], ...]
    deconv_from_concat: bool = False
    dims: int = 2


SPECS: dict[str, FlowNetSpec] = {
    # Zhu et al. 2017: conv 7x7/64 s1, 5x5/128 s2, 3x3/256 s2, 3x3/128 s2; two up steps (~1.95M)
    "tinymotionnet": FlowNetSpec(
        encoder=((64, 7, 1), (128, 5, 2), (256, 3, 2), (128, 3, 2)),
        decoder=((128, 128), (64, 64)),
    ),
    # Zhu et al. 2017: 64-64-128-128-256-256-512-512-512-512-1024-1024 (strides at each new width),
    # flows predicted at 1/32 ... 1/2, the finest three returned (~45.9M)
    "motionnet": FlowNetSpec(
        encoder=((64, 3, 1), (64, 3, 1), (128, 3, 2), (128, 3, 1), (256, 3, 2), (256, 3, 1),
                 (512, 3, 2), (512, 3, 1), (512, 3, 2), (512, 3, 1), (1024, 3, 2), (1024, 3, 1)),
        decoder=((512, 512), (256, 256), (128, 128), (64, 64)),
        deconv_from_concat=True,
    ),
    # Paper "TinyMotionNet3D": TinyMotionNet with 3D convs and 16/32/64 maps (~0.4M)
    "tinymotionnet3d": FlowNetSpec(
        encoder=((16, 7, 1), (32, 5, 2), (64, 3, 2), (32, 3, 2)),
        decoder=((32, 32), (16, 16)),
        dims=3,
    ),
}


def _conv(dims: int, cin: int, cout: int, k: int, stride: int = 1, kt: int = 3, bias: bool = False,
          pad_time: bool = True) -> nn.Module:
    """A 2D k x k conv, or a 3D (kt, k, k) conv that never strides in time."""
    if dims == 2:
        return nn.Conv2d(cin, cout, k, stride, k // 2, bias=bias)
    return nn.Conv3d(cin, cout, (kt, k, k), (1, stride, stride),
                     (kt // 2 if pad_time else 0, k // 2, k // 2), bias=bias)


def _deconv(dims: int, cin: int, cout: int, kt: int = 3, bias: bool = False) -> nn.Module:
    """Transposed conv that doubles H and W (kernel 4, stride 2, padding 1); keeps T in 3D."""
    if dims == 2:
        return nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias)
    return nn.ConvTranspose3d(cin, cout, (kt, 4, 4), (1, 2, 2), (kt // 2, 1, 1), bias=bias)


def _norm(dims: int, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm3d(c)


def _block(conv: nn.Module, dims: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv, _norm(dims, cout), nn.LeakyReLU(LEAK, inplace=True))


def _bilinear_upsample_(deconv: nn.Module) -> None:
    """Initialise a (C -> C, kernel 4, stride 2) transposed conv as per-channel bilinear x2 up-sampling."""
    w = deconv.weight
    k = w.shape[-1]
    factor = (k + 1) // 2
    centre = factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt1d = 1 - (og - centre).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    with torch.no_grad():
        w.zero_()
        for c in range(min(w.shape[0], w.shape[1])):
            w[c, c, ...] = filt.expand_as(w[c, c]).to(w.dtype) / (w.shape[2] if w.dim() == 5 else 1)
        if deconv.bias is not None:
            deconv.bias.zero_()


def _crop_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Trim the trailing spatial rows/cols of x to ref's H, W (a deconv may overshoot odd sizes)."""
    return x[..., : ref.shape[-2], : ref.shape[-1]]


class FlowGenerator(nn.Module):
    """U-Net flow generator built from a :class:`FlowNetSpec`.

    forward(clip (N, 3, T, H, W)) -> [flow at H/2, flow at H/4, flow at H/8], each
    (N, 2(T-1), h, w) in pixels of its scale. H and W must be divisible by 8.
    """

    def __init__(self, spec: FlowNetSpec, n_frames: int = 11,
                 max_displacement: float | None = HPARAMS["flow_max_displacement"]):
        super().__init__()
        if n_frames < 2:
            raise InputShapeError(f"a flow generator needs at least 2 frames, got n_frames={n_frames}")
        self.spec = spec
        self.n_frames = n_frames
        self.is_3d = spec.dims == 3
        self.max_displacement = max_displacement
        d = spec.dims
        n_flow = 2 if self.is_3d else 2 * (n_frames - 1)  # predicted channels (per time step in 3D)
        cin = 3 if self.is_3d else 3 * n_frames

        # Encoder: the last layer at each resolution is a skip source; the last layer overall is the
        # bottleneck. In 3D the bottleneck pairs frames (temporal kernel 2, unpadded).
        layers, level_out, c = [], [], cin
        for i, (cout, k, stride) in enumerate(spec.encoder):
            last = i == len(spec.encoder) - 1
            layers.append(_block(_conv(d, c, cout, k, stride, kt=2 if last else 3, pad_time=not last), d, cout))
            if stride == 2 or i == 0:
                level_out.append(None)
            level_out[-1] = (i, cout)
            c = cout
        self.encoder = nn.ModuleList(layers)
        n_down = len(level_out) - 1
        if len(spec.decoder) != n_down - 1:
            raise ValueError(f"spec has {n_down} down-samplings but {len(spec.decoder)} up steps "
                             f"(need {n_down - 1} to reach 1/2 resolution)")
        # skip sources coarse -> fine, for resolutions 1/2^(n_down-1) ... 1/2
        self._skip_idx = [level_out[lvl][0] for lvl in range(n_down - 1, 0, -1)]
        skip_ch = [level_out[lvl][1] for lvl in range(n_down - 1, 0, -1)]
        # 3D: skip convs turn an encoder map over T frames into one over T-1 frame pairs
        self.pair = nn.ModuleList(
            _block(_conv(3, ch, ch, 3, kt=2, pad_time=False), 3, ch) for ch in skip_ch
        ) if self.is_3d else None

        self.predict = nn.ModuleList([_conv(d, c, n_flow, 3, bias=True)])
        self.deconv, self.flow_up, self.iconv = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        up_in = c
        for (dc_out, ic_out), sk in zip(spec.decoder, skip_ch):
            self.deconv.append(_block(_deconv(d, up_in, dc_out), d, dc_out))
            self.flow_up.append(_deconv(d, n_flow, n_flow, kt=1))
            cat = sk + dc_out + n_flow
            self.iconv.append(_block(_conv(d, cat, ic_out, 3), d, ic_out))
            self.predict.append(_conv(d, ic_out, n_flow, 3, bias=True))
            up_in = cat if spec.deconv_from_concat else ic_out
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=LEAK, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for p in self.predict:
            with torch.no_grad():
                p.weight.mul_(PRED_INIT_GAIN)
        for up in self.flow_up:  # start as exact bilinear up-sampling so "x2" means pixels
            _bilinear_upsample_(up)

    def _bound(self, flow: torch.Tensor) -> torch.Tensor:
        # Soft clamp (HPARAMS["flow_max_displacement"], not in the paper): identity for small
        # flows, smooth saturation for large ones, gradients never vanish abruptly.
        if self.max_displacement is None:
            return flow
        m = self.max_displacement
        return m * torch.tanh(flow / m)

    def _check(self, clip: torch.Tensor) -> None:
        if clip.dim() != 5 or clip.shape[1] != 3:
            raise InputShapeError(f"flow generator expects a clip (N, 3, T, H, W), got {tuple(clip.shape)}")
        if clip.shape[2] != self.n_frames:
            raise InputShapeError(f"flow generator was built for T={self.n_frames} frames, got {clip.shape[2]}")
        if clip.shape[-1] % 8 or clip.shape[-2] % 8:
            raise InputShapeError(f"frame height and width must be divisible by 8, got {tuple(clip.shape[-2:])}")

    def _to_layout(self, flow: torch.Tensor) -> torch.Tensor:
        """3D (N, 2, T-1, h, w) -> (N, 2(T-1), h, w) with channel 2i = x of pair i."""
        if not self.is_3d:
            return flow
        n, _, t, h, w = flow.shape
        return flow.transpose(1, 2).reshape(n, 2 * t, h, w)

    def forward(self, clip: torch.Tensor) -> list[torch.Tensor]:
        self._check(clip)
        if self.is_3d:
            x = clip
        else:  # (N, 3, T, H, W) -> (N, 3T, H, W), frame-major: [f0 rgb, f1 rgb, ...]
            n, _, t, h, w = clip.shape
            x = clip.transpose(1, 2).reshape(n, 3 * t, h, w)
        feats = []
        for layer in self.encoder:
            x = layer(x)
            feats.append(x)
        flow = self._bound(self.predict[0](x))
        flows = [flow]
        up_in = x
        for i, idx in enumerate(self._skip_idx):
            skip = feats[idx] if self.pair is None else self.pair[i](feats[idx])
            up = _crop_like(self.deconv[i](up_in), skip)
            up_flow = 2.0 * _crop_like(self.flow_up[i](flow), skip)  # one coarse pixel = two fine pixels
            cat = torch.cat([skip, up, up_flow], dim=1)
            feat = self.iconv[i](cat)
            flow = self._bound(self.predict[i + 1](feat))
            flows.append(flow)
            up_in = cat if self.spec.deconv_from_concat else feat
        return [self._to_layout(f) for f in flows[::-1][:N_SCALES]]


def build_flow_generator(name: str, n_frames: int = 11, **kwargs) -> FlowGenerator:
    """The named flow generator (a key of :data:`SPECS`) for clips of ``n_frames`` frames."""
    try:
        spec = SPECS[name]
    except KeyError:
        raise KeyError(f"unknown flow generator {name!r}; known: {', '.join(SPECS)}") from None
    return FlowGenerator(spec, n_frames=n_frames, **kwargs)


FLOW_GENERATORS: dict[str, Callable[..., FlowGenerator]] = {
    name: partial(build_flow_generator, name) for name in SPECS
}


def channels_last(obj: nn.Module | torch.Tensor) -> nn.Module | torch.Tensor:
    """A tensor, or every 4D / 5D parameter and buffer of a module, in channels-last layout.

    ``Module.to(memory_format=torch.channels_last)`` fails on 3D-conv weights; this picks
    ``channels_last`` for 4D and ``channels_last_3d`` for 5D tensors and leaves the rest alone.
    Modules are converted in place and returned.
    """
    def convert(t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 4:
            return t.contiguous(memory_format=torch.channels_last)
        if t.dim() == 5:
            return t.contiguous(memory_format=torch.channels_last_3d)
        return t

    if isinstance(obj, torch.Tensor):
        return convert(obj)
    for module in obj.modules():
        for tensors in (module._parameters, module._buffers):
            for t in tensors.values():
                if t is not None and t.dim() in (4, 5):
                    t.data = convert(t.data)
    return obj


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Reconstruct frame t from frame t+1: out(y, x) = image(y + flow_y, x + flow_x).

    image (N, C, H, W), frame t+1; flow (N, 2, H, W) in pixels, channel 0 = x (columns),
    channel 1 = y (rows). Bilinear sampling with border padding (torch grid_sample, as in the
    paper's "MotionNet loss"). Computed in float32 whatever the input dtype: a bfloat16 sampling
    grid would be off by up to a pixel at a few hundred pixels of width. Returns (N, C, H, W) float32.
    """
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise InputShapeError(f"warp expects image (N, C, H, W) and flow (N, 2, H, W), "
                              f"got {tuple(image.shape)} and {tuple(flow.shape)}")
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise InputShapeError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} differ in N, H or W")
    n, _, h, w = image.shape
    image, flow = image.float(), flow.float()
    ys = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w)
    # pixel centres -> normalised coordinates for align_corners=False: (2x + 1) / W - 1
    gx = (2 * (xs + flow[:, 0]) + 1) / w - 1
    gy = (2 * (ys + flow[:, 1]) + 1) / h - 1
    grid = torch.stack([gx, gy], dim=-1)
    with torch.autocast(device_type=image.device.type, enabled=False):
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
