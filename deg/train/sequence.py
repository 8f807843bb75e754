"""Stage 4: the sequence model (TGM), trained from scratch on feature sequences.

Paper (Methods: Sequence models, Training protocol): input = the concatenated spatial and flow
features (D = 1024) of every frame; training snippets of 180 frames (scaled by the profile);
focal loss with positive weights and label smoothing, plain L2 regularisation (no pretraining),
output biases from the class imbalance; best = highest validation mean F1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deg.train.clips import sample_windows, window
from deg.train.distributed import setup_module, shard, take
from deg.train.common import RunContext, classification_loss, mean_f1, seed_everything, stage_seed, stage_value
from deg.train.loop import FitResult, LoopConfig, WeightPenalty, fit, load_best_weights

STAGE = "sequence"
# Longer videos are predicted in overlapping chunks; the margin exceeds TGM's receptive field
# (3 layers of 15-frame filters: 43 frames) so chunk borders do not change any output.
CHUNK = 32768
MARGIN = 256


# Evaluation source -> its logit array in a feature file (deg.train.feature.FEATURE_ARRAYS): the
# fused feature extractor, then each stream's own (calibration thresholds each of them)
LOGITS = {"feature_extractor": "fe_logits", "flow_stream": "flow_logits", "spatial_stream": "spatial_logits"}

# TGM constructor argument -> HPARAMS["tgm_<name>"]
TGM_ARGS = {"length": "filter_length", "n_filters": "n_filters", "c_in": "c_in", "c_out": "c_out",
            "n_layers": "n_layers", "hidden": "hidden", "input_dropout": "input_dropout",
            "output_dropout": "output_dropout", "kernel": "kernel", "soft_attention": "soft_attention",
            "nonlinear_head": "nonlinear_head", "final_bn": "final_bn"}


def load_features(feature_dir: Path, videos) -> dict[str, dict[str, np.ndarray]]:
    """{video: {"x": float32 (T, 1024) = [spatial | flow], "fe_logits": (T, K)}}, plus each stream's
    own logits ``spatial_logits`` / ``flow_logits`` (T, K) when the file has them."""
    out = {}
    for video in videos:
        path = feature_dir / f"{video}.npz"
        with np.load(path) as z:
            missing = {"spatial", "flow", "fe_logits"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: feature file lacks {sorted(missing)}")
            x = np.concatenate([z["spatial"], z["flow"]], axis=1).astype(np.float32)
            out[video] = {"x": x, **{k: z[k].astype(np.float32) for k in LOGITS.values() if k in z.files}}
    return out


def build(ctx: RunContext, n_features: int, on_device: bool = True) -> torch.nn.Module:
    from deg.models.sequence import build_sequence_model

    h = ctx.hparams
    # Passed explicitly (not left to the constructor's defaults) so per-run HPARAMS overrides apply.
    kwargs = {arg: h[f"tgm_{name}"] for arg, name in TGM_ARGS.items()} if ctx.preset.sequence_model == "tgm" else {}
    model = build_sequence_model(ctx.preset.sequence_model, n_features=n_features, n_classes=ctx.n_classes, **kwargs)
    return model if not on_device else model.to(ctx.device)


def loop_config(ctx: RunContext) -> LoopConfig:
    p, h = ctx.profile, ctx.hparams
    return LoopConfig(max_steps=p.sequence_steps, val_every=p.val_every, patience_steps=p.lr_patience_steps,
                      lr=stage_value(h, "sequence", "lr"), lr_factor=h["lr_factor"], lr_min=h["lr_min"], mode="max")


@torch.no_grad()
def predict(model: torch.nn.Module, x: np.ndarray, device: torch.device, precision) -> np.ndarray:
    """Sigmoid probabilities (T, K) of a whole video's features ``x`` (T, D)."""
    T = len(x)
    out = []
    for start in range(0, T, CHUNK):
        lo, hi = max(0, start - MARGIN), min(T, start + CHUNK + MARGIN)
        xt = torch.from_numpy(np.ascontiguousarray(x[lo:hi].T))[None].to(device)
        with precision.autocast():
            logits = model(xt).float()[0]          # (K, t)
        out.append(torch.sigmoid(logits).T[start - lo:start - lo + min(CHUNK, T - start)].cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def regulariser(model: torch.nn.Module, hparams: dict) -> WeightPenalty:
    """Plain L2, ``sequence_l2_alpha`` (no pretrained reference): every decayed weight towards zero."""
    return WeightPenalty(model, alpha=0.0, beta=hparams["sequence_l2_alpha"])


def train(ctx: RunContext, stage_dir: Path, key: str, features: dict[str, dict[str, np.ndarray]]) -> FitResult:
    np_rng, _ = seed_everything(stage_seed(ctx.seed, STAGE))
    n_features = next(iter(features.values()))["x"].shape[1]
    model = build(ctx, n_features)
    pos, neg = ctx.train_counts()
    model.init_output_bias(pos, neg)
    # the loss constants tuned for this stage when given (deg.tune: sequence_focal_gamma, ...)
    loss_fn = classification_loss(ctx.hparams, pos, neg, ctx.device, stage_prefix="sequence")
    L, batch = ctx.profile.sequence_length, ctx.profile.sequence_batch
    lengths = {v: len(features[v]["x"]) for v in ctx.split.train}
    val_labels = np.concatenate([ctx.labels[v] for v in ctx.split.val])
    fabric = ctx.training_fabric()
    net = setup_module(fabric, model)        # DDP wrapper under several processes
    rows = shard(fabric, batch)              # this process's slice of each global batch

    def train_step(step: int) -> torch.Tensor:
        videos, starts = take(rows, *sample_windows(lengths, ctx.split.train, L, batch, np_rng))
        x = np.stack([window(features[v]["x"], s, L, 0.0) for v, s in zip(videos, starts)])  # (B, L, D)
        y = np.stack([window(ctx.labels[v], s, L, -1) for v, s in zip(videos, starts)])       # (B, L, K)
        x = torch.from_numpy(x).to(ctx.device).transpose(1, 2)                                # (B, D, L)
        y = torch.from_numpy(y).to(ctx.device).transpose(1, 2)                                # (B, K, L)
        # -1 (unlabelled or padding past the end of a video) carries no loss
        return loss_fn(net(x), y)

    def validate() -> float:
        probs = np.concatenate([predict(model, features[v]["x"], ctx.device, ctx.precision) for v in ctx.split.val])
        return mean_f1(probs, val_labels)

    reg = regulariser(model, ctx.hparams)
    return fit(stage_dir, net, train_step, validate, loop_config(ctx), key=key, regulariser=reg,
               generators={"sampler": np_rng}, fabric=fabric, stage=STAGE,
               desc=f"{STAGE} {ctx.preset.sequence_model}", progress=ctx.progress)


def load(ctx: RunContext, stage_dir: Path, n_features: int) -> torch.nn.Module:
    return load_best_weights(stage_dir, lambda: build(ctx, n_features, on_device=False)).to(ctx.device)
