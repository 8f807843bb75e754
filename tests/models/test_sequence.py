"""TGM sequence model."""
from __future__ import annotations

import math

import pytest
import torch

from deg.models.flow import InputShapeError, channels_last
from deg.models.sequence import SEQUENCE_MODELS, TGM, TGMLayer, build_sequence_model
from deg.presets import HPARAMS, PRESETS

from .conftest import K_PAPER, assert_all_grads, n_params, rel_err

L = HPARAMS["tgm_filter_length"]
HALF = L // 2
# Paper, Methods "Sequence models": "The total number of parameters was ~264,000" (Table 2 rounds to 250K).
PAPER_TGM_TEXT = 264_000


def test_registry_and_parameter_count():
    assert set(SEQUENCE_MODELS) == {"tgm"}
    model = build_sequence_model("tgm", 1024, n_classes=K_PAPER)
    n = n_params(model)
    assert abs(n - PAPER_TGM_TEXT) / PAPER_TGM_TEXT < 0.05, n
    table = PRESETS["DEG_f"].paper_params_m[2] * 1e6
    assert abs(n - table) / table < 0.07, n  # Table 2's rounded 250K
    with pytest.raises(ValueError, match="n_classes"):
        build_sequence_model("tgm", 1024)


@pytest.mark.parametrize("kernel", ["cauchy", "gaussian"])
def test_kernels_non_negative_sum_to_one(kernel):
    layer = TGMLayer(c_in=3, c_out=5, kernel=kernel)
    with torch.no_grad():
        layer.center.copy_(torch.linspace(-8, 8, layer.n_filters))   # saturating tanh: centres at the ends
        layer.width.copy_(torch.linspace(-5, 5, layer.n_filters))
    f, k = layer.filters(), layer.kernels()
    assert f.shape == (HPARAMS["tgm_n_filters"], L) and k.shape == (5, 3, L)
    assert (f >= 0).all() and (k >= 0).all()
    torch.testing.assert_close(f.sum(-1), torch.ones(f.shape[0]))
    torch.testing.assert_close(k.sum(-1), torch.ones(5, 3))
    # centres stay inside [0, L-1]: the peak of each filter is a valid tap, and the extreme ones are at the ends
    peaks = f.argmax(-1)
    assert peaks[0] == 0 and peaks[-1] == L - 1


def test_cauchy_has_heavier_tails_than_gaussian():
    c, g = TGMLayer(kernel="cauchy"), TGMLayer(kernel="gaussian")
    with torch.no_grad():
        for layer in (c, g):
            layer.center.zero_()   # centre (L-1)/2
    fc, fg = c.filters()[0], g.filters()[0]
    assert fc[0] > 10 * fg[0]
    assert fc.argmax() == fg.argmax() == HALF


def test_layer_impulse_response_confined_to_L_and_sums_to_one():
    layer = TGMLayer(c_in=1, c_out=4)
    x = torch.zeros(1, 1, 60, 3)                        # (N, C_in, T, D)
    x[0, 0, 30, 1] = 1.0
    with torch.no_grad():
        y = layer(x)                                    # (1, 4, 60, 3)
    assert y.shape == (1, 4, 60, 3)
    assert y[..., [0, 2]].abs().max() == 0              # feature dimensions never mix
    resp = y[0, :, :, 1]                                # (4, 60)
    outside = torch.ones(60, dtype=torch.bool)
    outside[30 - HALF: 30 + HALF + 1] = False
    assert resp[:, outside].abs().max() == 0
    torch.testing.assert_close(resp.sum(-1), torch.ones(4))
    torch.testing.assert_close(resp[:, ~outside].flip(-1), layer.kernels()[:, 0].detach())


def test_tgm_features_match_a_per_dimension_reference():
    """The time-major layers equal filtering each feature dimension along time on its own (a
    cross-correlation, as torch convolutions are):
    h_o = mean_i (kernel[o, i] * h_i) with zero padding, then the max over output channels."""
    torch.manual_seed(0)
    model = TGM(6, 2, n_layers=2).eval()
    x = torch.randn(2, 6, 40)                            # (N, D, T)
    with torch.no_grad():
        got = model.tgm_features(x)
        h = x.unsqueeze(1)                               # (N, 1, D, T)
        for layer in model.tgm:
            k = layer.kernels()                          # (C_out, C_in, L)
            h = h.expand(-1, layer.c_in, -1, -1)
            out = torch.zeros(h.shape[0], layer.c_out, *h.shape[2:])
            for o in range(layer.c_out):
                for i in range(layer.c_in):
                    for d in range(h.shape[2]):
                        out[:, o, d] += torch.nn.functional.conv1d(h[:, i, d][:, None], k[o, i][None, None],
                                                                   padding=L // 2)[:, 0] / layer.c_in
            h = out
        expect = h.amax(dim=1)
    torch.testing.assert_close(got, expect)


def test_hard_attention_variant():
    layer = TGMLayer(c_in=2, c_out=3, soft_attention=False)
    assert layer(torch.randn(2, 2, 20, 5)).shape == (2, 3, 20, 5)
    model = TGM(16, 2, soft_attention=False)
    assert model(torch.randn(2, 16, 20)).shape == (2, 2, 20)


def test_model_shapes_receptive_field_and_dropout():
    model = TGM(32, 3).eval()
    x = torch.randn(2, 32, 90)
    with torch.no_grad():
        base = model(x)
        bumped = x.clone()
        bumped[:, :, 45] += 3.0
        diff = (model(bumped) - base).abs().amax(dim=(0, 1))   # (T,)
    reach = HPARAMS["tgm_n_layers"] * HALF
    assert base.shape == (2, 3, 90)
    assert diff[: 45 - reach].max() == 0 and diff[45 + reach + 1:].max() == 0
    assert diff[45] > 0 and diff[45 - reach: 45 + reach + 1].gt(0).sum() > 2 * HALF
    model.train()
    assert not torch.equal(model(x), model(x))   # input and output dropout are active in training


def test_late_fusion_averages_two_heads():
    model = TGM(8, 2).eval()
    x = torch.randn(1, 8, 30)
    with torch.no_grad():
        expect = (model.input_head(x) + model.tgm_head(model.tgm_features(x))) / 2
        torch.testing.assert_close(model(x), expect)
        # zeroing the TGM head leaves half of the input head
        model.tgm_head[-1].weight.zero_()
        model.tgm_head[-1].bias.zero_()
        torch.testing.assert_close(model(x), model.input_head(x) / 2)


def test_init_output_bias():
    model = TGM(8, 3)
    model.init_output_bias([5, 0, 50], [95, 100, 50])
    expect = torch.tensor([math.log(5 / 95), math.log(1 / 100), 0.0])
    for head in (model.input_head, model.tgm_head):
        torch.testing.assert_close(head[-1].bias.detach(), expect)
    with pytest.raises(ValueError):
        model.init_output_bias([1, 2], [3, 4])


def test_gradients_reach_every_parameter():
    model = TGM(16, 3, input_dropout=0.0, output_dropout=0.0).train()
    model(torch.randn(2, 16, 40)).sum().backward()
    assert_all_grads(model)


def test_channels_last_bf16_close_to_float32():
    model = build_sequence_model("tgm", 1024, n_classes=4).eval()
    x = torch.randn(1, 1024, 40)
    with torch.no_grad():
        ref = model(x)
        channels_last(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16 and rel_err(out, ref) < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_mixed_precision():
    model = build_sequence_model("tgm", 1024, n_classes=4).cuda().eval()
    x = torch.randn(2, 1024, 64, device="cuda")
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cuda", dtype=torch.float16):
            out = model(x)
    assert rel_err(out, ref) < 0.05


def test_bad_inputs():
    with pytest.raises(ValueError, match="odd"):
        TGMLayer(length=14)
    with pytest.raises(ValueError, match="kernel"):
        TGMLayer(kernel="laplace")
    with pytest.raises(InputShapeError, match="D=8"):
        TGM(8, 2)(torch.randn(1, 9, 10))
