"""Losses: Charbonnier, SSIM, smoothness, MotionNet loss, focal loss, L2-SP, L2."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deg.losses import (L2SP, LossInputError, MotionNetLossConfig, bias_from_counts, charbonnier,
                        decayed_parameters, focal_loss, l2_penalty, motionnet_loss, pos_weight_from_counts,
                        smoothness, ssim)
from deg.presets import HPARAMS

EPS = HPARAMS["flow_eps"]
LOSS = MotionNetLossConfig.from_hparams(HPARAMS)            # the paper's constants
FOCAL = {"gamma": HPARAMS["focal_gamma"], "smoothing": HPARAMS["label_smoothing"]}


# --------------------------------------------------------------------------------------
# MotionNet loss pieces
# --------------------------------------------------------------------------------------
def test_charbonnier_hand_values():
    x = torch.tensor([3.0, 0.0, -1.0])
    torch.testing.assert_close(charbonnier(x, 0.5, eps=4.0), torch.tensor([5.0, 4.0, math.sqrt(17)]))
    # paper defaults: rho(0) = eps^(2 alpha), rho(1) ~ 1
    rho = charbonnier(torch.tensor([0.0, 1.0]), HPARAMS["flow_pixel_alpha"], EPS)
    torch.testing.assert_close(rho, torch.tensor([EPS ** 0.8, 1.0]))


def test_ssim_identical_and_constant_images():
    a = torch.rand(2, 3, 9, 7)
    torch.testing.assert_close(ssim(a, a), torch.tensor(1.0))
    x, y = torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 4, 4), 0.25)
    c1 = 0.01 ** 2
    expect = (2 * 0.5 * 0.25 + c1) / (0.5 ** 2 + 0.25 ** 2 + c1)   # variances are 0: the contrast term is 1
    torch.testing.assert_close(ssim(x, y, reduction="none"), torch.full((1, 1, 4, 4), expect))
    assert ssim(a, torch.rand_like(a)) < 0.5
    with pytest.raises(LossInputError):
        ssim(a, a[:, :2])


def test_smoothness_hand_value():
    h, w = 5, 6
    flow = torch.zeros(1, 4, h, w)                     # two frame pairs
    flow[:, 0] = torch.arange(w, dtype=torch.float32)  # pair 0: u = x, so du/dx = 1
    rho0 = EPS ** 0.6
    rho1 = (1 + EPS ** 2) ** 0.3
    pair0 = rho1 + 3 * rho0                            # rho(u_x) + rho(u_y) + rho(v_x) + rho(v_y)
    pair1 = 4 * rho0
    torch.testing.assert_close(smoothness(flow, 0.3, EPS), torch.tensor((pair0 + pair1) / 2))


def _moving_square(t: int = 3, size: int = 32, step: int = 2) -> torch.Tensor:
    """(1, 3, T, size, size): a smooth blob moving right by ``step`` pixels per frame."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    frames = [torch.exp(-((xs - 10 - step * i) ** 2 + (ys - 16) ** 2) / 18) for i in range(t)]
    return torch.stack(frames)[None, None].expand(1, 3, t, size, size).contiguous()


def _constant_flows(n: int, pairs: int, size: int, u: float, v: float) -> list[torch.Tensor]:
    flows = []
    for s in (2, 4, 8):
        f = torch.empty(n, 2 * pairs, size // s, size // s)
        f[:, 0::2], f[:, 1::2] = u / s, v / s         # the same motion in pixels of each scale
        flows.append(f)
    return flows


def test_motionnet_loss_prefers_true_flow():
    clip = _moving_square()
    # the blob moves +2 px per frame: I_t(x) = I_t+1(x + 2), so the true flow is u = +2 (forward motion)
    good, _ = motionnet_loss(clip, _constant_flows(1, 2, 32, 2.0, 0.0), LOSS)
    zero, _ = motionnet_loss(clip, _constant_flows(1, 2, 32, 0.0, 0.0), LOSS)
    wrong, _ = motionnet_loss(clip, _constant_flows(1, 2, 32, -2.0, 0.0), LOSS)
    assert good < 0.5 * zero and zero < wrong


@pytest.mark.parametrize("is_3d", [False, True])
def test_motionnet_loss_hand_value(is_3d):
    """Constant frames and constant flows: the warp is exact (border padding), SSIM = 1,
    the flow gradients are 0, so every term is known in closed form."""
    clip = torch.full((2, 3, 4, 16, 16), 0.3)
    flows = _constant_flows(2, 3, 16, 4.0, -8.0)       # |u| = 4/s, |v| = 8/s at scale s
    total, parts = motionnet_loss(clip, flows, LOSS, is_3d=is_3d)
    factor = HPARAMS["flow3d_smooth_factor"] if is_3d else 1.0
    pixel = 3 * EPS ** (2 * HPARAMS["flow_pixel_alpha"])
    smooth = sum(HPARAMS["flow_smooth_weights"]) * factor * 4 * EPS ** (2 * HPARAMS["flow_smooth_alpha"])
    sparsity = HPARAMS["flow3d_sparsity_weight"] * sum((4 / s + 8 / s) / 2 for s in (2, 4, 8)) if is_3d else 0.0
    assert parts["pixel"] == pytest.approx(pixel, rel=1e-4)
    assert parts["ssim"] == pytest.approx(0.0, abs=1e-6)
    assert parts["smooth"] == pytest.approx(smooth, rel=1e-4)
    assert parts["sparsity"] == pytest.approx(sparsity, rel=1e-5)
    assert float(total) == pytest.approx(pixel + smooth + sparsity, rel=1e-4, abs=1e-6)
    assert parts["total"] == pytest.approx(float(total))


def test_motionnet_loss_gradients_and_errors():
    clip = _moving_square(t=3)
    flows = [f.requires_grad_() for f in _constant_flows(1, 2, 32, -1.0, 0.5)]
    total, _ = motionnet_loss(clip, flows, LOSS)
    total.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in flows)
    with pytest.raises(LossInputError, match="2\\(T-1\\)"):
        motionnet_loss(clip, [torch.zeros(1, 6, 16, 16)], LOSS)
    with pytest.raises(LossInputError):
        motionnet_loss(clip[:, 0], flows, LOSS)


# --------------------------------------------------------------------------------------
# Focal loss
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 7)])
def test_focal_gamma0_no_smoothing_equals_weighted_bce(shape):
    torch.manual_seed(0)
    logits = 3 * torch.randn(shape)
    targets = (torch.rand(shape) < 0.3).float()
    w = torch.tensor([1.0, 2.0, 0.5, 4.0])
    ours = focal_loss(logits, targets, w, gamma=0.0, smoothing=0.0)
    pw = w if len(shape) == 2 else w.view(4, 1)
    ref = nn.BCEWithLogitsLoss(pos_weight=pw)(logits, targets)
    torch.testing.assert_close(ours, ref)


def test_focal_hand_value():
    # logit 0 -> p = 1/2; y = 1 -> y' = 0.95; w = 2; gamma = 1:
    # l = -[2 (1/2) 0.95 log(1/2) + (1/2) 0.05 log(1/2)] = 0.975 log 2
    loss = focal_loss(torch.zeros(1, 1), torch.ones(1, 1), torch.tensor([2.0]), gamma=1.0, smoothing=0.05)
    torch.testing.assert_close(loss, torch.tensor(0.975 * math.log(2)))
    # a confident correct prediction is down-weighted by the focal term
    easy = focal_loss(torch.full((1, 1), 4.0), torch.ones(1, 1), None, gamma=1.0, smoothing=0.0)
    plain = focal_loss(torch.full((1, 1), 4.0), torch.ones(1, 1), None, gamma=0.0, smoothing=0.0)
    torch.testing.assert_close(easy, plain * torch.sigmoid(torch.tensor(-4.0)))


def test_focal_ignores_unlabelled():
    torch.manual_seed(1)
    logits = torch.randn(5, 3, requires_grad=True)
    targets = torch.tensor([[1, 0, -1], [0, 0, 1], [-1, -1, -1], [1, 1, 0], [0, -1, 1]], dtype=torch.float32)
    w = torch.tensor([1.5, 1.0, 3.0])
    loss = focal_loss(logits, targets, w, **FOCAL)
    keep = targets >= 0
    per = torch.stack([focal_loss(logits[i:i + 1, k:k + 1], targets[i:i + 1, k:k + 1], w[k:k + 1], **FOCAL)
                       for i, k in keep.nonzero().tolist()])
    torch.testing.assert_close(loss, per.mean())
    loss.backward()
    assert (logits.grad[~keep] == 0).all() and (logits.grad[keep] != 0).all()
    nothing = focal_loss(logits, torch.full((5, 3), -1.0), None, **FOCAL)
    assert float(nothing.detach()) == 0.0 and nothing.requires_grad


def test_focal_bad_inputs():
    with pytest.raises(LossInputError, match="shape"):
        focal_loss(torch.zeros(2, 3), torch.zeros(2, 4), None, **FOCAL)
    with pytest.raises(LossInputError, match="0, 1 or -1"):
        focal_loss(torch.zeros(2, 3), torch.full((2, 3), 2.0), None, **FOCAL)
    with pytest.raises(LossInputError, match="pos_weight"):
        focal_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2), **FOCAL)


def test_counts_to_weights_and_biases():
    torch.testing.assert_close(pos_weight_from_counts([1, 10, 0], [16, 10, 81], beta=HPARAMS["pos_weight_beta"]), torch.tensor([2.0, 1.0, 3.0]))
    torch.testing.assert_close(pos_weight_from_counts([1], [100], beta=1.0), torch.tensor([100.0]))
    torch.testing.assert_close(bias_from_counts([1, 50], [99, 50]), torch.tensor([math.log(1 / 99), 0.0]))
    assert torch.isfinite(bias_from_counts([0], [1000])).all()
    with pytest.raises(LossInputError):
        pos_weight_from_counts([1, 2], [3], beta=HPARAMS["pos_weight_beta"])
    with pytest.raises(LossInputError):
        bias_from_counts([-1], [3])


# --------------------------------------------------------------------------------------
# Regularisation
# --------------------------------------------------------------------------------------
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2, 1)


def test_decayed_parameters_exclude_bias_and_norm():
    assert set(decayed_parameters(_Net())) == {"conv.weight", "fc.weight"}


def test_l2sp_hand_value_and_gradient():
    net = _Net()
    with torch.no_grad():
        net.conv.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
        net.fc.weight.copy_(torch.tensor([[3.0, 4.0]]))
    reference = {k: v.clone() for k, v in net.state_dict().items()}
    penalty = L2SP(net, alpha=0.1, beta=0.01, reference=reference, new_names={"fc.weight"})
    assert penalty.pretrained_names == ["conv.weight"] and penalty.new_names == ["fc.weight"]
    # at the reference: only the new weights count, beta/2 * (9 + 16)
    torch.testing.assert_close(penalty(), torch.tensor(0.01 / 2 * 25))
    with torch.no_grad():
        net.conv.weight.add_(torch.tensor([1.0, -2.0]).view(2, 1, 1, 1))   # moves by (1, -2)
        net.conv.bias.add_(100.0)                                          # biases are not penalised
        net.bn.weight.add_(100.0)                                          # nor normalisation parameters
    value = penalty()
    torch.testing.assert_close(value, torch.tensor(0.1 / 2 * 5 + 0.01 / 2 * 25))
    value.backward()
    torch.testing.assert_close(net.conv.weight.grad.flatten(), 0.1 * torch.tensor([1.0, -2.0]))
    torch.testing.assert_close(net.fc.weight.grad, 0.01 * torch.tensor([[3.0, 4.0]]))
    assert net.conv.bias.grad is None and list(penalty.parameters()) == []


def test_l2sp_without_reference_is_plain_l2():
    net = _Net()
    expect = 0.5 / 2 * (net.conv.weight.detach() ** 2).sum() + 0.5 / 2 * (net.fc.weight.detach() ** 2).sum()
    torch.testing.assert_close(L2SP(net, alpha=1.0, beta=0.5)(), expect)
    torch.testing.assert_close(l2_penalty(net, 0.5), expect)
    # a reference of another shape is not a reference: that weight counts as new
    p = L2SP(net, 1.0, 0.5, reference={"fc.weight": torch.zeros(3, 2)})
    assert p.new_names == ["conv.weight", "fc.weight"]


# --------------------------------------------------------------------------------------
# Overrides reach every term they name (get_profile -> the run's hparams -> the loss)
# --------------------------------------------------------------------------------------
def _run_hparams(**overrides) -> dict:
    """The complete HPARAMS of a run with ``overrides``, as deg.pipeline builds them."""
    from deg.pipeline import resolve_profile

    return resolve_profile("tiny", overrides)[1]


def _flow_parts(hparams: dict, is_3d: bool) -> dict[str, float]:
    torch.manual_seed(0)
    clip = torch.rand(1, 3, 3, 16, 16)
    flows = [torch.randn(1, 4, 16 // s, 16 // s) for s in (2, 4, 8)]
    return motionnet_loss(clip, flows, MotionNetLossConfig.from_hparams(hparams), is_3d=is_3d)[1]


@pytest.mark.parametrize("name, value, terms, is_3d", [
    ("flow_pixel_weight", 2.0, {"pixel"}, False),
    ("flow_pixel_alpha", 0.6, {"pixel"}, False),
    ("flow_ssim_weight", 0.5, {"ssim"}, False),
    ("flow_smooth_weights", (0.1, 0.2, 0.4), {"smooth"}, False),
    ("flow_smooth_alpha", 0.45, {"smooth"}, False),
    ("flow_eps", 0.5, {"pixel", "smooth"}, False),           # the Charbonnier epsilon of both terms
    ("flow3d_sparsity_weight", 0.5, {"sparsity"}, True),
    ("flow3d_smooth_factor", 1.0, {"smooth"}, True),
])
def test_flow_loss_override_changes_exactly_its_terms(name, value, terms, is_3d):
    base = _flow_parts(_run_hparams(), is_3d)
    over = _flow_parts(_run_hparams(**{name: value}), is_3d)
    changed = {t for t in ("pixel", "ssim", "smooth", "sparsity") if over[t] != pytest.approx(base[t], rel=1e-9, abs=0)}
    assert changed == terms, (name, base, over)


def _classification_value(hparams: dict) -> float:
    from deg.train.common import classification_loss

    torch.manual_seed(0)
    logits, targets = torch.randn(16, 3), (torch.rand(16, 3) > 0.7).float()
    loss = classification_loss(hparams, positives=[2.0, 5.0, 9.0], negatives=[14.0, 11.0, 7.0])
    return float(loss(logits, targets))


@pytest.mark.parametrize("name, value", [("focal_gamma", 2.0), ("label_smoothing", 0.2), ("pos_weight_beta", 1.0)])
def test_classification_loss_override_changes_its_value(name, value):
    assert _classification_value(_run_hparams(**{name: value})) != pytest.approx(_classification_value(_run_hparams()))


@pytest.mark.parametrize("stage, name, value", [
    ("flow", "flow_l2sp_alpha", 1.0), ("feature", "fe_l2sp_alpha", 1.0), ("feature", "fe_l2sp_beta", 1.0),
    ("sequence", "sequence_l2_alpha", 1.0)])
def test_weight_penalty_override_changes_its_value(stage, name, value):
    """Each stage's regulariser, built from the run's hparams, at weights moved off the reference."""
    import importlib

    from deg.models.feature import build_two_stream
    from deg.models.flow import build_flow_generator
    from deg.models.sequence import build_sequence_model

    module = importlib.import_module(f"deg.train.{stage}")
    torch.manual_seed(0)
    build = {"flow": lambda: build_flow_generator("tinymotionnet", n_frames=3),
             "feature": lambda: build_two_stream("resnet18", n_classes=3, n_flow_frames=3),
             "sequence": lambda: build_sequence_model("tgm", n_features=8, n_classes=3)}[stage]

    model = build()
    default = module.regulariser(model, _run_hparams())
    overridden = module.regulariser(model, _run_hparams(**{name: value}))   # same reference weights
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    assert default.value() > 0 and overridden.value() != pytest.approx(default.value())
