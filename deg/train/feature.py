"""Stages 2 and 3: the two-stream feature extractor (flow generator frozen), then per-frame features.

Paper (Methods: Feature extractors): a spatial stream on the RGB frame(s) and a flow stream on
the 10 stacked flows, late average fusion of their logits; focal binary loss with positive
weights w_k = (neg_k / pos_k) ** beta, label smoothing, L2-SP; output biases initialised to the
class imbalance; best = highest validation mean F1 over behaviours excluding background. The
classifier loss is not backpropagated into the flow generator.

Features: the 512-d spatial and flow vectors (and the fused logits) of every frame of every
video, clips padded at the edges, flows computed in batches of clips.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deg import io
from deg.train.clips import FrameSampler
from deg.train.distributed import setup_module, shard, take
from deg.train.common import (RunContext, classification_loss, load_initial_weights, mean_f1, prepare_model,
                              seed_everything, stage_seed, stage_value)
from deg.train.loop import FitResult, LoopConfig, WeightPenalty, fit, load_best_weights

STAGE = "feature"
# Arrays of a feature file <- outputs of the two-stream model (deg.models.feature.TwoStream)
FEATURE_ARRAYS = {"spatial": "spatial_features", "flow": "flow_features", "fe_logits": "logits",
                  "spatial_logits": "spatial_logits", "flow_logits": "flow_logits"}
PART = "feature_extractor"       # name of a pretrained checkpoint (deg.train.common.pretrained_file)


def build(ctx: RunContext, pretrained: bool = False, on_device: bool = True) -> torch.nn.Module:
    """The preset's two-stream model; on the run's device unless ``on_device`` is False."""
    from deg.models.feature import build_two_stream

    model = build_two_stream(ctx.preset.feature_extractor, n_classes=ctx.n_classes,
                             n_flow_frames=ctx.preset.n_flow_frames - 1, n_rgb_frames=ctx.preset.n_rgb_frames,
                             dropout=ctx.hparams["fe_dropout"], final_bn=ctx.hparams["fe_final_bn"])
    if pretrained:
        load_initial_weights(ctx, model, PART)
    return model if not on_device else prepare_model(model, ctx.device)


def loop_config(ctx: RunContext) -> LoopConfig:
    p, h = ctx.profile, ctx.hparams
    return LoopConfig(max_steps=p.feature_steps, val_every=p.val_every, patience_steps=p.lr_patience_steps,
                      lr=stage_value(h, "fe", "lr"), lr_factor=h["lr_factor"], lr_min=h["lr_min"], mode="max")


def _forward(ctx: RunContext, flow_model, model, clip: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        flows = flow_model(clip)[0]       # finest scale (N, 2(n-1), H/2, W/2); frozen
    return model(clip, flows.detach())


def regulariser(model: torch.nn.Module, hparams: dict) -> WeightPenalty:
    """L2-SP (``fe_l2sp_alpha``) towards the starting weights -- pretrained when supplied, else the
    random initialisation -- and ``fe_l2sp_beta`` on the new output layers (towards zero)."""
    reference = {k: v.detach().clone() for k, v in model.named_parameters()}
    return WeightPenalty(model, alpha=hparams["fe_l2sp_alpha"], beta=hparams["fe_l2sp_beta"], reference=reference,
                         new_names=model.new_parameter_names())


def train(ctx: RunContext, stage_dir: Path, key: str, flow_model: torch.nn.Module) -> FitResult:
    np_rng, gen = seed_everything(stage_seed(ctx.seed, STAGE))
    model = build(ctx, pretrained=True)
    pos, neg = ctx.train_counts()
    model.init_output_bias(pos, neg)
    reg = regulariser(model, ctx.hparams)
    loss_fn = classification_loss(ctx.hparams, pos, neg, ctx.device)

    n = ctx.preset.n_flow_frames
    lengths = ctx.lengths()
    sampler = FrameSampler(lengths, ctx.split.train, np_rng, eligible={v: ctx.labelled(v) for v in ctx.split.train})
    val_sampler = FrameSampler(lengths, ctx.split.val, np.random.default_rng(0),
                               eligible={v: ctx.labelled(v) for v in ctx.split.val})
    val_videos, val_centers = val_sampler.spaced(ctx.profile.val_batches * ctx.profile.feature_batch)
    val_labels = ctx.label_rows(val_videos, val_centers)
    augment = ctx.augmenter()
    batch = ctx.profile.feature_batch
    fabric = ctx.training_fabric()
    net = setup_module(fabric, model)        # DDP wrapper under several processes
    rows = shard(fabric, batch)              # this process's slice of each global batch

    def train_step(step: int) -> torch.Tensor:
        videos, centers = sampler.sample(batch)
        videos, centers, params = take(rows, videos, centers, augment.sample(batch, gen))
        _, clip = ctx.clip_batch(videos, centers, n, augment, gen, params)
        out = _forward(ctx, flow_model, net, clip)
        targets = torch.from_numpy(ctx.label_rows(videos, centers)).float().to(ctx.device)
        return loss_fn(out["logits"], targets)

    # The validation clips are fixed and the flow generator frozen, so their flows are computed at
    # the first validation and kept: (N, 2(n-1), H/2, W/2) per batch, e.g. 8 x 16 x 20 x 16 x 16
    # floats in the demo. Saves the generator's forward pass at every later validation (DEG_f,
    # 32x32, one AVX2 core: ~1 s of the ~1.4 s of each).
    val_flows: list[torch.Tensor] = []

    def validate() -> float:
        probs = []
        for i, start in enumerate(range(0, len(val_centers), batch)):
            _, clip = ctx.clip_batch(val_videos[start:start + batch], val_centers[start:start + batch], n)
            if i == len(val_flows):
                with torch.no_grad():
                    val_flows.append(flow_model(clip)[0].detach())
            logits = model(clip, val_flows[i])["logits"]
            probs.append(torch.sigmoid(logits.float()).cpu().numpy())
        return mean_f1(np.concatenate(probs), val_labels)

    return fit(stage_dir, net, train_step, validate, loop_config(ctx), key=key, regulariser=reg,
               generators={"sampler": np_rng, "augment": gen}, fabric=fabric, stage=STAGE,
               desc=f"{STAGE} {ctx.preset.feature_extractor}", progress=ctx.progress)


def load(ctx: RunContext, stage_dir: Path) -> torch.nn.Module:
    return prepare_model(load_best_weights(stage_dir, lambda: build(ctx, on_device=False)), ctx.device,
                          training=False)


@torch.inference_mode()
def extract(ctx: RunContext, out_dir: Path, flow_model, model, batch: int, videos=None) -> list[str]:
    """Write ``out_dir/<video>.npz`` per video: spatial (T, 512), flow (T, 512), fe_logits (T, K) (the
    fused logits) and each stream's own logits, spatial_logits and flow_logits (T, K), which the
    evaluation scores as sources of their own (what each stream sees, e.g. motion-only behaviours).

    Videos whose file exists are skipped (files are written atomically, so an existing one is
    complete): a killed extraction resumes at the next video. ``videos``: a subset of the run's
    videos (one DDP process's share); None = all. Returns the videos written now.
    """
    from tqdm.auto import tqdm

    n = ctx.preset.n_flow_frames
    todo = [v for v in (ctx.videos if videos is None else videos) if not (out_dir / f"{v}.npz").exists()]
    written = []
    total = sum(len(ctx.frames[v]) for v in todo)
    with tqdm(total=total, desc="features", disable=not ctx.progress, leave=False, dynamic_ncols=True) as bar:
        for video in todo:
            T = len(ctx.frames[video])
            parts: dict[str, list[np.ndarray]] = {k: [] for k in FEATURE_ARRAYS}
            for start in range(0, T, batch):
                centers = np.arange(start, min(start + batch, T))
                _, clip = ctx.clip_batch([video] * len(centers), centers, n)
                with ctx.precision.autocast():
                    out = _forward(ctx, flow_model, model, clip)
                for name, output in FEATURE_ARRAYS.items():
                    parts[name].append(out[output].float().cpu().numpy())
                bar.update(len(centers))
            arrays = {k: np.concatenate(v).astype(np.float32) for k, v in parts.items()}
            io.write_npz(out_dir / f"{video}.npz", **arrays)
            written.append(video)
    return written
