"""A flow generator that computes flow before it sees a video: supervised pretraining on moving shapes.

Why. The paper starts its flow generators from Kinetics700 weights, which already compute flow;
offline there are none, and from random weights the MotionNet loss at the demo's sizes teaches
the generator zero flow (README, "Why the demo's stages stay weak": it prefers zero flow to the
subject's true motion, or the true motion by 1.5% of the loss). A flow stream fed zero flows sees
nothing, so the motion-only behaviours are lost. FlowNet's answer to "no flow labels for real
video" was synthetic video with known flow (Flying Chairs: Dosovitskiy et al. 2015); this module
does the same at the demo's scale, with shapes drawn procedurally (no download):

* a clip (:func:`moving_shapes`): a smooth random texture, translating slowly in half of the
  clips, under up to :data:`N_SHAPES` textured ellipses, each translating at its own constant
  velocity, later shapes on top, Gaussian pixel noise; per pixel the flow that maps frame i onto
  frame i + 1 (the flow generators' convention, :func:`deg.models.flow.warp`): the velocity of
  the shape covering it, else the background's;
* the loss (:func:`multiscale_epe`): mean end-point error at each of the generator's three scales
  against the target flow averaged into that scale's pixels, moving pixels weighted up
  (``moving_weight``: most pixels of a clip are static, and zero flow is otherwise nearly optimal).

Measured (README, "A flow generator pretrained on moving shapes"): TinyMotionNet at 32x32 first
sits at zero flow (validation error at zero flow's) and then learns; when it starts depends on the
rate: at Adam 1e-3 between steps 500 and 750 for 16 clips a step, not within 1,000 steps for 8
(Intel Xeon, 2026-12-03), at 3e-4 from about step 300 for 8 clips (two seeds). The demo's stage
(800 steps of 8 clips at 3e-4; 367 s on one core beside a two-thread job) gives a flow on the synthetic
open-field subject, a video it never saw, that points along the subject's motion in locomotion
frames (cosine 0.95 with the true displacement, 0.74 of its length), and DEG_f's flow stream
alone tells ``locomote`` (split 0 test F1 0.72 against "always present" 0.34).

One stage per (profile, generator, frames, image size), shared by every dataset, split and run:
``results/<profile>/_flow_shapes/<generator>-<H>x<W>/`` (a :class:`deg.train.store.StageDir`
keyed by :func:`stage_config`; trained with :func:`deg.train.loop.fit`, so it resumes), holding
``weights.pt``. A run whose profile has ``flow_shapes_steps > 0`` and no Kinetics checkpoint starts
its flow generator from it (:func:`deg.train.common.load_initial_weights`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from deg import io, paths, provenance
from deg.presets import FLOW_SHAPES_HPARAMS

# The files whose text keys the stage (as deg.train.selfsup's CODE): the ones that compute it, not
# deg.train.keys' import closure, which reaches the whole pipeline and would retrain this shared
# stage on every pipeline edit.
CODE = ["models/flow.py", "train/loop.py", "train/flow_shapes.py"]
N_SHAPES = 3


# --------------------------------------------------------------------------------------
# Clips with known flow
# --------------------------------------------------------------------------------------
def _uniform(gen: torch.Generator, *shape: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen)


def _texture(n: int, size: tuple[int, int], cells: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 3, h, w) smooth random colours: a cells x cells grid of random RGB, bicubic-interpolated."""
    coarse = torch.rand(n, 3, cells, cells, generator=gen)
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def _sample(texture: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """texture (n, 3, th, tw) read at pixel coordinates x, y (n, T, H, W) -> (n, 3, T, H, W)."""
    n, _, th, tw = texture.shape
    _, t, h, w = x.shape
    grid = torch.stack([(2 * x + 1) / tw - 1, (2 * y + 1) / th - 1], dim=-1).reshape(n, t * h, w, 2)
    out = F.grid_sample(texture, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.reshape(n, 3, t, h, w)


def moving_shapes(n: int, gen: torch.Generator, n_frames: int = 11, size: tuple[int, int] = (32, 32),
                  hp: dict[str, Any] = FLOW_SHAPES_HPARAMS) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` clips with their true flow: (clip (n, 3, T, H, W) in [0, 1], flow (n, 2(T-1), H, W)).

    Flow channel 2i / 2i + 1 is the x / y displacement (pixels) of the content of frame i's pixel in
    frame i + 1. Speeds are ``max_speed * u**1.5`` pixels per frame (u uniform): many slow shapes,
    some fast ones, as in behaviour videos.
    """
    h, w = size
    t = torch.arange(n_frames, dtype=torch.float32).view(1, n_frames, 1, 1)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    xs, ys = xs.view(1, 1, h, w), ys.view(1, 1, h, w)

    def per_clip(*, lo=0.0, hi=1.0) -> torch.Tensor:           # one value per clip, broadcastable
        return _uniform(gen, n, lo=lo, hi=hi).view(n, 1, 1, 1)

    moving = (per_clip() < hp["background_move_p"]).float()
    bvx = per_clip(lo=-hp["background_speed"], hi=hp["background_speed"]) * moving
    bvy = per_clip(lo=-hp["background_speed"], hi=hp["background_speed"]) * moving
    cells = int(_uniform(gen, 1, lo=3, hi=10).item())
    background = _texture(n, (2 * h, 2 * w), cells, gen) * per_clip(lo=0.5, hi=1.0) \
        + per_clip(lo=0.0, hi=0.3)
    frames = _sample(background, xs - bvx * t + w / 2, ys - bvy * t + h / 2)
    flow_x, flow_y = bvx.expand(n, n_frames, h, w).clone(), bvy.expand(n, n_frames, h, w).clone()
    for k in range(N_SHAPES):
        present = (per_clip() < (0.9 if k == 0 else 0.5)).float()
        speed = hp["max_speed"] * per_clip() ** 1.5
        angle = per_clip(lo=0.0, hi=2 * math.pi)
        vx, vy = speed * torch.cos(angle), speed * torch.sin(angle)
        cx = per_clip(lo=0.0, hi=w) + vx * (t - n_frames / 2)      # centre in frame t: mid-clip anywhere
        cy = per_clip(lo=0.0, hi=h) + vy * (t - n_frames / 2)
        a, b = per_clip(lo=hp["min_radius"], hi=hp["max_radius"]), per_clip(lo=hp["min_radius"], hi=hp["max_radius"])
        theta = per_clip(lo=0.0, hi=math.pi)
        dx, dy = xs + 0.5 - cx, ys + 0.5 - cy                      # from the centre, pixel centres
        u = (dx * torch.cos(theta) + dy * torch.sin(theta)) / a
        v = (-dx * torch.sin(theta) + dy * torch.cos(theta)) / b
        mask = ((1 - torch.sqrt(u ** 2 + v ** 2)) * torch.minimum(a, b) + 0.5).clamp(0, 1) * present  # ~1 px edge
        texture = _texture(n, (16, 16), 4, gen) * per_clip(lo=0.0, hi=0.6) \
            + per_clip(lo=0.0, hi=0.7)
        frames = frames * (1 - mask[:, None]) + _sample(texture, dx + 8, dy + 8) * mask[:, None]
        on = mask > 0.5
        flow_x = torch.where(on, vx.expand_as(flow_x), flow_x)
        flow_y = torch.where(on, vy.expand_as(flow_y), flow_y)
    noise = _uniform(gen, n, lo=0.0, hi=hp["noise_max"]).view(n, 1, 1, 1, 1)
    frames = (frames + noise * torch.randn(frames.shape, generator=gen)).clamp(0, 1)
    flow = torch.stack([flow_x[:, :-1], flow_y[:, :-1]], dim=2).reshape(n, 2 * (n_frames - 1), h, w)
    return frames, flow


def standardise(clip: torch.Tensor) -> torch.Tensor:
    """Channel z-score over the batch (the runs z-score with their dataset's statistics)."""
    mean = clip.mean(dim=(0, 2, 3, 4), keepdim=True)
    return (clip - mean) / clip.std(dim=(0, 2, 3, 4), keepdim=True).clamp_min(1e-3)


def multiscale_epe(flows: list[torch.Tensor], target: torch.Tensor, moving_weight: float) -> tuple[torch.Tensor, list[float]]:
    """Sum over scales of the weighted mean end-point error; (total, per-scale EPE).

    flows: the generator's outputs, finest first, (N, 2(T-1), h, w) in pixels of their scale;
    target (N, 2(T-1), H, W) in input pixels, averaged into each scale (and divided by its factor).
    Pixels whose target moves by more than 0.05 input pixels per frame weigh ``1 + moving_weight``.
    """
    total, parts = target.new_zeros(()), []
    for flow in flows:
        s = target.shape[-1] // flow.shape[-1]
        n, c, h, w = flow.shape
        goal = (F.avg_pool2d(target, s) / s).reshape(n, c // 2, 2, h, w)
        weight = 1 + moving_weight * (goal.norm(dim=2) > 0.05 / s).float()
        epe = (flow.float().reshape(n, c // 2, 2, h, w) - goal).norm(dim=2)
        scale_loss = (epe * weight).mean() / weight.mean()
        total = total + scale_loss
        parts.append(float(scale_loss.detach()))
    return total, parts


# --------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------
def stage_config(profile, generator: str, n_frames: int, size: tuple[int, int], seed: int = 0) -> dict[str, Any]:
    """What the stage's key hashes. ``profile``: a :class:`deg.presets.Profile` (steps and batch)."""
    root = Path(__file__).resolve().parent.parent
    return {"generator": generator, "n_frames": int(n_frames), "image_size": [int(s) for s in size],
            "steps": int(profile.flow_shapes_steps), "batch": int(profile.flow_shapes_batch),
            "hparams": FLOW_SHAPES_HPARAMS, "seed": int(seed),
            "code": provenance.config_key({rel: (root / rel).read_text() for rel in CODE})}


def stage_dir(profile, generator: str, size: tuple[int, int]) -> Path:
    return paths.results_dir() / profile.results_name / "_flow_shapes" / f"{generator}-{size[0]}x{size[1]}"


def pretrain(profile, generator: str, n_frames: int, size: tuple[int, int], seed: int = 0,
             progress: bool = True) -> Path:
    """Train (or resume, or reuse) the stage; returns its folder (``weights.pt``: the generator's state dict)."""
    from deg.models.flow import build_flow_generator
    from deg.presets import HPARAMS
    from deg.train.common import seed_everything
    from deg.train.loop import LoopConfig, fit, load_checkpoint
    from deg.train.store import StageDir, wait_lock

    if profile.flow_shapes_steps < 1:
        raise ValueError(f"profile {profile.name!r}: flow_shapes_steps = {profile.flow_shapes_steps}, nothing to pretrain")
    config = stage_config(profile, generator, n_frames, size, seed)
    key = provenance.config_key(config)
    path = stage_dir(profile, generator, size)
    with wait_lock(path.parent / f".{path.name}.lock"):
        sd = StageDir(path, key, config)
        if sd.done() is not None:
            return path
        sd.prepare()
        hp, batch = FLOW_SHAPES_HPARAMS, int(profile.flow_shapes_batch)
        _, gen = seed_everything(seed)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = build_flow_generator(generator, n_frames=n_frames,
                                     max_displacement=HPARAMS["flow_max_displacement"]).to(device)
        val_clip, val_flow = moving_shapes(hp["val_clips"], torch.Generator().manual_seed(seed + 2), n_frames, size)
        val_clip, val_flow = standardise(val_clip).to(device), val_flow.to(device)

        def train_step(step: int) -> torch.Tensor:
            clip, target = moving_shapes(batch, gen, n_frames, size)
            return multiscale_epe(model(standardise(clip).to(device)), target.to(device), hp["moving_weight"])[0]

        @torch.no_grad()
        def validate() -> float:
            return float(multiscale_epe(model(val_clip), val_flow, hp["moving_weight"])[0])

        steps = int(profile.flow_shapes_steps)
        # a constant rate (no plateau drops within the run): the loss is noisy, the trend slow
        cfg = LoopConfig(max_steps=steps, val_every=min(hp["val_every"], steps), patience_steps=10 * steps,
                         lr=hp["lr"], lr_factor=HPARAMS["lr_factor"], lr_min=HPARAMS["lr_min"], mode="min")
        result = fit(path, model, train_step, validate, cfg, key=key, generators={"shapes": gen},
                     desc=f"flow pretraining on moving shapes ({generator})", progress=progress)
        best = load_checkpoint(path / "best.pt")
        with io.atomic_path(path / "weights.pt") as tmp:
            torch.save({"model": best["model"], "generator": generator, "step": best["step"],
                        "val_epe": best["metric"]}, tmp)
        sd.finish(best_step=best["step"], best_val_epe=best["metric"], wall_s=result.wall_s)
    return path


def load_initial_weights(ctx, model: torch.nn.Module) -> None:
    """Fill a run's flow generator with the stage's weights (pretraining it first if not cached)."""
    path = pretrain(ctx.profile, ctx.preset.flow_generator, ctx.preset.n_flow_frames, tuple(ctx.image_size),
                    progress=ctx.progress) / "weights.pt"
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])


def main(argv: list[str] | None = None) -> int:
    """``python -m deg.train.flow_shapes --profile P [--overrides JSON] GENERATOR H W``: the stage,
    as a workflow job."""
    import argparse

    from deg.presets import PRESETS, get_profile, parse_overrides

    parser = argparse.ArgumentParser(description="Flow-generator pretraining on procedurally moving shapes")
    parser.add_argument("generator")
    parser.add_argument("height", type=int)
    parser.add_argument("width", type=int)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--overrides", default="", help="JSON object of Profile fields / HPARAMS entries replaced")
    args = parser.parse_args(argv)
    # the preset of that generator: its profile fields (preset_overrides) and frame count apply
    preset = next((p for p in PRESETS.values() if p.flow_generator == args.generator), None)
    if preset is None:
        parser.error(f"no preset uses flow generator {args.generator!r}")
    profile = get_profile(args.profile, **parse_overrides(args.overrides)).for_preset(preset.name)
    print(pretrain(profile, args.generator, preset.n_flow_frames, (args.height, args.width)))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
