"""Selfee pieces (deg.models.selfsup): live frames, losses, collapse level, k-NN, mode filter, a short training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deg.models import selfsup as S


def test_live_frames_put_past_current_future_in_rgb_and_repeat_current_at_the_ends():
    grey = np.arange(10, dtype=np.uint8) * 20                       # frame t is uniformly 20 t
    frames = np.repeat(grey[:, None, None, None], 3, axis=3) * np.ones((1, 4, 5, 1), np.uint8)
    out = S.live_frames(frames, [0, 5, 9], interval=2)
    assert out.shape == (3, 4, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1, 0, 0], [60, 100, 140])     # t-2, t, t+2
    np.testing.assert_array_equal(out[0, 0, 0], [0, 0, 40])          # no past: the current frame
    np.testing.assert_array_equal(out[2, 0, 0], [140, 180, 180])     # no future: the current frame
    assert S.live_interval(30.0) == 2 and S.live_interval(10.0) == 1


def test_simsiam_loss_values_and_stop_gradient():
    z = torch.randn(6, 8)
    assert float(S.simsiam_loss(z, z, z, z)) == pytest.approx(0.0, abs=1e-6)
    assert float(S.simsiam_loss(-z, z, -z, z)) == pytest.approx(4.0, abs=1e-6)
    p1, z1, p2, z2 = (torch.randn(6, 8, requires_grad=True) for _ in range(4))
    S.simsiam_loss(p1, z1, p2, z2).backward()
    assert z1.grad is None and z2.grad is None, "targets must be stop-gradient"
    assert p1.grad is not None and p1.grad.abs().sum() > 0


def test_cld_loss_on_two_clean_groups_matches_the_closed_form():
    e1, e2 = torch.eye(2)
    g = torch.stack([e1, e2, e1, e2, e1, e2])                     # first k rows seed the 2 clusters
    labels, centroids = S.kmeans(g, k=2, iters=5)
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]
    tau = 0.5                                                     # (float32 resolves this one)
    expected = math.log1p(math.exp(-1 / tau))                     # CE of logits (1, 0) / tau
    assert float(S.cld_loss(g, g, k=2, iters=5, temperature=tau)) == pytest.approx(expected, rel=1e-4)
    # the other view grouped the other way round: every sample now sits in the "wrong" group
    swapped = torch.stack([e1, e2, e2, e1, e1, e2])
    assert float(S.cld_loss(g, swapped, k=2, iters=5, temperature=tau)) > 5 * expected   # 0.79 vs 0.13


def test_collapse_level_detects_collapse():
    collapsed = torch.ones(64, 32) + 1e-4 * torch.randn(64, 32)
    spread = torch.randn(512, 32)
    assert S.collapse_level(collapsed) > 0.95
    assert abs(S.collapse_level(spread)) < 0.1


def test_knn_beats_chance_on_separable_behaviours():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    cls = rng.integers(0, 3, 600)
    x = centres[cls] + rng.normal(size=(600, 16))
    y = np.eye(3, dtype=int)[cls]
    ref, query = slice(0, 400), slice(400, 600)
    scores = S.knn_scores(x[ref], y[ref], x[query], k=20)
    assert scores.shape == (200, 3) and ((scores >= 0) & (scores <= 1)).all()
    acc = (scores.argmax(1) == cls[query]).mean()
    shuffled = S.knn_scores(x[ref], y[ref][rng.permutation(400)], x[query], k=20)
    chance = (shuffled.argmax(1) == cls[query]).mean()
    assert acc > 0.95 and chance < 0.6
    with pytest.raises(ValueError):
        S.knn_scores(x[ref], np.where(y[ref] == 1, -1, 0), x[query])


def test_mode_filter_and_window_mean():
    x = np.array([[0], [1], [0], [1], [1], [0], [0], [0]])
    np.testing.assert_array_equal(S.mode_filter(x, 3).ravel(), [0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(S.window_mean(x.astype(float), 3).ravel()[:3], [0.5, 1 / 3, 2 / 3])


def test_augment_gives_two_different_views_in_range_reproducibly():
    x = torch.rand(4, 3, 16, 16)
    aug = S.SelfeeAugment()
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    torch.testing.assert_close(a, b)
    assert (a - c).abs().mean() > 0.02


def test_selfee_network_on_the_deg_backbone():
    model = S.build_selfee("resnet18")
    out = model(torch.rand(2, 3, 16, 16))
    assert out["z"].shape == out["p"].shape == (2, 512) and out["g"].shape == (2, 256)
    torch.testing.assert_close(out["g"].norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="2D backbone"):
        S.build_selfee("resnet3d34")


def test_a_short_pretraining_lowers_the_loss_without_collapse():
    torch.manual_seed(0)
    # a small backbone keeps the test fast; the network around it is Selfee's
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                                   torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    model = S.SimSiamCLD(backbone, width=32)
    # 32 images: a square of a random colour at a random place
    g0 = torch.Generator().manual_seed(0)
    x = torch.full((32, 3, 16, 16), 0.1)
    corner = torch.randint(0, 9, (32, 2), generator=g0)
    for i, (r, c) in enumerate(corner.tolist()):
        x[i, :, r:r + 7, c:c + 7] = torch.rand(3, 1, 1, generator=g0)
    aug = S.SelfeeAugment(turbo_p=0.0)

    def loss(g):
        return S.selfee_loss(model(aug(x, g)), model(aug(x, g)))

    @torch.no_grad()
    def fixed_views() -> tuple[float, float, float, float]:      # the same 3 pairs of views each time
        out = [loss(torch.Generator().manual_seed(90 + i)) for i in range(3)]
        return (float(np.mean([float(t) for t, _ in out])), float(np.mean([p["simsiam"] for _, p in out])),
                float(np.mean([p["cld"] for _, p in out])), float(np.mean([p["collapse"] for _, p in out])))

    before = fixed_views()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        opt.zero_grad()
        total, _ = loss(gen)
        total.backward()
        opt.step()
    after = fixed_views()
    assert after[0] < 0.7 * before[0]                          # measured: 8.7 -> 3.7
    assert after[1] < before[1] and after[2] < before[2]       # both SimSiam and CLD fall
    assert after[3] < 0.9                                      # not by collapsing
