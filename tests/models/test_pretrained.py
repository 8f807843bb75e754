"""Loading pretrained weights from checkpoints the tests save themselves."""
from __future__ import annotations

import argparse
import gzip
import json
import logging
from pathlib import Path

import pytest
import torch
import torchvision

from deg.losses import L2SP
from deg.models.feature import ExtractorSpec, ResNet3D, Stream, build_two_stream
from deg.models.flow import build_flow_generator
from deg.models.pretrained import (SCRATCH_NOTICE, PretrainedError, adapt_stem, load_deepethogram_checkpoint,
                                   load_torchvision_resnet, maybe_load, pretrained_reference, read_state_dict)


def test_adapt_stem_averages_and_repeats():
    w = torch.randn(64, 3, 7, 7)
    out = adapt_stem(w, 20)
    assert out.shape == (64, 20, 7, 7)
    for c in (0, 7, 19):
        torch.testing.assert_close(out[:, c], w.mean(dim=1))
    assert adapt_stem(torch.randn(64, 3, 7, 7, 7), 2).shape == (64, 2, 7, 7, 7)
    with pytest.raises(PretrainedError):
        adapt_stem(torch.randn(64, 3), 2)


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory):
    """A torchvision ResNet18 state dict on disk (random weights stand in for ImageNet)."""
    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return path, state


def test_torchvision_resnet_into_20_channel_flow_stream(imagenet_like):
    path, state = imagenet_like
    model = build_two_stream("resnet18", 3)
    fc_before = model.flow.fc.weight.detach().clone()
    report = load_torchvision_resnet(model.flow, path, in_channels=20)
    backbone = model.flow.backbone
    torch.testing.assert_close(backbone.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    torch.testing.assert_close(backbone.bn1.running_var, state["bn1.running_var"])
    torch.testing.assert_close(backbone.conv1.weight, adapt_stem(state["conv1.weight"], 20))
    torch.testing.assert_close(model.flow.fc.weight, fc_before)      # the ImageNet head is not loaded
    assert report.adapted == ["backbone.conv1.weight"]
    assert set(report.skipped) == {"fc.weight", "fc.bias"}
    assert set(report.missing) == {"fc.weight", "fc.bias"}
    assert len(report.loaded) == len(state) - 2
    assert "adapted" in str(report) and "left at init" in str(report)
    with pytest.raises(PretrainedError, match="input channels"):
        load_torchvision_resnet(model.flow, path, in_channels=3)


def test_hara_style_3d_checkpoint_with_dataparallel_prefix(tmp_path):
    torch.manual_seed(0)
    small = ExtractorSpec(dims=3, blocks=(1, 1, 1, 1))   # a small 3D ResNet: same code as [3, 4, 6, 3]
    source = ResNet3D(small.blocks, in_channels=3)
    source.fc = torch.nn.Linear(512, 400)                # a Kinetics-400 head
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 200, "arch": "resnet-34"}, tmp_path / "hara.pth")
    stream = Stream(small, in_channels=2, n_classes=3, dropout=0.25)   # a 3D flow stream
    report = load_torchvision_resnet(stream, tmp_path / "hara.pth")
    torch.testing.assert_close(stream.backbone.conv1.weight, adapt_stem(source.conv1.weight.detach(), 2))
    torch.testing.assert_close(stream.backbone.layer4[0].downsample[0].weight, source.layer4[0].downsample[0].weight)
    assert set(report.skipped) == {"fc.weight", "fc.bias"} and report.adapted == ["backbone.conv1.weight"]


@pytest.fixture(scope="module")
def deepethogram_checkpoint(tmp_path_factory):
    """A Lightning-style checkpoint of a whole DeepEthogram-f model pretrained on 700 classes; its
    flow generator is the recorded published TinyMotionNet layout (not our own model), one
    distinct value per tensor."""
    torch.manual_seed(5)
    flow_gen = _distinct_values(_published("DEG_f", "flow_generator"))
    spatial = torchvision.models.resnet18(weights=None)
    spatial.fc = torch.nn.Linear(512, 700)
    flow_cls = torchvision.models.resnet18(weights=None)
    flow_cls.conv1 = torch.nn.Conv2d(20, 64, 7, 2, 3, bias=False)
    flow_cls.fc = torch.nn.Linear(512, 700)
    state = {f"model.flow_generator.{k}": v for k, v in flow_gen.items()}
    state.update({f"model.spatial_classifier.{k}": v for k, v in spatial.state_dict().items()})
    state.update({f"model.flow_classifier.{k}": v for k, v in flow_cls.state_dict().items()})
    path = tmp_path_factory.mktemp("deg") / "checkpoint.pt"
    torch.save({"state_dict": state, "epoch": 10, "global_step": 1234}, path)
    return path, flow_gen, spatial, flow_cls


def test_deepethogram_flow_generator_by_shape_and_order(tmp_path):
    """The loader's fallback for checkpoints whose module names differ from ours: the published
    TinyMotionNet tensors under unrelated names (same order) still land by shape and order."""
    published = _distinct_values(_published("DEG_f", "flow_generator"))
    renamed = {f"block{i:03d}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(published.items())}
    torch.save({"state_dict": {f"model.{k}": v for k, v in renamed.items()}}, tmp_path / "renamed.pt")
    model = build_flow_generator("tinymotionnet")
    report = load_deepethogram_checkpoint(model, tmp_path / "renamed.pt", "flow_generator")
    assert not report.missing and not report.skipped
    assert len(report.by_order) == len(model.state_dict())
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, published[name], msg=name)


def test_deepethogram_two_stream_via_maybe_load(deepethogram_checkpoint):
    path, _, spatial, flow_cls = deepethogram_checkpoint
    model = build_two_stream("resnet18", 4)
    report = maybe_load(model, path)
    torch.testing.assert_close(model.spatial.backbone.layer2[0].conv1.weight, spatial.layer2[0].conv1.weight)
    torch.testing.assert_close(model.flow.backbone.conv1.weight, flow_cls.conv1.weight)   # 20 channels as saved
    assert {"spatial.fc.weight", "spatial.fc.bias", "flow.fc.weight", "flow.fc.bias"} == set(report.missing)
    assert report.skipped.count("fc.weight") == 2                                       # the 700-class heads
    assert not report.adapted
    # L2-SP towards exactly what was loaded: zero at the start, the new heads decay with beta
    reference = pretrained_reference(model, report)
    assert "spatial.fc.weight" not in reference and "flow.backbone.conv1.weight" in reference
    penalty = L2SP(model, alpha=1.0, beta=0.0, reference=reference, new_names=model.new_parameter_names())
    assert float(penalty().detach()) == 0.0
    with torch.no_grad():
        model.spatial.backbone.conv1.weight.add_(0.1)
    assert float(penalty().detach()) == pytest.approx(0.5 * 0.01 * model.spatial.backbone.conv1.weight.numel(), rel=1e-4)


def test_maybe_load_torchvision_file_fills_both_streams(imagenet_like):
    path, state = imagenet_like
    model = build_two_stream("resnet18", 2)
    report = maybe_load(model, path)
    torch.testing.assert_close(model.spatial.backbone.conv1.weight, state["conv1.weight"])
    torch.testing.assert_close(model.flow.backbone.conv1.weight, adapt_stem(state["conv1.weight"], 20))
    assert report.adapted == ["flow.backbone.conv1.weight"]


def test_maybe_load_without_weights_logs_one_line(caplog):
    model = build_flow_generator("tinymotionnet3d")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="deg.models.pretrained"):
        report = maybe_load(model, None)
    assert [r.getMessage() for r in caplog.records] == [SCRATCH_NOTICE]
    assert not report.loaded and len(report.missing) == len(before)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_bad_files(tmp_path):
    model = build_flow_generator("tinymotionnet3d")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        maybe_load(model, tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(PretrainedError, match="garbage.pt"):
        maybe_load(model, garbage)
    # a checkpoint that pickles other objects besides tensors needs an explicit trust decision
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": model.state_dict(), "args": argparse.Namespace(lr=1e-4)}, pickled)
    with pytest.raises(PretrainedError, match="trusted=True"):
        maybe_load(model, pickled)
    assert len(maybe_load(model, pickled, trusted=True).loaded) == len(model.state_dict())
    # tensors of another model: nothing fits
    other = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(3, 3)}, other)
    with pytest.raises(PretrainedError, match="none of"):
        maybe_load(model, other)
    with pytest.raises(PretrainedError, match="no 'conv1.weight'"):
        load_torchvision_resnet(build_two_stream("resnet18", 2).flow, other)
    with pytest.raises(PretrainedError, match="holds no tensors"):
        read_state_dict({"epoch": 3})


# --------------------------------------------------------------------------------------
# The published DeepEthogram layout (names and shapes recorded from its model classes)
# --------------------------------------------------------------------------------------
# tests/models/data/deepethogram_published_layout.json.gz: {preset: {"flow_generator": {name: shape},
# "feature_extractor": {name: shape}}}, recorded by instantiating the model classes of
# github.com/jbohnslav/deepethogram at commit a77c77c with the arguments its configs use (11 input
# images; get_cnn's Sequential(ResNet without fc, Linear) per stream, in_channels 3 / 20 (2D) or
# 3 / 2 (3D), 700 Kinetics classes; HiddenTwoStream's spatial_classifier.* and flow_classifier.*;
# its flow_generator.* copy is the flow generator's layout). Facts only: no code of it is here.
PUBLISHED = Path(__file__).parent / "data" / "deepethogram_published_layout.json.gz"


def _published(preset: str, part: str) -> dict[str, tuple[int, ...]]:
    layout = json.loads(gzip.decompress(PUBLISHED.read_bytes()))
    return {name: tuple(shape) for name, shape in layout[preset][part].items()}


def _distinct_values(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A tensor of each shape, one distinct value per tensor (BatchNorm step counters too): a
    tensor loaded into the wrong place shows, and it is cheap."""
    return {k: (torch.full(s, i + 1, dtype=torch.long) if k.endswith("num_batches_tracked")
                else torch.full(s, 1e-3 * (i + 1) + seed))
            for i, (k, s) in enumerate(shapes.items())}


def _published_checkpoint(path: Path | None, preset: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint of the published feature-extractor layout, as the authors' Lightning module
    saved it ({"epoch", "state_dict": {"model.<name>": tensor}}), random values; written to
    ``path`` when given (the large presets are passed in memory: the same reader, less disk)."""
    shapes = dict(_published(preset, "feature_extractor"))
    shapes.update({f"flow_generator.{k}": s for k, s in _published(preset, "flow_generator").items()})
    state = _distinct_values(shapes, seed)
    if path is not None:
        torch.save({"epoch": 20, "state_dict": {f"model.{k}": v for k, v in state.items()}}, path)
    return state


@pytest.mark.parametrize("preset", ["DEG_f", "DEG_m", "DEG_s"])
def test_published_feature_extractor_checkpoint_loads_completely(tmp_path, monkeypatch, preset):
    """Every tensor of both published streams lands in the tensor of the same role here (checked
    by value); only the 700-class Kinetics heads stay new (K = 3 behaviours here)."""
    from deg.presets import get_preset

    # the weights are overwritten by the load: skip the random initialisation of 50-130M weights
    for init in ("kaiming_uniform_", "kaiming_normal_", "uniform_", "normal_", "constant_", "ones_", "zeros_"):
        monkeypatch.setattr(torch.nn.init, init, lambda tensor, *args, **kwargs: tensor)
    p = get_preset(preset)
    on_disk = preset == "DEG_f"
    state = _published_checkpoint(tmp_path / "fe.pt" if on_disk else None, preset)
    model = build_two_stream(p.feature_extractor, n_classes=3, n_flow_frames=p.n_flow_frames - 1,
                             n_rgb_frames=p.n_rgb_frames)
    source = tmp_path / "fe.pt" if on_disk else {"epoch": 20, "state_dict": {f"model.{k}": v for k, v in state.items()}}
    report = maybe_load(model, source, trusted=True)
    heads = {"spatial.fc.weight", "spatial.fc.bias", "flow.fc.weight", "flow.fc.bias"}
    assert set(report.missing) == heads and not report.adapted
    assert len(report.loaded) == len(model.state_dict()) - len(heads)
    ours = model.state_dict()
    for stream, theirs in (("spatial", "spatial_classifier"), ("flow", "flow_classifier")):
        published = {k[len(theirs) + 3:]: v for k, v in state.items() if k.startswith(f"{theirs}.0.")}
        mine = {k[len(stream) + len(".backbone."):]: v for k, v in ours.items() if k.startswith(f"{stream}.backbone.")}
        assert published.keys() >= mine.keys() - {"fc.weight", "fc.bias"}
        for name in mine:
            torch.testing.assert_close(mine[name], published[name].to(mine[name].dtype), msg=f"{stream} {name}")
        # the published head is (700, features): the same feature width feeds ours
        assert state[f"{theirs}.1.weight"].shape[1] == ours[f"{stream}.fc.weight"].shape[1]


# published module kinds by name: a same-shaped tensor of another kind of layer would be a wrong role
_KINDS = {"conv": (torch.nn.Conv2d, torch.nn.Conv3d), "deconv": (torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d),
          "norm": (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)}


def _published_kind(name: str) -> str:
    """The kind of layer a published flow-generator tensor belongs to, from the authors' naming:
    (de)convs are element 0 of their Sequential, a BatchNorm element 1 (element 1 of a 2D deconv is
    its LeakyReLU, which has no tensors); predict_flow / upsampled_flow are bare (3D predict: .0)."""
    module = name.rsplit(".", 1)[0]
    if module.endswith(".1"):
        return "norm"
    return "deconv" if module.startswith(("deconv", "upsampled_flow")) else "conv"


@pytest.mark.parametrize("preset", ["DEG_f", "DEG_m", "DEG_s"])
def test_published_flow_generator_checkpoint_loads_completely(tmp_path, monkeypatch, preset):
    """Every tensor of the published flow generator (TinyMotionNet, MotionNet, TinyMotionNet3D)
    lands by name in the tensor of the same role here, checked by value and by layer kind;
    nothing is missing, nothing skipped, nothing matched by order."""
    from deg.presets import get_preset

    for init in ("kaiming_normal_", "zeros_"):   # overwritten by the load: skip initialising 46M weights
        monkeypatch.setattr(torch.nn.init, init, lambda tensor, *args, **kwargs: tensor)
    p = get_preset(preset)
    published = _distinct_values(_published(preset, "flow_generator"), seed=1)
    if preset == "DEG_f":   # the flow-generator training checkpoint, on disk
        torch.save({"epoch": 30, "state_dict": {f"model.{k}": v for k, v in published.items()}}, tmp_path / "fg.pt")
        source = tmp_path / "fg.pt"
    else:                   # a whole HiddenTwoStream checkpoint (a few stream tensors stand in), in memory
        streams = dict(list(_published(preset, "feature_extractor").items())[:4])
        state = {f"model.flow_generator.{k}": v for k, v in published.items()}
        state.update({f"model.{k}": v for k, v in _distinct_values(streams, seed=2).items()})
        source = {"epoch": 20, "state_dict": state}
    model = build_flow_generator(p.flow_generator, n_frames=p.n_flow_frames)
    report = maybe_load(model, source)
    assert not report.missing and not report.skipped and not report.by_order and not report.adapted
    assert sorted(report.loaded) == sorted(published)
    ours = model.state_dict()
    modules = dict(model.named_modules())
    for name, value in published.items():
        torch.testing.assert_close(ours[name], value, msg=name)
        assert isinstance(modules[name.rsplit(".", 1)[0]], _KINDS[_published_kind(name)]), name
    # the loaded network runs: the three scales of (N, 2(T-1), h, w) flows
    with torch.no_grad():
        flows = model.eval()(torch.randn(1, 3, p.n_flow_frames, 32, 32))
    assert [tuple(f.shape) for f in flows] == [(1, 2 * (p.n_flow_frames - 1), 32 // s, 32 // s) for s in (2, 4, 8)]
    assert all(torch.isfinite(f).all() for f in flows)
