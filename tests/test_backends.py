"""deg.backends on small stand-in models (any nn.Module flow generator and two-stream model).

The backends trace modules and read none of their internals, so these tests use small
convolutional stand-ins with the same interfaces (fast to export and quantise); the real DEG_f
models of a trained tiny run are checked through deg.infer in tests/test_infer.py, and every
preset at full size by ``make bench`` (README, "Speed"). Agreement is measured on sigmoid
probabilities of a fixed linear read-out, as the TGM turns features into probabilities.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deg import backends

T, SIZE, N_CLIPS, CHECK = 5, 16, 12, 4     # frames per clip, image size, clips, calibration clips
needs_ort = pytest.mark.skipif(not backends.available("onnxruntime"), reason="onnxruntime not installed")


class StandInFlow(nn.Module):
    """(N, 3, T, H, W) -> [flows (N, 2(T-1), H/2, W/2)] (finest first, like deg.models.flow)."""

    def __init__(self):
        super().__init__()
        # a transposed conv as in the U-Net flow generators: int8 exports it as a sub-pixel conv
        self.net = nn.Sequential(nn.Conv2d(3 * T, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                 nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.ReLU(),
                                 nn.Conv2d(8, 2 * (T - 1), 3, 2, 1))

    def forward(self, clip):
        n, c, t, h, w = clip.shape
        return [torch.tanh(self.net(clip.transpose(1, 2).reshape(n, c * t, h, w)))]


class StandInTwoStream(nn.Module):
    """(clip, flows) -> {"spatial_features" (N, 8), "flow_features" (N, 8), ...} like TwoStream."""

    def __init__(self):
        super().__init__()
        self.spatial = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.flow = nn.Sequential(nn.Conv2d(2 * (T - 1), 8, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())

    def forward(self, clip, flows):
        return {"spatial_features": self.spatial(clip[:, :, T // 2]), "flow_features": self.flow(flows),
                "logits": torch.zeros(len(clip), 3)}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    flow_model, feature_model = StandInFlow().eval(), StandInTwoStream().eval()
    gen = torch.Generator().manual_seed(1)
    clips = torch.randn(N_CLIPS, 3, T, SIZE, SIZE, generator=gen)
    readout = torch.randn(16, 3, generator=torch.Generator().manual_seed(2)).numpy()

    def probs(features: np.ndarray) -> np.ndarray:          # (n, 16) -> (n, 3)
        return 1.0 / (1.0 + np.exp(-(features - features.mean(0)) @ readout))

    return flow_model, feature_model, clips, probs


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: each model is exported (and quantised) once."""
    return tmp_path_factory.mktemp("backend_cache")


@needs_ort
def test_onnxruntime_float32_agrees_and_is_cached(models, cache):
    flow_model, feature_model, clips, probs = models
    ref = backends.eager(flow_model, feature_model).features(clips)
    assert ref.shape == (N_CLIPS, 16) and ref.dtype == np.float32
    before = set(cache.iterdir())
    ort = backends.build("onnxruntime", flow_model, feature_model, clips.shape[1:], cache)
    feats = ort.features(clips)
    assert feats.shape == ref.shape and np.abs(feats - ref).max() < 1e-5
    agree = backends.agreement(probs(ref), probs(feats))
    assert agree["max_abs_diff"] <= backends.TOLERANCE["onnxruntime"] and agree["flip_fraction"] == 0.0
    # a non-contiguous clip (as standardised decoded frames are) gives the same features
    assert np.abs(ort.features(clips.permute(0, 2, 3, 4, 1).contiguous().permute(0, 4, 1, 2, 3)) - feats).max() == 0

    # same weights and shape: the cached model is reused; anything in the key changed: another folder
    model_dir = Path(ort.info["model"]).parent
    assert model_dir.parent == cache and sorted(p.name for p in model_dir.iterdir()) == ["key.json", "model.onnx"]
    assert backends.versions()["onnxruntime"] in (model_dir / "key.json").read_text()
    after = set(cache.iterdir())
    assert after - before == {model_dir}
    mtime = (model_dir / "model.onnx").stat().st_mtime_ns
    backends.build("onnxruntime", flow_model, feature_model, clips.shape[1:], cache)
    assert set(cache.iterdir()) == after and (model_dir / "model.onnx").stat().st_mtime_ns == mtime
    other = StandInTwoStream().eval()
    assert backends.weights_hash(flow_model, other) != backends.weights_hash(flow_model, feature_model)
    assert backends.model_dir(cache, "onnxruntime", flow_model, feature_model, clips.shape[1:])[0] == model_dir
    for changed in (dict(feature_model=other), dict(clip_shape=(3, T, SIZE, 2 * SIZE)), dict(name="onnxruntime-int8"),
                    dict(calibration=clips[:CHECK].numpy())):
        args = dict(name="onnxruntime", flow_model=flow_model, feature_model=feature_model,
                    clip_shape=clips.shape[1:])
        args.update(changed)
        assert backends.model_dir(cache, **args)[0] != model_dir, changed


@needs_ort
def test_int8_agrees_within_its_tolerance(models, cache, tmp_path):
    flow_model, feature_model, clips, probs = models
    ref = backends.eager(flow_model, feature_model).features(clips)
    q = backends.build("onnxruntime-int8", flow_model, feature_model, clips.shape[1:], cache,
                       calibration=clips[:CHECK].numpy())
    assert q.info["calibration_clips"] == CHECK and "int8" in (Path(q.info["model"]).parent / "key.json").read_text()
    feats = q.features(clips)
    agree = backends.agreement(probs(ref), probs(feats))
    assert 0.0 < np.abs(feats - ref).max()                       # quantised: not the float32 numbers
    assert agree["max_abs_diff"] <= backends.TOLERANCE["onnxruntime-int8"] and agree["flip_fraction"] <= 0.25
    with pytest.raises(backends.BackendError, match="calibration"):
        backends.build("onnxruntime-int8", flow_model, feature_model, clips.shape[1:], tmp_path)


@needs_ort
def test_int8_quantises_every_conv_but_the_spatial_streams_even_with_equal_biases(models, tmp_path):
    """Freshly initialised models have equal conv biases, which the exporter stores once behind
    Identity nodes; without unsharing them the quantiser left those convs in float32 (slower
    than no quantisation at all). The spatial stream stays float32 by design (KEEP_FLOAT)."""
    import onnx

    clips = models[2]
    flow_model, feature_model = StandInFlow().eval(), StandInTwoStream().eval()
    convs = [m for m in (*flow_model.modules(), *feature_model.modules())
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        for m in convs:
            m.bias.fill_(0.25)                               # all four biases equal
    q = backends.build("onnxruntime-int8", flow_model, feature_model, clips.shape[1:], tmp_path,
                       calibration=clips[:CHECK].numpy(), subpixel=True)
    assert q.info["subpixel"] is True
    float_graph = onnx.load(next(p for p in tmp_path.rglob("model.onnx") if p != Path(q.info["model"]))).graph
    assert [n.op_type for n in float_graph.node].count("DepthToSpace") == 1       # the sub-pixel deconv
    inits = {t.name for t in float_graph.initializer}
    assert not [n for n in float_graph.node if n.op_type == "Identity" and n.input[0] in inits]
    graph = onnx.load(q.info["model"]).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    conv_nodes = {n.name: [made_by.get(i) for i in n.input] for n in graph.node if n.op_type == "Conv"}
    assert len(conv_nodes) == len(convs) == 5 and not [n for n in graph.node if n.op_type == "ConvTranspose"]
    for name, inputs in conv_nodes.items():
        if name.startswith("/feature_model/spatial/"):       # float32: weights and bias are initializers
            assert inputs[1:] == [None, None], name
        else:                                                # data, weight and bias all quantised
            assert inputs == ["DequantizeLinear"] * 3, name
    assert sum(n.startswith("/feature_model/spatial/") for n in conv_nodes) == 1


@needs_ort
def test_int8_without_subpixel_keeps_the_transposed_conv_and_is_keyed_apart(models, cache):
    import onnx

    flow_model, feature_model, clips, probs = models
    calib = clips[:CHECK].numpy()
    plain = backends.build("onnxruntime-int8", flow_model, feature_model, clips.shape[1:], cache,
                           calibration=calib, subpixel=False)
    sub = backends.build("onnxruntime-int8", flow_model, feature_model, clips.shape[1:], cache,
                         calibration=calib, subpixel=True)
    assert plain.info["model"] != sub.info["model"]           # the export is part of the cache key
    ops = [n.op_type for n in onnx.load(plain.info["model"]).graph.node]
    assert "ConvTranspose" in ops and "DepthToSpace" not in ops
    ref = probs(backends.eager(flow_model, feature_model).features(clips))
    for b in (plain, sub):
        assert backends.agreement(ref, probs(b.features(clips)))["max_abs_diff"] <= backends.TOLERANCE[b.name]
    assert backends.int8_dot_products() == bool({"avx512_vnni", "avx_vnni", "amx_int8"}
                                                 & set(Path("/proc/cpuinfo").read_text().split()))


def test_subpixel_deconv_is_the_transposed_conv():
    gen = torch.Generator().manual_seed(3)
    for cin, cout, h, w, bias in ((5, 7, 6, 9, True), (3, 2, 1, 4, False), (16, 8, 8, 8, True)):
        deconv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias)
        with torch.no_grad():
            deconv.weight.normal_(generator=gen)
            if bias:
                deconv.bias.normal_(generator=gen)
        x = torch.randn(2, cin, h, w, generator=gen)
        with torch.no_grad():
            expected, got = deconv(x), backends.SubPixelDeconv2d(deconv)(x)
        assert got.shape == expected.shape == (2, cout, 2 * h, 2 * w)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * float(expected.abs().max()))
    net = nn.Sequential(nn.ConvTranspose2d(4, 4, 4, 2, 1), nn.ConvTranspose2d(4, 4, 3, 1, 1))
    copy = backends.subpixel_deconvs(net)
    assert isinstance(copy[0], backends.SubPixelDeconv2d) and isinstance(copy[1], nn.ConvTranspose2d)
    assert isinstance(net[0], nn.ConvTranspose2d)                   # the run's own model is untouched
    with pytest.raises(ValueError, match="stride-2"):
        backends.SubPixelDeconv2d(net[1])


@needs_ort
def test_select_keeps_only_agreeing_backends(models, cache, caplog):
    flow_model, feature_model, clips, probs = models
    chosen, report = backends.select(flow_model, feature_model, clips.shape[1:], cache, clips[:CHECK], probs,
                                     candidates=backends.NAMES)
    assert [r["backend"] for r in report] == list(backends.NAMES) and all(r["ok"] for r in report)
    assert chosen.name == max(report, key=lambda r: r["clips_per_s"])["backend"]
    # a backend outside its tolerance (here a negative one, which nothing meets) is refused: eager
    with caplog.at_level(logging.WARNING, logger="deg.backends"):
        chosen, report = backends.select(flow_model, feature_model, clips.shape[1:], cache, clips[:CHECK], probs,
                                         candidates=("onnxruntime",), tolerance={"onnxruntime": -1.0})
    assert chosen.name == "eager" and not report[1]["ok"] and "disagrees with eager" in report[1]["reason"]
    assert "backend onnxruntime skipped" in caplog.text


@needs_ort
def test_a_module_that_cannot_be_exported_falls_back_with_a_reason(models, cache, caplog):
    flow_model, _, clips, probs = models

    class DataDependent(StandInTwoStream):
        def forward(self, clip, flows):          # numpy inside forward: the trace loses it
            out = super().forward(clip, flows)
            out["spatial_features"] = torch.from_numpy(out["spatial_features"].numpy().copy())
            return out

    with pytest.raises(backends.BackendError, match="ONNX export failed"):
        backends.build("onnxruntime", flow_model, DataDependent().eval(), clips.shape[1:], cache)
    with caplog.at_level(logging.WARNING, logger="deg.backends"):
        chosen, report = backends.select(flow_model, DataDependent().eval(), clips.shape[1:], cache,
                                         clips[:CHECK], probs, candidates=("onnxruntime",))
    assert chosen.name == "eager" and "ONNX export failed" in report[1]["reason"] and "skipped" in caplog.text


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        backends.available("tensorrt")
