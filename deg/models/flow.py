"""Flow generators: TinyMotionNet, MotionNet and TinyMotionNet3D, plus differentiable warping.

All three are one U-Net-like network (paper Methods, "Flow generators"; Zhu et al. 2017,
Hidden Two-Stream Networks) described by a row of :data:`SPECS`. The layers, their names, kernel
sizes, biases and normalisation are those of the published DeepEthogram models
(github.com/jbohnslav/deepethogram at commit a77c77c, ``deepethogram/flow_generator/models``), so
the authors' Kinetics700 checkpoints load tensor for tensor by name (the layout is recorded in
``tests/models/data/deepethogram_published_layout.json.gz`` and checked by the tests):

* encoder levels ``conv1``, ``conv2``, ... (MotionNet: ``conv1``, ``conv1_1``, ...), each conv +
  BatchNorm + LeakyReLU(0.1); the first conv of every level after the first halves H and W;
* at the coarsest level ``predict_flow<L>``; then, for each finer level k down to 2, a
  transposed conv ``deconv<k>`` (kernel 4, stride 2), the coarser flow up-sampled by
  ``upsampled_flow<k+1>_to_<k>`` (a transposed conv initialised as bilinear x2) and multiplied
  by 2 (one coarse pixel is two fine pixels: paper "Modifications"), the concatenation
  [encoder map of level k, deconv output, up-sampled flow] (in that order), an ``xconv<k>``
  (3x3 conv + BatchNorm, no activation) and ``predict_flow<k>`` (3x3 conv);
* flows at 1/2, 1/4 and 1/8 of the input resolution (``predict_flow2/3/4``) are returned,
  finest first, as continuous float32-range values in pixels of their own scale.

The 2D nets stack the T frames along channels (3T in, 2(T-1) out); their convs carry a bias
before the BatchNorm, their deconvs a bias and no BatchNorm, their predict-flow convs no bias.
TinyMotionNet3D keeps time as depth (paper "TinyMotionNet3D"; the published kernels): cubic
encoder kernels (7x7x7, 5x5x5, 3x3x3, 3x3x3, time padded so T is kept), then ``conv5`` with a
(2, 3, 3) kernel unpadded in time (T frames -> T-1 frame pairs); the skip maps pass through
``iconv<k>`` convs of the same (2, 3, 3) kernel to become frame pairs too; deconvs and
up-sampling convs have time kernel 1, ``xconv`` and ``predict_flow`` 3x3x3. Its convs and
deconvs have BatchNorm and no bias; its predict-flow convs have a bias. It returns the same
(N, 2(T-1), h, w) layout as the 2D nets.

Channel layout of every returned flow: channel 2i is the x (column) displacement and 2i+1 the y
(row) displacement that maps frame i onto frame i+1, i.e. frame i is reconstructed from frame
i+1 by :func:`warp` (as the published reconstructor reads them).
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
    """One row of the flow-generator table (the published DeepEthogram layers).

    levels: per resolution level, finest first, its convs as (out_channels, kernel, stride);
        the first conv of every level but the first has stride 2. Level k's convs are named
        ``conv<k>``, ``conv<k>_1``, ``conv<k>_2``, ...
    decoder: (deconv_out, xconv_out) per up step, coarse to fine, one per level from L-1 to 2.
    deconv_from_concat: the next deconv reads the concatenation (MotionNet, as in FlowNet-SD)
        instead of the xconv output (TinyMotionNets).
    dims: 2 (frames stacked along channels) or 3 (frames along depth; kernels are cubic).
    conv_bias: encoder convs carry a bias before their BatchNorm (the 2D nets).
    deconv_norm: deconvs are followed by BatchNorm and have no bias (3D) rather than a bias and
        no BatchNorm (2D).
    predict_bias: predict-flow convs carry a bias (3D).
    """

    levels: tuple[tuple[tuple[int, int, int], ...], ...]
    decoder: tuple[tuple[int, int], ...]
    deconv_from_concat: bool = False
    dims: int = 2
    conv_bias: bool = True
    deconv_norm: bool = False
    predict_bias: bool = False


SPECS: dict[str, FlowNetSpec] = {
    # Zhu et al. 2017 / DeepEthogram TinyMotionNet: conv 7x7/64, 5x5/128 s2, 3x3/256 s2, 3x3/128 s2;
    # two up steps (1,951,784 parameters; paper Table 2: 1.9M)
    "tinymotionnet": FlowNetSpec(
        levels=(((64, 7, 1),), ((128, 5, 2),), ((256, 3, 2),), ((128, 3, 2),)),
        decoder=((128, 128), (64, 64)),
    ),
    # Zhu et al. 2017 / DeepEthogram MotionNet: 64-64-128-128-256-256-512-512-512-512-1024-1024,
    # all 3x3; flows predicted at 1/32 ... 1/2, the finest three returned (45,882,896; Table 2: 45.8M)
    "motionnet": FlowNetSpec(
        levels=(((64, 3, 1), (64, 3, 1)), ((128, 3, 2), (128, 3, 1)), ((256, 3, 2), (256, 3, 1)),
                ((512, 3, 2), (512, 3, 1)), ((512, 3, 2), (512, 3, 1)), ((1024, 3, 2), (1024, 3, 1))),
        decoder=((512, 512), (256, 256), (128, 128), (64, 64)),
        deconv_from_concat=True,
    ),
    # Paper "TinyMotionNet3D" / DeepEthogram TinyMotionNet3D: 16/32/64 maps, 7x7x7 and 5x5x5 first
    # kernels as published (the paper text says temporal kernel 3), plus the frame-pairing conv5 and
    # iconv skip convs built in FlowGenerator (437,738 parameters; Table 2: 0.4M)
    "tinymotionnet3d": FlowNetSpec(
        levels=(((16, 7, 1),), ((32, 5, 2),), ((64, 3, 2),), ((32, 3, 2),)),
        decoder=((32, 32), (16, 16)),
        dims=3, conv_bias=False, deconv_norm=True, predict_bias=True,
    ),
}


def _conv(dims: int, cin: int, cout: int, k: int, stride: int = 1, bias: bool = True,
          kt: int | None = None) -> nn.Module:
    """A 2D k x k conv, or a 3D (kt, k, k) conv (cubic unless kt is given) that never strides in
    time. 'Same' padding in space; time padding (kt - 1) // 2, so kt = 2 turns T frames into T-1 pairs."""
    if dims == 2:
        return nn.Conv2d(cin, cout, k, stride, k // 2, bias=bias)
    kt = k if kt is None else kt
    return nn.Conv3d(cin, cout, (kt, k, k), (1, stride, stride), ((kt - 1) // 2, k // 2, k // 2), bias=bias)


def _deconv(dims: int, cin: int, cout: int, bias: bool) -> nn.Module:
    """Transposed conv that doubles H and W (kernel 4, stride 2, padding 1); time kernel 1 in 3D."""
    if dims == 2:
        return nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias)
    return nn.ConvTranspose3d(cin, cout, (1, 4, 4), (1, 2, 2), (0, 1, 1), bias=bias)


def _norm(dims: int, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm3d(c)


def _act() -> nn.Module:
    return nn.LeakyReLU(LEAK, inplace=True)


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
    """U-Net flow generator built from a :class:`FlowNetSpec`, with the published module names.

    forward(clip (N, 3, T, H, W)) -> [flow at H/2, flow at H/4, flow at H/8], each
    (N, 2(T-1), h, w) in pixels of its scale. H and W must be divisible by 8.

    Modules (L = number of levels; k runs from L-1 down to 2): ``conv<level>[_<i>]``; 3D only
    ``conv<L+1>`` (frame pairing) and ``iconv<k>`` (skip maps -> frame pairs); ``deconv<k>``,
    ``xconv<k>``, ``predict_flow<L>`` and ``predict_flow<k>``, ``upsampled_flow<k+1>_to_<k>``.
    """

    def __init__(self, spec: FlowNetSpec, n_frames: int = 11,
                 max_displacement: float | None = HPARAMS["flow_max_displacement"]):
        super().__init__()
        if n_frames < 2:
            raise InputShapeError(f"a flow generator needs at least 2 frames, got n_frames={n_frames}")
        n_levels = len(spec.levels)
        if len(spec.decoder) != n_levels - 2:
            raise ValueError(f"spec has {n_levels} levels but {len(spec.decoder)} up steps "
                             f"(need {n_levels - 2} to reach 1/2 resolution)")
        self.spec = spec
        self.n_frames = n_frames
        self.is_3d = spec.dims == 3
        self.max_displacement = max_displacement
        d = spec.dims
        n_flow = 2 if self.is_3d else 2 * (n_frames - 1)  # predicted channels (per frame pair in 3D)

        # Encoder, finest level first. Registration order follows the published state dicts.
        self._level_names: list[list[str]] = []
        c = 3 if self.is_3d else 3 * n_frames
        level_out = []
        for level, convs in enumerate(spec.levels, start=1):
            names = []
            for i, (cout, k, stride) in enumerate(convs):
                name = f"conv{level}" if i == 0 else f"conv{level}_{i}"
                self.add_module(name, nn.Sequential(_conv(d, c, cout, k, stride, bias=spec.conv_bias),
                                                    _norm(d, cout), _act()))
                names.append(name)
                c = cout
            self._level_names.append(names)
            level_out.append(c)
        # 3D: one more conv of time kernel 2 pairs the bottleneck's frames (T -> T-1)
        self._pair_name = f"conv{n_levels + 1}" if self.is_3d else None
        if self.is_3d:
            self.add_module(self._pair_name, nn.Sequential(_conv(3, c, c, 3, kt=2, bias=False), _norm(3, c), _act()))

        steps = list(range(n_levels - 1, 1, -1))        # decoder levels, coarse to fine
        concat_ch, up_in = {}, c
        for k, (dc_out, xc_out) in zip(steps, spec.decoder):
            deconv = _deconv(d, up_in, dc_out, bias=not spec.deconv_norm)
            self.add_module(f"deconv{k}", nn.Sequential(deconv, _norm(d, dc_out), _act()) if spec.deconv_norm
                            else nn.Sequential(deconv, _act()))
            concat_ch[k] = level_out[k - 1] + dc_out + n_flow   # [skip, deconv, up-sampled flow]
            up_in = concat_ch[k] if spec.deconv_from_concat else xc_out
        if self.is_3d:  # skip maps of frames -> of frame pairs (time kernel 2, unpadded)
            for k in steps:
                ch = level_out[k - 1]
                self.add_module(f"iconv{k}", nn.Sequential(_conv(3, ch, ch, 3, kt=2, bias=False), _norm(3, ch), _act()))
        for k, (_, xc_out) in zip(steps, spec.decoder):   # no activation: straight into predict_flow
            self.add_module(f"xconv{k}", nn.Sequential(_conv(d, concat_ch[k], xc_out, 3), _norm(d, xc_out)))
        pred_in = [c] + [xc for _, xc in spec.decoder]
        for k, cin in zip([n_levels] + steps, pred_in):
            pred = _conv(d, cin, n_flow, 3, bias=spec.predict_bias)
            # the published 3D predict-flow is a one-layer Sequential (names predict_flow<k>.0.*)
            self.add_module(f"predict_flow{k}", nn.Sequential(pred) if self.is_3d else pred)
        for k in steps:
            self.add_module(f"upsampled_flow{k + 1}_to_{k}", _deconv(d, n_flow, n_flow, bias=True))
        self._steps = steps
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=LEAK, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for k in [len(self.spec.levels)] + self._steps:
            pred = getattr(self, f"predict_flow{k}")
            with torch.no_grad():
                (pred[0] if isinstance(pred, nn.Sequential) else pred).weight.mul_(PRED_INIT_GAIN)
        for k in self._steps:  # start as exact bilinear up-sampling so "x2" means pixels
            _bilinear_upsample_(getattr(self, f"upsampled_flow{k + 1}_to_{k}"))

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
        level_maps = []                                  # output of each level, finest first
        for names in self._level_names:
            for name in names:
                x = getattr(self, name)(x)
            level_maps.append(x)
        if self.is_3d:
            x = getattr(self, self._pair_name)(x)        # (N, C, T-1, h, w)
        flow = self._bound(getattr(self, f"predict_flow{len(self._level_names)}")(x))
        flows, up_in = [flow], x
        for k in self._steps:
            skip = level_maps[k - 1]
            if self.is_3d:
                skip = getattr(self, f"iconv{k}")(skip)  # frames -> frame pairs
            up = _crop_like(getattr(self, f"deconv{k}")(up_in), skip)
            # one coarse pixel = two fine pixels
            up_flow = 2.0 * _crop_like(getattr(self, f"upsampled_flow{k + 1}_to_{k}")(flow), skip)
            cat = torch.cat([skip, up, up_flow], dim=1)
            feat = getattr(self, f"xconv{k}")(cat)
            flow = self._bound(getattr(self, f"predict_flow{k}")(feat))
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
