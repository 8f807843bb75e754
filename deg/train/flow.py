"""Stage 1: the flow generator, self-supervised on the training videos' frames (MotionNet loss).

Paper (Methods: Flow generators, Loss functions, Training protocol): 11 RGB frames in, 10 flows
out at 1/2, 1/4 and 1/8 resolution; loss = photometric (Charbonnier) + SSIM + smoothness
(+ sparsity for TinyMotionNet3D) + L2-SP towards the pretrained weights (alpha only: no new
weights); best = lowest validation loss.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deg.train.clips import FrameSampler
from deg.train.distributed import setup_module, shard, take
from deg.train.common import RunContext, load_initial_weights, prepare_model, seed_everything, stage_seed
from deg.train.loop import FitResult, LoopConfig, WeightPenalty, fit, load_best_weights

STAGE = "flow"
PART = "flow_generator"          # name of a pretrained checkpoint (deg.train.common.pretrained_file)


def build(ctx: RunContext, pretrained: bool = False, on_device: bool = True) -> torch.nn.Module:
    """The preset's flow generator; on the run's device unless ``on_device`` is False."""
    from deg.models.flow import build_flow_generator

    model = build_flow_generator(ctx.preset.flow_generator, n_frames=ctx.preset.n_flow_frames,
                                 max_displacement=ctx.hparams["flow_max_displacement"])
    if pretrained:
        load_initial_weights(ctx, model, PART)
    return model if not on_device else prepare_model(model, ctx.device)


def loop_config(ctx: RunContext) -> LoopConfig:
    p, h = ctx.profile, ctx.hparams
    return LoopConfig(max_steps=p.flow_steps, val_every=p.val_every, patience_steps=p.lr_patience_steps,
                      lr=h["lr"], lr_factor=h["lr_factor"], lr_min=h["lr_min"], mode="min")


def regulariser(model: torch.nn.Module, hparams: dict) -> WeightPenalty:
    """L2-SP (``flow_l2sp_alpha``) towards the starting weights; a flow generator has no new
    weights (beta unused).

    The starting weights are the pretrained ones when a checkpoint is supplied, else the random
    initialisation ("decay weights towards their initial values").
    """
    reference = {k: v.detach().clone() for k, v in model.named_parameters()}
    return WeightPenalty(model, alpha=hparams["flow_l2sp_alpha"], beta=0.0, reference=reference)


def keep_initial(stage_dir: Path, key: str, model: torch.nn.Module, validate) -> FitResult:
    """``flow_steps`` = 0: the starting weights are the stage's result, unchanged (best = last =
    step 0), with their validation loss. For a pretrained generator that fine-tuning with the
    MotionNet loss would undo (the demo's moving-shapes start: README, "A flow generator
    pretrained on moving shapes")."""
    from deg.train.loop import save_checkpoint

    model.eval()
    with torch.no_grad():
        metric = float(validate())
    payload = {"key": key, "step": 0, "metric": metric, "model": model.state_dict()}
    save_checkpoint(stage_dir / "best.pt", payload)
    save_checkpoint(stage_dir / "last.pt", payload)
    return FitResult(steps=0, best_metric=metric, best_step=0, stopped="max_steps")


def train(ctx: RunContext, stage_dir: Path, key: str) -> FitResult:
    from deg.losses import MotionNetLossConfig, motionnet_loss

    loss_config = MotionNetLossConfig.from_hparams(ctx.hparams)
    np_rng, gen = seed_everything(stage_seed(ctx.seed, STAGE))
    model = build(ctx, pretrained=True)
    reg = regulariser(model, ctx.hparams)
    n = ctx.preset.n_flow_frames
    lengths = ctx.lengths()
    split = ctx.flow_training_split        # a Figure 6 run trains its parent split's flow generator
    sampler = FrameSampler(lengths, split.train, np_rng)
    val_videos, val_centers = FrameSampler(lengths, split.val, np.random.default_rng(0)).spaced(
        ctx.profile.val_batches * ctx.profile.flow_batch)
    augment = ctx.augmenter()
    batch = ctx.profile.flow_batch
    fabric = ctx.training_fabric()
    net = setup_module(fabric, model)        # DDP wrapper under several processes
    rows = shard(fabric, batch)              # this process's slice of each global batch

    def train_step(step: int) -> torch.Tensor:
        videos, centers = sampler.sample(batch)
        videos, centers, params = take(rows, videos, centers, augment.sample(batch, gen))
        raw, clip = ctx.clip_batch(videos, centers, n, augment, gen, params)
        flows = net(clip.contiguous())
        # The photometric/SSIM terms compare images in their natural [0, 1] range (SSIM's
        # constants assume it); the network itself sees standardised input.
        total, _ = motionnet_loss(raw, [f.float() for f in flows], loss_config, model.is_3d)
        return total

    def validate() -> float:
        losses, weights = [], []
        for start in range(0, len(val_centers), batch):
            v, c = val_videos[start:start + batch], val_centers[start:start + batch]
            raw, clip = ctx.clip_batch(v, c, n)
            total, _ = motionnet_loss(raw, [f.float() for f in model(clip)], loss_config, model.is_3d)
            losses.append(float(total))
            weights.append(len(c))
        return float(np.average(losses, weights=weights))

    if ctx.profile.flow_steps == 0:
        return keep_initial(stage_dir, key, model, validate)
    return fit(stage_dir, net, train_step, validate, loop_config(ctx), key=key, regulariser=reg,
               generators={"sampler": np_rng, "augment": gen}, fabric=fabric, stage=STAGE,
               desc=f"{STAGE} {ctx.preset.flow_generator}", progress=ctx.progress)


def load(ctx: RunContext, stage_dir: Path) -> torch.nn.Module:
    """The best flow generator, frozen, in eval mode."""
    model = prepare_model(load_best_weights(stage_dir, lambda: build(ctx, on_device=False)), ctx.device,
                          training=False)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def example(ctx: RunContext, model: torch.nn.Module) -> dict[str, np.ndarray]:
    """One clip of the first validation video (its middle frame) and its finest-scale flows.

    Returns {"frames": uint8 (n, H, W, 3), "flows": float32 (n-1, 2, H/2, W/2), "video", "center"}
    for the Figure 1C panel.
    """
    video = ctx.split.val[0] if ctx.split.val else ctx.split.train[0]
    center = len(ctx.frames[video]) // 2
    n = ctx.preset.n_flow_frames
    from deg.train.clips import gather_clips

    frames = gather_clips(ctx.frames, [video], np.array([center]), n)[0]
    _, clip = ctx.clip_batch([video], np.array([center]), n)
    with ctx.precision.autocast():
        flows = model(clip)[0].float()
    flows = flows[0].reshape(n - 1, 2, *flows.shape[-2:]).cpu().numpy().astype(np.float32)
    return {"frames": frames, "flows": flows, "video": np.array(video), "center": np.array(center)}
