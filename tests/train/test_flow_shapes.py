"""Flow pretraining on procedurally moving shapes (deg.train.flow_shapes) and runs that start from it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deg import pipeline, provenance
from deg.models.flow import build_flow_generator, warp
from deg.presets import get_preset, get_profile
from deg.train import flow_shapes
from deg.train.keys import starts_from_shapes


def test_moving_shapes_flow_reconstructs_each_frame_from_the_next():
    """The target is the flow the generators predict: warping frame i+1 by it gives back frame i where
    shapes move (the moving pixels away from edges), far better than zero flow does."""
    torch.manual_seed(0)
    clip, flow = flow_shapes.moving_shapes(16, torch.Generator().manual_seed(3), n_frames=5, size=(32, 32),
                                           hp={**flow_shapes.FLOW_SHAPES_HPARAMS, "noise_max": 0.0})
    assert clip.shape == (16, 3, 5, 32, 32) and flow.shape == (16, 8, 32, 32)
    assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.0
    errors = {"true": [], "zero": []}
    for i in range(4):
        current, following = clip[:, :, i], clip[:, :, i + 1]
        v = flow[:, 2 * i:2 * i + 2]
        moving = v.norm(dim=1) > 0.3
        # interior pixels only: at the border the reflected background texture differs
        moving[:, :3], moving[:, -3:], moving[:, :, :3], moving[:, :, -3:] = False, False, False, False
        for name, f in (("true", v), ("zero", torch.zeros_like(v))):
            errors[name].append((warp(following, f) - current).abs().mean(dim=1)[moving])
    true, zero = torch.cat(errors["true"]).median(), torch.cat(errors["zero"]).median()
    assert float(zero) > 4 * float(true), (float(true), float(zero))
    speeds = flow.reshape(16, 4, 2, 32, 32).norm(dim=2)
    assert 0.05 < float(speeds.amax(dim=(1, 2, 3)).median()) <= flow_shapes.FLOW_SHAPES_HPARAMS["max_speed"] * 1.5


def test_multiscale_epe_is_zero_for_the_target_and_weighs_moving_pixels():
    gen = torch.Generator().manual_seed(0)
    _, target = flow_shapes.moving_shapes(4, gen, n_frames=3, size=(16, 16))
    exact = [torch.nn.functional.avg_pool2d(target, s) / s for s in (2, 4, 8)]
    total, parts = flow_shapes.multiscale_epe(exact, target, moving_weight=4.0)
    assert float(total) < 1e-6 and len(parts) == 3
    zero = [torch.zeros_like(f) for f in exact]
    unweighted = flow_shapes.multiscale_epe(zero, target, moving_weight=0.0)[0]
    weighted = flow_shapes.multiscale_epe(zero, target, moving_weight=4.0)[0]
    assert float(weighted) > float(unweighted) > 0          # zero flow costs more where things move


def test_stage_trains_once_is_keyed_and_runs_start_from_it(isolated):
    """The tiny profile pretrains TinyMotionNet for a few steps; a second call reuses the folder; a
    run's flow stage starts from those weights, and a run with flow_steps=0 keeps them exactly."""
    from deg.data import synthetic

    prof = get_profile("tiny")
    assert prof.flow_shapes_steps > 0 and starts_from_shapes(get_preset("DEG_f"), prof, "flow_generator")
    path = flow_shapes.pretrain(prof, "tinymotionnet", 11, (16, 16), progress=False)
    done = json.loads((path / "DONE").read_text())
    key = provenance.config_key(flow_shapes.stage_config(prof, "tinymotionnet", 11, (16, 16)))
    assert done["key"] == key and (path / "weights.pt").is_file()
    saved = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    build_flow_generator("tinymotionnet", 11).load_state_dict(saved["model"])      # every tensor
    mtime = (path / "weights.pt").stat().st_mtime_ns
    assert flow_shapes.pretrain(prof, "tinymotionnet", 11, (16, 16), progress=False) == path
    assert (path / "weights.pt").stat().st_mtime_ns == mtime                        # reused
    # more steps: an overridden profile, so its own results folder and its own stage
    more = get_profile("tiny", flow_shapes_steps=prof.flow_shapes_steps + 1)
    assert flow_shapes.pretrain(more, "tinymotionnet", 11, (16, 16), progress=False) != path

    synthetic.generate("synthetic_tiny", progress=False)
    run_dir = pipeline.run("synthetic_tiny", "DEG_f", 0, profile="tiny", progress=False, flow_steps=0)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["stages"]["flow"]["steps"] == 0
    kept = torch.load(run_dir / "flow" / "best.pt", map_location="cpu", weights_only=False)["model"]
    for name, tensor in saved["model"].items():
        np.testing.assert_array_equal(kept[name].numpy(), tensor.numpy(), err_msg=name)
    # the flow stage's key names the pretraining: changing its steps re-keys the run
    keys = pipeline.stage_keys("synthetic_tiny", "DEG_f", 0, "tiny", flow_steps=0)
    other = pipeline.stage_keys("synthetic_tiny", "DEG_f", 0, "tiny", flow_steps=0, flow_shapes_steps=5)
    assert keys["flow"] != other["flow"]


def test_selfsup_and_kinetics_starts_take_precedence(isolated):
    p = get_preset("DEG_f")
    assert not starts_from_shapes(p, get_profile("tiny", pretrained="selfsup"), "flow_generator")
    assert not starts_from_shapes(p, get_profile("tiny", flow_shapes_steps=0), "flow_generator")
    assert not starts_from_shapes(p, get_profile("tiny"), "feature_extractor")
    from deg import paths

    ckpt = paths.data_dir() / "pretrained" / "DEG_f" / "flow_generator.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save(build_flow_generator("tinymotionnet", 11).state_dict(), ckpt)
    assert not starts_from_shapes(p, get_profile("tiny"), "flow_generator")        # a Kinetics file wins


def test_command_line_names_an_unknown_generator(isolated, capsys):
    with pytest.raises(SystemExit):
        flow_shapes.main(["nosuchnet", "16", "16", "--profile", "tiny"])
    assert "no preset uses flow generator 'nosuchnet'" in capsys.readouterr().err
