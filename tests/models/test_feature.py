"""Two-stream feature extractors: 2D ResNet18 / ResNet50, 3D ResNet34."""
from __future__ import annotations

import math

import pytest
import torch

from deg.models.feature import FEATURE_EXTRACTORS, build_two_stream
from deg.models.flow import InputShapeError, channels_last
from deg.presets import PRESETS

from .conftest import K_PAPER, PAPER_PARAMS, assert_all_grads, n_params, rel_err

NAMES = ("resnet18", "resnet50", "resnet3d34")
RGB_FRAMES = {p.feature_extractor: p.n_rgb_frames for p in PRESETS.values()}


def test_registry_names():
    assert set(FEATURE_EXTRACTORS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_paper(name):
    with torch.device("meta"):
        model = build_two_stream(name, K_PAPER, n_rgb_frames=RGB_FRAMES[name])
    paper = PAPER_PARAMS[name]
    assert abs(n_params(model) - paper) / paper < 0.05, (name, n_params(model), paper)


@pytest.mark.parametrize("name", NAMES)
def test_output_shapes_meta(name):
    """Shapes at 64x64, 128x128 and the Sturman-FST frame 224x448, on the meta device."""
    with torch.device("meta"):
        model = build_two_stream(name, 5, n_rgb_frames=RGB_FRAMES[name]).eval()
        for hw in [(64, 64), (128, 128), (224, 448)]:
            out = model(torch.empty(1, 3, 11, *hw), torch.empty(1, 20, hw[0] // 2, hw[1] // 2))
            assert {k: tuple(v.shape) for k, v in out.items()} == {
                "logits": (1, 5), "spatial_logits": (1, 5), "flow_logits": (1, 5),
                "spatial_features": (1, 512), "flow_features": (1, 512)}, hw


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return build_two_stream("resnet18", 3).eval()


@pytest.fixture(scope="module")
def small_3d():
    """DEG_s extractor on 3 RGB frames / 2 flows: the same code as 11 / 10, a quicker backward."""
    torch.manual_seed(0)
    return build_two_stream("resnet3d34", 3, n_flow_frames=2, n_rgb_frames=3)


@pytest.fixture(scope="module")
def models_2d_3d(small_3d):
    torch.manual_seed(0)
    return {"resnet18": build_two_stream("resnet18", 3), "resnet50": build_two_stream("resnet50", 3),
            "resnet3d34": small_3d}


def test_forward_64_fusion_is_mean(resnet18):
    clip, flows = torch.randn(1, 3, 11, 64, 64), torch.randn(1, 20, 32, 32)
    with torch.no_grad():
        out = resnet18(clip, flows)
    torch.testing.assert_close(out["logits"], (out["spatial_logits"] + out["flow_logits"]) / 2)
    assert (out["spatial_features"] >= 0).all()  # post-ReLU average-pooled features
    assert not torch.equal(out["spatial_logits"], out["flow_logits"])


def test_spatial_stream_reads_only_the_centre_frame(resnet18):
    clip, flows = torch.randn(1, 3, 11, 32, 32), torch.randn(1, 20, 16, 16)
    other = torch.randn_like(clip)
    other[:, :, 5] = clip[:, :, 5]
    with torch.no_grad():
        a, b = resnet18(clip, flows), resnet18(other, flows)
        other[:, :, 5] += 1
        c = resnet18(other, flows)
    torch.testing.assert_close(a["spatial_logits"], b["spatial_logits"])
    assert not torch.allclose(a["spatial_logits"], c["spatial_logits"])
    torch.testing.assert_close(a["flow_logits"], c["flow_logits"])  # flows unchanged


def test_flow_stream_accepts_any_flow_resolution(resnet18):
    with torch.no_grad():
        out = resnet18(torch.randn(1, 3, 11, 64, 64), torch.randn(1, 20, 8, 16))
    assert out["flow_features"].shape == (1, 512)


def test_new_parameter_names():
    with torch.device("meta"):
        r18 = build_two_stream("resnet18", 3)
        r50 = build_two_stream("resnet50", 3)
    assert r18.spatial.new_parameter_names() == {"fc.weight", "fc.bias"}
    assert r50.flow.new_parameter_names() == {"fc.weight", "fc.bias", "reduce.0.weight", "reduce.0.bias"}
    assert "flow.reduce.0.weight" in r50.new_parameter_names()
    assert r50.spatial.reduce[0].weight.shape == (512, 2048)
    assert r18.flow.backbone.conv1.weight.shape == (64, 20, 7, 7)


def test_init_output_bias_is_log_ratio(resnet18):
    resnet18.init_output_bias([10, 1, 0], [90, 99, 100])
    expect = torch.tensor([math.log(10 / 90), math.log(1 / 99), math.log(1 / 100)])
    for stream in (resnet18.spatial, resnet18.flow):
        torch.testing.assert_close(stream.fc.bias.detach(), expect)
    # a model that only output its bias would predict the training prevalence
    torch.testing.assert_close(torch.sigmoid(expect[:2]), torch.tensor([0.1, 0.01]))
    with pytest.raises(ValueError, match="behaviours"):
        resnet18.init_output_bias([1, 2], [3, 4])


def test_bad_inputs(resnet18):
    with pytest.raises(InputShapeError, match="flows"):
        resnet18(torch.randn(1, 3, 11, 32, 32), torch.randn(1, 18, 16, 16))
    with pytest.raises(InputShapeError, match="clip"):
        resnet18(torch.randn(1, 11, 3, 32, 32), torch.randn(1, 20, 16, 16))


def test_3d_streams_read_frames_and_flows_as_depth(small_3d):
    model = small_3d.eval()
    flows = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 2)
    x = model.flow_input(flows)                     # (1, 2, 2, 2, 2): [x/y component, pair]
    assert x.shape == (1, 2, 2, 2, 2)
    assert x[0, :, :, 0, 0].tolist() == [[0, 2], [1, 3]]
    clip = torch.arange(7.0).view(1, 1, 7, 1, 1).expand(1, 3, 7, 4, 4)
    assert model.spatial_input(clip)[0, 0, :, 0, 0].tolist() == [2, 3, 4]  # centred on frame 3
    with torch.no_grad():
        out = model(torch.randn(1, 3, 7, 32, 32), torch.randn(1, 4, 16, 16))
    assert out["logits"].shape == (1, 3) and out["flow_features"].shape == (1, 512)


def _inputs(name: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip and flows for the fixture models; the 3D ones smaller (3 frames, 16 x 16) to stay quick."""
    if name == "resnet3d34":
        return torch.randn(n, 3, 3, 16, 16), torch.randn(n, 4, 8, 8)
    return torch.randn(n, 3, 11, 32, 32), torch.randn(n, 20, 16, 16)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(models_2d_3d, name):
    model = models_2d_3d[name].train()
    for stream in (model.spatial, model.flow):
        stream.dropout.p = 0.0  # dropout could zero a fc column's gradient by chance
    model.zero_grad()
    out = model(*_inputs(name, 2))
    (out["logits"].sum() + out["spatial_logits"].sum() + out["flow_logits"].sum()).backward()
    assert_all_grads(model)
    model.zero_grad()


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_bf16_close_to_float32(models_2d_3d, name):
    model = models_2d_3d[name].eval()
    clip, flows = _inputs(name, 1)
    with torch.no_grad():
        ref = model(clip, flows)
        channels_last(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(channels_last(clip), channels_last(flows))
    assert out["logits"].dtype == torch.bfloat16  # features may come out of a float32 pooling op
    for key in ref:
        assert rel_err(out[key], ref[key]) < 0.05, key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_mixed_precision(name):
    model = channels_last(build_two_stream(name, 3, n_rgb_frames=RGB_FRAMES[name]).cuda().eval())
    clip, flows = torch.randn(2, 3, 11, 64, 64, device="cuda"), torch.randn(2, 20, 32, 32, device="cuda")
    with torch.no_grad():
        ref = model(clip, flows)
        with torch.autocast("cuda", dtype=torch.float16):
            out = model(channels_last(clip), channels_last(flows))
    for key in ref:
        assert rel_err(out[key], ref[key]) < 0.05, key
