"""Two-stream feature extractors: 2D ResNet18 / ResNet50 and 3D ResNet34 (paper Methods, "Feature extractors").

Each stream is ``backbone -> global average pool -> [2048 -> 512 fc + ReLU, ResNet50 only] ->
512-d features -> dropout -> K logits``. The spatial stream sees RGB frames, the flow stream the
stack of optic flows; their K-dim logits are averaged before the sigmoid ("Fusion"), and both
512-d feature vectors are returned for the sequence model (which reads their 1024-d concatenation).

The 2D backbones are torchvision's ResNets (``weights=None``), so torchvision state dicts load by
name; only ``conv1`` is replaced when the input is not 3 channels (20 for 10 stacked flows). The 3D
ResNet follows Hara et al. 2018 (3D-ResNets): 7x7x7 stem with stride (1, 2, 2), 3x3x3 max-pool with
stride 2, basic blocks with 64/128/256/512 maps, global average pool, and uses the same module names
(conv1, bn1, layer1..4, fc) so Hara-style checkpoints load by name too.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import torch
import torchvision
from torch import nn

from deg.losses import bias_from_counts
from deg.models.flow import InputShapeError
from deg.presets import HPARAMS

FEATURE_DIM = 512  # per-stream feature size written to disk (paper: "N,512 features")


@dataclass(frozen=True)
class ExtractorSpec:
    """One row of the feature-extractor table: torchvision 2D arch, or 3D basic-block counts."""

    dims: int
    arch: str = ""                                # torchvision constructor (2D)
    blocks: tuple[int, int, int, int] = (0, 0, 0, 0)  # basic blocks per stage (3D)


SPECS: dict[str, ExtractorSpec] = {
    "resnet18": ExtractorSpec(dims=2, arch="resnet18"),    # DEG_f, 2 x ~11.2M
    "resnet50": ExtractorSpec(dims=2, arch="resnet50"),    # DEG_m, 2 x (~23.5M + 2048->512 fc)
    "resnet3d34": ExtractorSpec(dims=3, blocks=(3, 4, 6, 3)),  # DEG_s, 2 x ~63.5M (Hara et al.)
}


# --------------------------------------------------------------------------------------
# 3D ResNet (Hara et al. 2018), torchvision module names
# --------------------------------------------------------------------------------------
class BasicBlock3D(nn.Module):
    """Two 3x3x3 conv + BN layers with an identity (or 1x1x1 conv + BN) shortcut. (N, C, T, H, W)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet3D(nn.Module):
    """3D ResNet trunk: (N, C, T, H, W) -> pooled features (N, 512). ``fc`` is an Identity slot."""

    def __init__(self, blocks: Sequence[int], in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, 64, 7, (1, 2, 2), 3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, 2, 1)
        c = 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock3D(c, width, stride)] + [BasicBlock3D(width, width) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            c = width
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _backbone(spec: ExtractorSpec, in_channels: int) -> tuple[nn.Module, int]:
    """(trunk returning pooled (N, width) features, width)."""
    if spec.dims == 3:
        return ResNet3D(spec.blocks, in_channels), 512
    net = getattr(torchvision.models, spec.arch)(weights=None)
    if in_channels != 3:
        old = net.conv1
        net.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    width = net.fc.in_features
    net.fc = nn.Identity()
    return net, width


# --------------------------------------------------------------------------------------
# Streams and the two-stream model
# --------------------------------------------------------------------------------------
class Stream(nn.Module):
    """One stream: input -> (logits (N, K), features (N, 512)).

    Input: 2D (N, C, H, W) with C = 3 x frames (spatial) or 2 x flows (flow); 3D (N, C, T, H, W)
    with C = 3 (spatial) or 2 (flow). ``backbone.*`` are the pretrainable weights; ``reduce.*``
    (ResNet50's extra 2048->512 fc) and ``fc.*`` are new (see :meth:`new_parameter_names`).
    """

    def __init__(self, spec: ExtractorSpec, in_channels: int, n_classes: int, dropout: float,
                 feature_dim: int = FEATURE_DIM, final_bn: bool = False):
        super().__init__()
        self.dims = spec.dims
        self.backbone, width = _backbone(spec, in_channels)
        self.reduce = (nn.Sequential(nn.Linear(width, feature_dim), nn.ReLU(inplace=True))
                       if width != feature_dim else nn.Identity())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(feature_dim, n_classes)
        # optional batch norm of the logits (paper, Hyperparameter optimization; Kocaman et al. 2020)
        self.final_bn = nn.BatchNorm1d(n_classes) if final_bn else nn.Identity()

    @property
    def in_channels(self) -> int:
        return self.backbone.conv1.in_channels

    def new_parameter_names(self) -> set[str]:
        """Names (relative to this stream) of weights that no pretrained model provides."""
        return {n for n, _ in self.named_parameters() if n.startswith(("reduce.", "fc.", "final_bn."))}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != self.dims + 2 or x.shape[1] != self.in_channels:
            want = "(N, C, H, W)" if self.dims == 2 else "(N, C, T, H, W)"
            raise InputShapeError(f"stream expects {want} with C={self.in_channels}, got {tuple(x.shape)}")
        features = self.reduce(self.backbone(x))
        return self.final_bn(self.fc(self.dropout(features))), features


class TwoStream(nn.Module):
    """Spatial + flow streams with late average fusion of their logits.

    forward(clip (N, 3, T, H, W), flows (N, 2(T-1), h, w)) -> dict:
        logits (N, K) = (spatial_logits + flow_logits) / 2, spatial_logits (N, K), flow_logits (N, K),
        spatial_features (N, 512), flow_features (N, 512).
    The spatial stream reads the centre ``n_rgb_frames`` frames of the clip (the centre frame
    clip[:, :, T // 2] when 1; 2D stacks them along channels, 3D keeps them as depth). The flow
    stream reads all ``n_flow_frames`` flows: stacked channels in 2D, (N, 2, T-1, h, w) in 3D.
    Flows may be at any resolution.
    """

    def __init__(self, spec: ExtractorSpec, n_classes: int, n_flow_frames: int = 10,
                 n_rgb_frames: int = 1, dropout: float = HPARAMS["fe_dropout"], final_bn: bool = False):
        super().__init__()
        self.is_3d = spec.dims == 3
        self.n_flow_frames = n_flow_frames
        self.n_rgb_frames = n_rgb_frames
        rgb_in, flow_in = (3, 2) if self.is_3d else (3 * n_rgb_frames, 2 * n_flow_frames)
        self.spatial = Stream(spec, rgb_in, n_classes, dropout, final_bn=final_bn)
        self.flow = Stream(spec, flow_in, n_classes, dropout, final_bn=final_bn)

    def new_parameter_names(self) -> set[str]:
        """Names (relative to this model) of the new weights of both streams."""
        return ({f"spatial.{n}" for n in self.spatial.new_parameter_names()}
                | {f"flow.{n}" for n in self.flow.new_parameter_names()})

    def init_output_bias(self, positives: Sequence[float], negatives: Sequence[float]) -> None:
        """Set both final layers' bias to log(positives / negatives) per behaviour (paper "Bias initialization")."""
        bias = bias_from_counts(positives, negatives)
        for stream in (self.spatial, self.flow):
            if bias.shape != stream.fc.bias.shape:
                raise ValueError(f"got counts for {bias.numel()} behaviours, model has {stream.fc.bias.numel()}")
            with torch.no_grad():
                stream.fc.bias.copy_(bias.to(stream.fc.bias))
                if isinstance(stream.final_bn, nn.BatchNorm1d):   # the norm's shift sets the output then
                    stream.final_bn.bias.copy_(bias.to(stream.final_bn.bias))

    def spatial_input(self, clip: torch.Tensor) -> torch.Tensor:
        """clip (N, 3, T, H, W) -> 2D (N, 3 n_rgb, H, W) or 3D (N, 3, n_rgb, H, W), centred on T // 2."""
        if clip.dim() != 5 or clip.shape[1] != 3:
            raise InputShapeError(f"clip must be (N, 3, T, H, W), got {tuple(clip.shape)}")
        t = clip.shape[2]
        if t < self.n_rgb_frames:
            raise InputShapeError(f"spatial stream needs {self.n_rgb_frames} frames, clip has {t}")
        start = t // 2 - self.n_rgb_frames // 2
        x = clip[:, :, start: start + self.n_rgb_frames]
        if self.is_3d:
            return x
        n, _, k, h, w = x.shape
        return x.transpose(1, 2).reshape(n, 3 * k, h, w)

    def flow_input(self, flows: torch.Tensor) -> torch.Tensor:
        """flows (N, 2 F, h, w) -> 2D unchanged, 3D (N, 2, F, h, w)."""
        if flows.dim() != 4 or flows.shape[1] != 2 * self.n_flow_frames:
            raise InputShapeError(f"flows must be (N, {2 * self.n_flow_frames}, h, w), got {tuple(flows.shape)}")
        if not self.is_3d:
            return flows
        n, _, h, w = flows.shape
        return flows.reshape(n, self.n_flow_frames, 2, h, w).transpose(1, 2)

    def forward(self, clip: torch.Tensor, flows: torch.Tensor) -> dict[str, torch.Tensor]:
        spatial_logits, spatial_features = self.spatial(self.spatial_input(clip))
        flow_logits, flow_features = self.flow(self.flow_input(flows))
        return {
            "logits": (spatial_logits + flow_logits) / 2,  # late average fusion, before the sigmoid
            "spatial_logits": spatial_logits,
            "flow_logits": flow_logits,
            "spatial_features": spatial_features,
            "flow_features": flow_features,
        }


def build_two_stream(name: str, n_classes: int, n_flow_frames: int = 10, n_rgb_frames: int = 1,
                     dropout: float = HPARAMS["fe_dropout"], final_bn: bool = False) -> TwoStream:
    """The named two-stream extractor (a key of :data:`SPECS`) for K = ``n_classes`` behaviours."""
    try:
        spec = SPECS[name]
    except KeyError:
        raise KeyError(f"unknown feature extractor {name!r}; known: {', '.join(SPECS)}") from None
    return TwoStream(spec, n_classes, n_flow_frames, n_rgb_frames, dropout, final_bn)


FEATURE_EXTRACTORS: dict[str, Callable[..., TwoStream]] = {
    name: partial(build_two_stream, name) for name in SPECS
}
