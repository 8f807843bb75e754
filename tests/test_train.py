"""The generic training machinery: resumable loop, clips, samplers, augmentation, provenance keys.

Small stand-in modules (a linear layer) exercise the loop; the real models run end to end in
tests/test_pipeline.py.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from deg import provenance
from deg.augment import ClipAugmenter, Standardizer, channel_stats, to_float_clip
from deg.train.clips import (FrameSampler, clip_indices, gather_clips, resolve_image_size, sample_windows,
                             window)
from deg.train.common import mean_f1, stage_seed
from deg.train.loop import LoopConfig, fit, load_checkpoint


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------
class _Interrupt(Exception):
    pass


def _toy_problem(seed: int = 0, interrupt_at: int | None = None):
    """A linear regression whose batches come from a numpy generator and whose inputs carry
    torch-generator noise, so an exact resume must restore both generators and the global RNG."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    w_true = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    x_val = torch.linspace(-1, 1, 40).reshape(10, 4)
    y_val = x_val @ w_true

    def train_step(step: int) -> torch.Tensor:
        if interrupt_at is not None and step == interrupt_at:
            raise _Interrupt(step)
        x = torch.from_numpy(rng.normal(size=(16, 4)).astype(np.float32))
        x = x + 0.01 * torch.randn(16, 4, generator=gen)
        return torch.nn.functional.mse_loss(model(x), x @ w_true)

    def validate() -> float:
        return float(torch.nn.functional.mse_loss(model(x_val), y_val))

    return model, train_step, validate, {"rng": rng, "gen": gen}


CFG = LoopConfig(max_steps=12, val_every=3, patience_steps=100, lr=1e-2, lr_factor=0.1, lr_min=5e-7, mode="min",
                 checkpoint_min_interval_s=0.0)      # a checkpoint at every validation


def test_fit_writes_last_best_and_log(tmp_path):
    model, step, val, gens = _toy_problem()
    result = fit(tmp_path, model, step, val, CFG, key="k1", generators=gens, progress=False)
    assert result.steps == 12 and result.stopped == "max_steps" and result.resumed_from is None
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log["step"]) == [3, 6, 9, 12]
    assert list(log.columns[:4]) == ["step", "lr", "train_loss", "val_metric"]
    # best = the validation with the lowest loss, and best.pt holds exactly that step
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["step"] == int(log.loc[log["val_metric"].idxmin(), "step"])
    assert best["metric"] == pytest.approx(log["val_metric"].min())
    assert load_checkpoint(tmp_path / "last.pt")["state"]["step"] == 12
    assert log["val_metric"].iloc[-1] < log["val_metric"].iloc[0]      # it learned


def test_fit_resumes_exactly_after_interruption(tmp_path):
    model, step, val, gens = _toy_problem()
    fit(tmp_path / "full", model, step, val, CFG, key="k", generators=gens, progress=False)
    full = {k: v.clone() for k, v in model.state_dict().items()}

    model, step, val, gens = _toy_problem(interrupt_at=8)
    with pytest.raises(_Interrupt):
        fit(tmp_path / "cut", model, step, val, CFG, key="k", generators=gens, progress=False)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["state"]["step"] == 6
    # a fresh process: other initial weights and generator states, restored from last.pt
    model, step, val, gens = _toy_problem(seed=123)
    result = fit(tmp_path / "cut", model, step, val, CFG, key="k", generators=gens, progress=False)
    assert result.resumed_from == 6 and result.steps == 12
    for name, value in model.state_dict().items():
        assert torch.equal(value, full[name]), name
    cols = ["step", "lr", "train_loss", "val_metric"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cut" / "log.csv")[cols],
                                  pd.read_csv(tmp_path / "full" / "log.csv")[cols])


def test_spaced_checkpoints_keep_best_no_older_than_last(tmp_path):
    """With validation checkpoints rationed, a kill loses more steps but nothing inconsistent."""
    import dataclasses

    cfg = dataclasses.replace(CFG, checkpoint_min_interval_s=1e9)    # first and last validation only
    model, step, val, gens = _toy_problem()
    fit(tmp_path / "full", model, step, val, cfg, key="k", generators=gens, progress=False)
    full = {k: v.clone() for k, v in model.state_dict().items()}
    best_full = load_checkpoint(tmp_path / "full" / "best.pt")
    model, step, val, gens = _toy_problem(interrupt_at=11)
    with pytest.raises(_Interrupt):
        fit(tmp_path / "cut", model, step, val, cfg, key="k", generators=gens, progress=False)
    last = load_checkpoint(tmp_path / "cut" / "last.pt")["state"]
    assert last["step"] == 3 and load_checkpoint(tmp_path / "cut" / "best.pt")["step"] == last["best_step"]
    model, step, val, gens = _toy_problem(seed=5)
    fit(tmp_path / "cut", model, step, val, cfg, key="k", generators=gens, progress=False)
    for name, value in model.state_dict().items():
        assert torch.equal(value, full[name]), name
    best = load_checkpoint(tmp_path / "cut" / "best.pt")
    assert best["step"] == best_full["step"] and best["metric"] == best_full["metric"]
    assert pd.read_csv(tmp_path / "cut" / "log.csv")["step"].tolist() == [3, 6, 9, 12]


def test_time_based_checkpoints_between_validations_resume_exactly(tmp_path):
    cfg = LoopConfig(max_steps=12, val_every=6, patience_steps=100, lr=1e-2, lr_factor=0.1, lr_min=5e-7,
                     mode="min", checkpoint_every_s=0.0, checkpoint_min_interval_s=0.0)  # after every step
    model, step, val, gens = _toy_problem()
    fit(tmp_path / "full", model, step, val, cfg, key="k", generators=gens, progress=False)
    full = {k: v.clone() for k, v in model.state_dict().items()}
    model, step, val, gens = _toy_problem(interrupt_at=9)
    with pytest.raises(_Interrupt):
        fit(tmp_path / "cut", model, step, val, cfg, key="k", generators=gens, progress=False)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["state"]["step"] == 8
    model, step, val, gens = _toy_problem(seed=7)
    assert fit(tmp_path / "cut", model, step, val, cfg, key="k", generators=gens, progress=False).resumed_from == 8
    for name, value in model.state_dict().items():
        assert torch.equal(value, full[name]), name
    cols = ["step", "lr", "train_loss", "val_metric"]        # train_loss averages steps 7-12 of both attempts
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cut" / "log.csv")[cols],
                                  pd.read_csv(tmp_path / "full" / "log.csv")[cols])


def test_fit_ignores_checkpoint_of_other_configuration(tmp_path):
    model, step, val, gens = _toy_problem(interrupt_at=5)
    with pytest.raises(_Interrupt):
        fit(tmp_path, model, step, val, CFG, key="old", generators=gens, progress=False)
    model, step, val, gens = _toy_problem()
    result = fit(tmp_path, model, step, val, CFG, key="new", generators=gens, progress=False)
    assert result.resumed_from is None and result.steps == 12


def test_plateau_reduces_lr_and_stops_below_lr_min(tmp_path):
    model = torch.nn.Linear(2, 1)
    cfg = LoopConfig(max_steps=1000, val_every=1, patience_steps=2, lr=1e-4, lr_factor=0.1, lr_min=5e-7, mode="max")
    result = fit(tmp_path, model, lambda s: model(torch.ones(1, 2)).sum() * 0, lambda: 0.5, cfg, progress=False)
    # improvement at step 1 only; reductions at steps 3, 5, 7: 1e-5, 1e-6, 1e-7 < 5e-7 -> stop
    assert result.stopped == "lr_min" and result.steps == 7
    lrs = pd.read_csv(tmp_path / "log.csv")["lr"].to_numpy()
    np.testing.assert_allclose(lrs, [1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6, 1e-7])
    assert result.best_step == 1


def test_nonfinite_loss_is_an_error(tmp_path):
    model = torch.nn.Linear(2, 1)
    cfg = LoopConfig(max_steps=3, val_every=1, patience_steps=5, lr=1e-3, lr_factor=0.1, lr_min=5e-7)
    with pytest.raises(FloatingPointError, match="step 1"):
        fit(tmp_path, model, lambda s: model(torch.ones(1, 2)).sum() * float("nan"), lambda: 0.0, cfg,
            progress=False)


def test_weight_penalty_matches_the_l2sp_loss():
    """Adam with WeightPenalty takes exactly the step of Adam on loss + deg.losses.L2SP."""
    from deg.losses import L2SP
    from deg.train.loop import WeightPenalty

    def make():
        torch.manual_seed(0)
        # (no conv bias before BatchNorm: its gradient is ~0 and Adam would amplify rounding noise)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                  torch.nn.Linear(4 * 6 * 6, 2))
        ref = {k: v.detach() + 0.1 for k, v in net.named_parameters()}   # a "pretrained" anchor
        return net, ref

    x = torch.randn(5, 3, 8, 8)
    net_a, ref = make()
    reg_a = L2SP(net_a, alpha=0.3, beta=0.2, reference=ref, new_names={"3.weight", "3.bias"})
    opt_a = torch.optim.Adam(net_a.parameters(), lr=1e-2)
    net_b, _ = make()
    reg_b = WeightPenalty(net_b, alpha=0.3, beta=0.2, reference=ref, new_names={"3.weight", "3.bias"})
    opt_b = torch.optim.Adam(reg_b.param_groups(), lr=1e-2, fused=True)
    assert reg_b.value() == pytest.approx(float(reg_a().detach()), rel=1e-6)
    for _ in range(3):
        opt_a.zero_grad()
        (net_a(x).square().mean() + reg_a()).backward()
        opt_a.step()
        opt_b.zero_grad()
        net_b(x).square().mean().backward()
        reg_b.add_gradient()
        opt_b.step()
    for (name, a), b in zip(net_a.named_parameters(), net_b.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert reg_b.value() == pytest.approx(float(reg_a().detach()), rel=1e-5)


# --------------------------------------------------------------------------------------
# Clips and samplers
# --------------------------------------------------------------------------------------
def test_clip_indices_repeat_edge_frames():
    idx = clip_indices(np.array([0, 5, 9]), 11, 10)
    assert idx.shape == (3, 11)
    assert idx[0].tolist() == [0] * 6 + [1, 2, 3, 4, 5]
    assert idx[1].tolist() == list(range(0, 10)) + [9]
    assert idx[2].tolist() == [4, 5, 6, 7, 8] + [9] * 6


def test_gather_clips_mixes_videos_in_order():
    frames = {"a": np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8),
              "b": 100 + np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)}
    clips = gather_clips(frames, ["b", "a", "b"], np.array([0, 4, 6]), 3)
    assert clips.shape == (3, 3, 2, 2, 3) and clips.dtype == np.uint8
    assert clips[:, :, 0, 0, 0].tolist() == [[100, 100, 101], [3, 4, 4], [105, 106, 106]]


def test_frame_sampler_respects_eligibility_and_seed():
    lengths = {"a": 50, "b": 30}
    eligible = {"a": np.arange(50) % 2 == 0, "b": np.zeros(30, bool)}
    sampler = FrameSampler(lengths, ["a", "b"], np.random.default_rng(0), eligible=eligible)
    videos, frames = sampler.sample(200)
    assert set(videos) == {"a"} and (frames % 2 == 0).all() and len(sampler) == 25
    again = FrameSampler(lengths, ["a", "b"], np.random.default_rng(0), eligible=eligible).sample(200)
    assert (again[1] == frames).all()
    v, f = sampler.spaced(5)
    assert f.tolist() == [0, 12, 24, 36, 48]
    with pytest.raises(ValueError, match="no eligible frames"):
        FrameSampler(lengths, ["b"], np.random.default_rng(0), eligible=eligible)


def test_windows_pad_short_videos():
    rng = np.random.default_rng(0)
    videos, starts = sample_windows({"long": 100, "short": 5}, ["long", "short"], 20, 500, rng)
    assert ((starts >= 0) & (starts <= 80)).all()
    assert (starts[videos == "short"] == 0).all()
    assert 0.8 < (videos == "long").mean() < 1.0          # drawn in proportion to length
    x = np.arange(5 * 2).reshape(5, 2)
    w = window(x, 0, 8, -1)
    assert w.shape == (8, 2) and (w[5:] == -1).all() and (w[:5] == x).all()


def test_image_size_rules():
    assert resolve_image_size((64, 96), None, (480, 640)) == (64, 96)
    assert resolve_image_size(None, (256, 256), (480, 640)) == (256, 256)
    assert resolve_image_size(None, None, (481, 650)) == (480, 640)
    with pytest.raises(ValueError, match="divisible by 8"):
        resolve_image_size((60, 64), None, None)


# --------------------------------------------------------------------------------------
# Augmentation and standardisation
# --------------------------------------------------------------------------------------
def _moving_square_clip(n=2, t=11, h=32, w=32):
    clip = torch.zeros(n, 3, t, h, w)
    for i in range(t):
        clip[:, :, i, 8:16, 4 + i:12 + i] = 0.8
    return clip


def test_augmentation_is_identical_across_frames():
    clip = _moving_square_clip()
    # a static clip: all frames equal -> all augmented frames must stay equal
    static = clip[:, :, :1].expand(-1, -1, 11, -1, -1).contiguous()
    aug = ClipAugmenter(flips={"horizontal": True, "vertical": True})
    out = aug(static, torch.Generator().manual_seed(0))
    assert out.shape == static.shape
    assert torch.allclose(out, out[:, :, :1].expand_as(out))
    assert not torch.allclose(out, static)                # something was perturbed
    assert out.min() >= 0 and out.max() <= 1


def test_augmentation_flips_follow_the_dataset_and_generator():
    clip = _moving_square_clip(n=64)
    no_geom = dict(degrees=0.0, brightness=0.0, contrast=0.0)
    off = ClipAugmenter(flips={"horizontal": False, "vertical": False}, **no_geom)
    assert torch.equal(off(clip, torch.Generator().manual_seed(0)), clip)
    h_only = ClipAugmenter(flips={"horizontal": True, "vertical": False}, **no_geom)
    out = h_only(clip, torch.Generator().manual_seed(0))
    flipped = (out != clip).flatten(1).any(1)
    assert 10 < int(flipped.sum()) < 54                   # about half, p = 0.5
    assert torch.equal(out[flipped], clip[flipped].flip(-1))
    again = h_only(clip, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)                        # same generator state, same result


def test_standardizer_and_channel_stats():
    rng = np.random.default_rng(0)
    video = np.stack([np.full((4, 4), 50), np.full((4, 4), 100), rng.integers(0, 256, (4, 4))], axis=-1)
    videos = [np.repeat(video[None].astype(np.uint8), 20, axis=0)]
    mean, std = channel_stats(videos)
    assert mean[0] == pytest.approx(50 / 255) and mean[1] == pytest.approx(100 / 255)
    assert std[0] == pytest.approx(1e-3)                  # constant channel: floored, not zero
    clip = to_float_clip(torch.from_numpy(videos[0][None, :11]))
    assert clip.shape == (1, 3, 11, 4, 4)
    z = Standardizer(mean, std)(clip)
    assert z[:, 2].mean().abs() < 1e-4 and z[:, 2].std() == pytest.approx(1.0, rel=0.1)
    # inference's version (deg.infer): each frame standardised once, then copied into its clips
    standardizer = Standardizer(mean, std)
    frames = torch.from_numpy(videos[0])
    index = torch.from_numpy(clip_indices(np.array([0, 10, 3, 19]), 11, 20))   # 10: consecutive; edges repeated
    clips = standardizer.clips_from_uint8(frames, index)
    assert clips.shape == (4, 3, 11, 4, 4) and clips.is_contiguous() and clips.dtype == torch.float32
    torch.testing.assert_close(clips[:1], z, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(clips, standardizer(to_float_clip(frames[index])), rtol=1e-6, atol=1e-5)
    # a buffer of the right shape is written into and returned; one of another shape is not used
    again = torch.empty_like(clips)
    same = standardizer.clips_from_uint8(frames, index, out=again)
    assert same.data_ptr() == again.data_ptr() and torch.equal(again, clips)
    fewer = standardizer.clips_from_uint8(frames, index[:2], out=again)       # a smaller batch: its head
    assert fewer.data_ptr() == again.data_ptr() and fewer.shape == (2, 3, 11, 4, 4) and fewer.is_contiguous()
    assert torch.equal(fewer, clips[:2])
    other = standardizer.clips_from_uint8(frames, index, out=torch.empty(2, 3, 11, 4, 4))  # too small: not used
    assert other.shape == clips.shape and torch.equal(other, clips)
    with pytest.raises(ValueError, match="uint8 frames"):
        standardizer.clips_from_uint8(frames[None], index)
    with pytest.raises(ValueError, match="positive"):
        Standardizer([0, 0, 0], [1, 0, 1])


# --------------------------------------------------------------------------------------
# Metric, seeds, provenance
# --------------------------------------------------------------------------------------
def test_mean_f1_excludes_background_and_unlabelled():
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]], np.int8)
    probs = np.array([[.9, .1, .1], [.1, .8, .1], [.1, .7, .2], [.9, .2, .6], [.5, .9, .9]])
    assert mean_f1(probs, labels) == pytest.approx(1.0)   # background's errors do not count
    probs_bad = probs.copy()
    probs_bad[:, 2] = [0.9, 0.9, 0.9, 0.1, 0.0]           # behaviour 2 ranked worst at its positive
    assert mean_f1(probs_bad, labels) < 1.0


def test_precision_rule(monkeypatch):
    """CPU: bf16 only when the profile asks for it and oneDNN has native kernels; the profiles do not."""
    from deg.presets import PROFILES
    from deg.train import common

    cpu = torch.device("cpu")
    assert not any(p.bf16 for p in PROFILES.values())       # see Profile.bf16
    monkeypatch.setattr(common, "cpu_supports_bf16", lambda: True)
    assert common.choose_precision(cpu, True).name == "bf16"
    assert common.choose_precision(cpu, False).name == "fp32"
    monkeypatch.setattr(common, "cpu_supports_bf16", lambda: False)
    assert common.choose_precision(cpu, True).name == "fp32"


def test_stage_seeds_are_distinct_and_stable():
    seeds = {stage_seed(0, s) for s in ("flow", "feature", "sequence")}
    assert len(seeds) == 3 and stage_seed(0, "flow") == stage_seed(0, "flow") != stage_seed(1, "flow")


def test_config_key_is_canonical():
    a = provenance.config_key({"b": (1, 2), "a": np.float32(0.5), "c": 3.0})
    b = provenance.config_key({"a": 0.5, "c": 3, "b": [1, 2]})
    assert a == b and len(a) == 16
    assert provenance.config_key({"a": 0.5, "c": 3, "b": [2, 1]}) != a
    versions = provenance.package_versions()
    assert versions["torch"] == torch.__version__.split("+")[0] and versions["numpy"] == np.__version__
