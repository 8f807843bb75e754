"""The three pose methods on tiny hand-made data: MLP shape and training, NT-Xent and augmentations,
the co-occurrence assignment."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deg.pose import contrastive as C
from deg.pose import mlp as M
from deg.pose import unsupervised as U
from deg.pose.run import pose_hparams


def test_mlp_is_the_papers_architecture():
    model = M.KeypointMLP(1364, 5)
    linear = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linear] == [(1364, 256), (256, 128), (128, 5)]
    drops = [m.p for m in model.net if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.35] * 3 and sum(isinstance(m, torch.nn.ReLU) for m in model.net) == 2


def test_mlp_learns_a_feature_threshold_and_resumes(tmp_path):
    """Behaviour 1 is 'feature 0 > 0': a few dozen steps reach a high validation F1; a second call reuses."""
    rng = np.random.default_rng(0)
    feats, labels = {}, {}
    for v in ("a", "b", "c", "d"):
        x = rng.normal(size=(200, 3)).astype(np.float32)
        y = np.zeros((200, 2), np.int8)
        y[:, 1] = x[:, 0] > 0
        y[:, 0] = 1 - y[:, 1]
        feats[v], labels[v] = x, y
    hp = pose_hparams("tiny", pose_window_half=1, mlp_max_steps=60, mlp_batch=64, mlp_val_every=20)
    model, norm, result = M.train(tmp_path / "mlp", feats, labels, ["a", "b", "c"], ["d"], hp, key="k", seed=0)
    assert result.best_metric > 0.8 and result.steps == 60
    probs = M.predict(model, feats["d"], norm, 1)
    assert probs.shape == (200, 2) and ((probs[:, 1] > 0.5) == labels["d"][:, 1]).mean() > 0.8
    again = M.train(tmp_path / "mlp", feats, labels, ["a", "b", "c"], ["d"], hp, key="k", seed=0)[2]
    assert again.resumed_from == 60 and again.best_metric == result.best_metric


def test_nt_xent_matches_its_definition_and_rewards_matching_views():
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    s = z @ z.T / 0.5
    manual = []
    for i in range(8):
        pos = (i + 4) % 8
        others = [j for j in range(8) if j != i]
        manual.append(-(s[i, pos] - torch.logsumexp(s[i, others], 0)))
    assert C.nt_xent(z1, z2, 0.5).item() == pytest.approx(torch.stack(manual).mean().item(), rel=1e-5)
    assert C.nt_xent(z1, z1 + 1e-3, 0.1) < C.nt_xent(z1, z2, 0.1)


def test_augmentations_are_rigid_per_window():
    """Flip, rotation and translation keep every distance between points of a window."""
    hp = pose_hparams("tiny")
    x = torch.rand(6, 5, 8)                           # 6 windows x 5 frames x 4 points
    y = C.augment(x, hp, torch.Generator().manual_seed(0))
    d = lambda w: torch.cdist(w.reshape(6, 20, 2), w.reshape(6, 20, 2))  # noqa: E731
    torch.testing.assert_close(d(x), d(y), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(x, y)


def test_cooccurrence_assignment_and_predictions():
    clusters = np.array([0, 0, 1, 1, 2, 2, 2])
    labels = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 1], [0, 1, 1]])
    table = U.cooccurrence(clusters, labels)
    np.testing.assert_array_equal(table, [[2, 0, 0], [0, 2, 1], [0, 1, 3]])
    mapping = U.assign_behaviours(table)
    assert list(mapping) == [0, 1, 2]
    proba = np.eye(3, dtype=np.float32)[clusters]
    preds, scores = U.predict_behaviours(clusters, proba, mapping)
    np.testing.assert_array_equal(preds[:, 1], clusters == 1)
    np.testing.assert_array_equal(preds[:, 0], ~((clusters == 1) | (clusters == 2)))
    assert scores.shape == (7, 3)


def test_bsoid_features_are_windowed_and_rotation_free():
    hp = pose_hparams("tiny")
    rng = np.random.default_rng(1)
    pts = np.cumsum(rng.normal(scale=0.01, size=(50, 1, 3, 2)), axis=0) + 0.5
    f = U.bsoid_features(pts, 30.0, hp)
    assert f.shape == (50, 3 + 3 + 3)              # 3 pair distances, 3 angle changes, 3 displacements
    theta = 1.0
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    np.testing.assert_allclose(U.bsoid_features(pts @ rot.T, 30.0, hp), f, atol=1e-5)
    assert list(U.bin_frames(30, 30.0, hp)) == [1, 4, 7, 10, 13, 16, 19, 22, 25, 28]
