"""Self-supervised pretraining stage, once per (profile, dataset), reused by every split and preset.

Three kinds of stage folder under ``results/<profile>/<dataset>/selfsup/``:

* ``<arch>-live/``: Selfee (SimSiam + CLD, :mod:`deg.models.selfsup`) on live frames of every
  video of the dataset -- the Selfee method row (:mod:`deg.selfee`) reads its meta-representations.
* ``<arch>-rgb/``: the same objective on single RGB frames (Selfee's ``RGB_3F = False``), because
  DEG's spatial stream reads RGB frames: its backbone initialises that stream.
* ``flow-<generator>/``: the preset's flow generator trained with its own self-supervised
  MotionNet loss on the unlabelled pool: the dataset's videos plus the real videos in
  ``../shared/data/mabe22/`` and ``../shared/data/videos/`` when present (their first
  ``pool_max_frames`` frames, resized to the run's image size).

No labels are read, so every video of the dataset (test videos included) enters the pool, as
Selfee trains on all of its videos; a split's labels never do. Each folder is a
:class:`deg.train.store.StageDir` keyed by what produced it (dataset files, pool files, image size,
hyperparameters, sizes, seed, code), trained with :func:`deg.train.loop.fit` (resumable), and
holds ``weights.pt`` (the backbone in torchvision layout, or the flow generator's state dict).

A DEG run with ``pretrained="selfsup"`` (:class:`deg.presets.Profile`) starts its flow generator
and its spatial stream's backbone from these weights (:func:`load_initial_weights`), its stage
keys chain in these stages' keys (:func:`weights_key`), its folder is
``results/<profile>/<dataset>/selfsup/<preset>/<split>/`` (:func:`run_dir`), and L2-SP pulls
towards the starting weights as it does towards Kinetics weights in the paper.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deg import io, paths, provenance
from deg.presets import HPARAMS, SELFSUP_HPARAMS, get_preset, get_profile, get_selfsup_profile

CODE = ["models/selfsup.py", "models/feature.py", "models/flow.py", "losses.py", "augment.py",
        "train/loop.py", "train/selfsup.py"]
POOL_FOLDERS = ("mabe22", "videos")          # real unlabelled videos under paths.shared_data_dir()
FLOW_PART, FEATURE_PART = "flow_generator", "feature_extractor"


# --------------------------------------------------------------------------------------
# What a pretraining depends on
# --------------------------------------------------------------------------------------
def _code_key() -> str:
    root = Path(__file__).resolve().parent.parent
    return provenance.config_key({rel: (root / rel).read_text() for rel in CODE})


def pool_files(profile: str) -> list[Path]:
    """Real unlabelled videos joining the flow pool (none when the profile takes 0 frames or ../shared is absent)."""
    if get_selfsup_profile(profile).pool_max_frames <= 0:
        return []
    root = paths.shared_data_dir()
    return sorted(p for folder in POOL_FOLDERS for p in (root / folder).glob("*.mp4"))


def image_size(profile: str, dataset) -> tuple[int, int]:
    from deg.data.video import video_info
    from deg.train.clips import resolve_image_size

    first = next(v for v in dataset.videos if dataset.video_path(v) is not None)
    info = video_info(dataset.video_path(first))
    return resolve_image_size(get_profile(profile).image_size, dataset.image_size, (info.height, info.width))


def stage_config(profile: str, dataset, kind: str, seed: int = 0) -> dict[str, Any]:
    """The configuration a pretraining stage's key hashes. kind: "<arch>-live", "<arch>-rgb", "flow-<gen>"."""
    files = {v: [dataset.video_path(v).stat().st_size, dataset.video_path(v).stat().st_mtime_ns]
             for v in dataset.videos if dataset.video_path(v) is not None}
    pool = [[p.name, p.stat().st_size] for p in pool_files(profile)] if kind.startswith("flow-") else []
    sizes = get_selfsup_profile(profile)
    return {"dataset": dataset.id, "videos": files, "pool": pool, "image_size": list(image_size(profile, dataset)),
            "kind": kind, "selfsup": SELFSUP_HPARAMS, "sizes": sizes.__dict__,
            "flow_hparams": {k: v for k, v in HPARAMS.items() if k.startswith(("flow", "aug_"))},
            "seed": int(seed), "code": _code_key()}


def stage_dir(profile: str, dataset_id: str, kind: str) -> Path:
    return paths.results_dir() / profile / dataset_id / "selfsup" / kind


def run_dir(profile: str, dataset: str, preset: str, split: str) -> Path:
    """Folder of a DEG run initialised from the self-supervised weights (beside, not over, the scratch run)."""
    return paths.results_dir() / profile / dataset / "selfsup" / preset / split


def kinds_for_preset(preset: str) -> dict[str, str]:
    """{part: pretraining kind} a run of ``preset`` starts from (one definition, in deg.train.keys)."""
    from deg.train.keys import init_kinds

    return init_kinds(preset)


# --------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------
def dataset_frames(dataset, size: tuple[int, int], progress: bool = False) -> dict[str, np.ndarray]:
    from deg.train.clips import load_frames

    return load_frames(dataset, [v for v in dataset.videos if dataset.video_path(v) is not None], size, progress)


def pool_frames(profile: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """{"<folder>/<stem>": uint8 (T, H, W, 3)} of the real pool videos, first ``pool_max_frames``, cached."""
    from deg.data.video import read_video, video_info
    from deg.train.clips import frame_cache_path

    n_max = get_selfsup_profile(profile).pool_max_frames
    out = {}
    for path in pool_files(profile):
        name = f"{path.parent.name}/{path.stem}"
        cache = frame_cache_path("_selfsup_pool", f"{path.stem}-first{n_max}", path, size)
        if not cache.exists():
            frames = read_video(path, size=size, start=0, stop=min(n_max, video_info(path).n_frames))
            with io.atomic_path(cache, suffix=".npy") as tmp:
                np.save(tmp, frames)
        out[name] = np.load(cache)
    return out


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _loop_config(steps: int, val_every: int):
    from deg.train.loop import LoopConfig

    return LoopConfig(max_steps=steps, val_every=min(val_every, steps), patience_steps=10 * steps,
                      lr=SELFSUP_HPARAMS["lr"], lr_factor=HPARAMS["lr_factor"], lr_min=HPARAMS["lr_min"], mode="min")


def _train_backbone(sd_path: Path, key: str, arch: str, live: bool, frames: dict[str, np.ndarray], fps: float,
                    flips: dict[str, bool], profile: str, seed: int, progress: bool):
    from deg.models.selfsup import SelfeeAugment, build_selfee, live_frames, live_interval, selfee_loss
    from deg.train.common import seed_everything
    from deg.train.loop import WeightPenalty, fit

    sizes = get_selfsup_profile(profile)
    np_rng, gen = seed_everything(seed)
    device = _device()
    model = build_selfee(arch).to(device)
    augment = SelfeeAugment(flips)
    interval = live_interval(fps)
    videos = sorted(frames)
    lengths = np.array([len(frames[v]) for v in videos], dtype=float)

    def images(video: str, idx: np.ndarray) -> torch.Tensor:
        arr = live_frames(frames[video], idx, interval) if live else frames[video][idx]
        return torch.from_numpy(np.ascontiguousarray(arr)).to(device).permute(0, 3, 1, 2).float() / 255.0

    def batch(rng: np.random.Generator, n: int) -> torch.Tensor:
        if SELFSUP_HPARAMS["batch_from_one_video"]:       # Selfee's innerShuffle
            v = videos[rng.choice(len(videos), p=lengths / lengths.sum())]
            return images(v, rng.integers(0, len(frames[v]), n))
        which = rng.choice(len(videos), size=n, p=lengths / lengths.sum())
        return torch.cat([images(videos[i], rng.integers(0, len(frames[videos[i]]), int((which == i).sum())))
                          for i in np.unique(which)])

    val_rng = np.random.default_rng(seed + 7)
    val_batches = [batch(val_rng, sizes.batch) for _ in range(2)]

    def loss_of(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        total, _ = selfee_loss(model(augment(x, g)), model(augment(x, g)), SELFSUP_HPARAMS["cld_weight"])
        return total

    def train_step(step: int) -> torch.Tensor:
        return loss_of(batch(np_rng, sizes.batch), gen)

    @torch.no_grad()
    def validate() -> float:
        g = torch.Generator().manual_seed(seed + 11)     # the same views at every validation
        return float(np.mean([float(loss_of(x, g)) for x in val_batches]))

    reg = WeightPenalty(model, alpha=0.0, beta=SELFSUP_HPARAMS["weight_decay"])   # plain weight decay
    fit(sd_path, model, train_step, validate, _loop_config(sizes.steps, sizes.val_every), key=key,
        regulariser=reg, generators={"sampler": np_rng, "augment": gen},
        desc=f"selfsup {arch}-{'live' if live else 'rgb'}", progress=progress)
    from deg.train.loop import load_checkpoint

    # the final weights, as Selfee keeps its last checkpoint: the validation loss (fixed views,
    # eval-mode batch norm) only monitors the run; it is no measure of the representation
    final = load_checkpoint(sd_path / "last.pt")["model"]
    backbone = {k[len("backbone."):]: v for k, v in final.items() if k.startswith("backbone.")}
    head = {k: v for k, v in final.items() if not k.startswith("backbone.")}
    with io.atomic_path(sd_path / "weights.pt") as tmp:
        torch.save({"backbone": backbone, "head": head, "arch": arch, "live": live, "interval": interval}, tmp)


def _train_flow(sd_path: Path, key: str, generator: str, n_frames: int, frames: dict[str, np.ndarray],
                flips: dict[str, bool], profile: str, seed: int, progress: bool):
    from deg.augment import ClipAugmenter, Standardizer, channel_stats, to_float_clip
    from deg.losses import MotionNetLossConfig, motionnet_loss
    from deg.models.flow import build_flow_generator
    from deg.train.clips import FrameSampler, gather_clips, to_device
    from deg.train.common import seed_everything
    from deg.train.loop import WeightPenalty, fit, load_checkpoint

    sizes = get_selfsup_profile(profile)
    # the profile's flow-loss constants, passed explicitly (as the flow stage does)
    loss_config = MotionNetLossConfig.from_hparams({**HPARAMS, **get_profile(profile).hparams})
    np_rng, gen = seed_everything(seed)
    device = _device()
    model = build_flow_generator(generator, n_frames=n_frames,
                                 max_displacement=HPARAMS["flow_max_displacement"]).to(device)
    videos = sorted(frames)
    mean, std = channel_stats([frames[v] for v in videos], seed=seed)
    standardise = Standardizer(mean, std).to(device)
    augment = ClipAugmenter(flips=flips, degrees=HPARAMS["aug_rotation_degrees"], flip_p=HPARAMS["aug_flip_p"],
                            brightness=HPARAMS["aug_brightness"], contrast=HPARAMS["aug_contrast"])
    lengths = {v: len(frames[v]) for v in videos}
    sampler = FrameSampler(lengths, videos, np_rng)
    val_v, val_c = FrameSampler(lengths, videos, np.random.default_rng(0)).spaced(2 * sizes.flow_batch)

    def loss_of(v, c, aug) -> torch.Tensor:
        raw = to_float_clip(to_device(gather_clips(frames, v, c, n_frames), device))
        if aug:
            raw = augment(raw, gen)
        total, _ = motionnet_loss(raw, [f.float() for f in model(standardise(raw).contiguous())], loss_config,
                                  model.is_3d)
        return total

    def train_step(step: int) -> torch.Tensor:
        return loss_of(*sampler.sample(sizes.flow_batch), aug=True)

    @torch.no_grad()
    def validate() -> float:
        return float(loss_of(val_v, val_c, aug=False))

    reg = WeightPenalty(model, alpha=HPARAMS["flow_l2sp_alpha"], beta=0.0,
                        reference={k: v.detach().clone() for k, v in model.named_parameters()})
    fit(sd_path, model, train_step, validate, _loop_config(sizes.flow_steps, sizes.val_every), key=key,
        regulariser=reg, generators={"sampler": np_rng, "augment": gen}, desc=f"selfsup flow {generator}",
        progress=progress)
    best = load_checkpoint(sd_path / "best.pt")["model"]
    with io.atomic_path(sd_path / "weights.pt") as tmp:
        torch.save({"model": best, "generator": generator, "norm": {"mean": mean, "std": std}}, tmp)


def pretrain(profile: str, dataset_id: str, kind: str, seed: int = 0, progress: bool = True) -> Path:
    """Train (or resume, or reuse) one pretraining stage; returns its folder (``weights.pt`` inside)."""
    from deg.data.datasets import open_dataset
    from deg.train.store import StageDir, wait_lock

    ds = open_dataset(dataset_id)
    config = stage_config(profile, ds, kind, seed)
    key = provenance.config_key(config)
    path = stage_dir(profile, ds.id, kind)
    with wait_lock(path.parent / f".{kind}.lock"):
        sd = StageDir(path, key, config)
        if sd.done() is not None:
            return path
        sd.prepare()
        size = tuple(config["image_size"])
        frames = dataset_frames(ds, size, progress)
        seed_k = int(provenance.config_key({"seed": seed, "kind": kind}, length=7), 16)
        if kind.startswith("flow-"):
            frames = {**frames, **pool_frames(profile, size)}
            generator = kind[len("flow-"):]
            # every preset's flow generator reads 11 frames (Preset.n_flow_frames)
            _train_flow(path, key, generator, get_preset("DEG_f").n_flow_frames, frames, dict(ds.flips),
                        profile, seed_k, progress)
        else:
            arch, mode = kind.rsplit("-", 1)
            if mode not in ("live", "rgb"):
                raise ValueError(f"unknown pretraining kind {kind!r}: '<arch>-live', '<arch>-rgb' or 'flow-<generator>'")
            _train_backbone(path, key, arch, mode == "live", frames, ds.fps, dict(ds.flips), profile, seed_k, progress)
        sd.finish(n_videos=len(frames), pool=[n for n in frames if "/" in n])
    return path


# --------------------------------------------------------------------------------------
# Initial weights of a DEG run
# --------------------------------------------------------------------------------------
def _check_option(ctx) -> None:
    from deg.presets import check_init_weights

    check_init_weights(ctx.profile.pretrained)


def weights_key(ctx, part: str) -> dict[str, str]:
    """What a DEG stage's key records about its self-supervised starting weights (nothing is trained)."""
    _check_option(ctx)
    kind = kinds_for_preset(ctx.preset.name)[part]
    return {"selfsup": kind, "key": provenance.config_key(stage_config(ctx.profile.name, ctx.dataset, kind, ctx.seed))}


def load_initial_weights(ctx, model: torch.nn.Module, part: str) -> None:
    """Fill ``model`` (flow generator or two-stream model) with this dataset's self-supervised weights.

    The pretraining runs first if it is not cached. Flow generator: every weight. Two-stream
    model: the spatial stream's backbone (strict); the flow stream and the output layers keep
    their random initialisation (no self-supervised weights exist for them).
    """
    _check_option(ctx)
    if ctx.preset.n_rgb_frames != 1:
        raise ValueError(f"pretrained='selfsup' needs a 2D spatial stream on one RGB frame; {ctx.preset.name} "
                         f"reads {ctx.preset.n_rgb_frames} frames with {ctx.preset.feature_extractor}")
    kind = kinds_for_preset(ctx.preset.name)[part]
    path = pretrain(ctx.profile.name, ctx.dataset.id, kind, ctx.seed, ctx.progress) / "weights.pt"
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if part == FLOW_PART:
        model.load_state_dict(saved["model"])
    else:
        model.spatial.backbone.load_state_dict(saved["backbone"])


# --------------------------------------------------------------------------------------
# Command line (workflow/rules/selfsup.smk)
# --------------------------------------------------------------------------------------
def run_selfsup(profile: str, dataset: str, preset: str, split: str, seed: int = 0) -> Path:
    """A DEG run from self-supervised weights, evaluated like the others (preset label ``<preset>+selfsup``)."""
    from deg import evaluate, pipeline
    from deg.data.datasets import open_dataset

    arg = int(split.removeprefix("split")) if split.startswith("split") else split
    out = pipeline.run(dataset, preset, arg, profile=profile, seed=seed, pretrained="selfsup")
    evaluate.evaluate_run(out, open_dataset(dataset), profile, f"{preset}+selfsup", split, seed=seed)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Self-supervised pretraining (Selfee) and runs that start from it")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pretrain", help="pretraining stages of a dataset")
    p.add_argument("dataset")
    p.add_argument("--kinds", nargs="+", required=True, help="e.g. resnet18-live resnet18-rgb flow-tinymotionnet")
    r = sub.add_parser("run", help="a DEG run with pretrained='selfsup', evaluated")
    r.add_argument("dataset")
    r.add_argument("preset")
    r.add_argument("split")
    for a in (p, r):
        a.add_argument("--profile", required=True)
        a.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "pretrain":
        for kind in args.kinds:
            print(f"{args.dataset} {kind}: {pretrain(args.profile, args.dataset, kind, args.seed)}")
    else:
        print(run_selfsup(args.profile, args.dataset, args.preset, args.split, args.seed))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
