"""What every training stage shares: the run context, seeds, precision, batches and the F1 metric."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deg import paths
from deg.augment import ClipAugmenter, Standardizer, channel_stats, to_float_clip
from deg.train.clips import gather_clips, load_frames, to_device
from deg.train.keys import pretrained_file, stage_seed, starts_from_shapes  # noqa: F401  (torch-free, used by the keys)
from deg.train.loop import Precision


def seed_everything(seed: int) -> tuple[np.random.Generator, torch.Generator]:
    """Seed torch's global RNG (init, dropout) and return a numpy and a torch generator for the stage."""
    torch.manual_seed(seed)
    np_rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    return np_rng, gen


def stage_value(hparams: dict[str, Any], stage_prefix: str, name: str) -> Any:
    """``hparams[f"{stage_prefix}_{name}"]`` when set (a value tuned for one stage), else ``hparams[name]``.

    E.g. ``stage_value(h, "fe", "lr")``: the feature extractor's learning rate, ``h["lr"]`` unless
    ``h["fe_lr"]`` is given (``deg.tune`` searches such per-stage names, so tuning one stage
    leaves the stages before it, and their cached outputs, untouched).
    """
    own = hparams.get(f"{stage_prefix}_{name}")
    return hparams[name] if own is None else own


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bfloat16 kernels (AVX512-BF16/AMX); emulated bf16 is far slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_precision(device: torch.device, bf16: bool) -> Precision:
    """CUDA: bf16 autocast where supported, else fp16 (with a gradient scaler).

    CPU: bf16 autocast only when asked for *and* the CPU has native bf16 kernels; measured on an
    AVX2-only CPU, bf16 convolutions are 30-70x slower than float32, so float32 is the fallback.
    """
    if device.type == "cuda":
        return Precision("cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if bf16 and cpu_supports_bf16():
        return Precision("cpu", torch.bfloat16)
    return Precision("cpu", None)


def load_pretrained(model: torch.nn.Module, preset: str, part: str) -> None:
    from deg.models.pretrained import maybe_load

    maybe_load(model, pretrained_file(preset, part))


def load_initial_weights(ctx: "RunContext", model: torch.nn.Module, part: str) -> None:
    """A stage's starting weights: ``ctx.profile.pretrained`` = "selfsup" takes this dataset's
    self-supervised weights (:mod:`deg.train.selfsup`); otherwise the Kinetics/ImageNet file of
    :func:`pretrained_file` when present; else, for a flow generator under a profile with
    ``flow_shapes_steps``, the moving-shapes pretraining; else the random initialisation."""
    if ctx.profile.pretrained == "selfsup":
        from deg.train import selfsup

        selfsup.load_initial_weights(ctx, model, part)
    elif starts_from_shapes(ctx.preset, ctx.profile, part):
        from deg.train import flow_shapes

        flow_shapes.load_initial_weights(ctx, model)
    else:
        load_pretrained(model, ctx.preset.name, part)


def memory_format(model: torch.nn.Module, device: torch.device, training: bool) -> torch.memory_format:
    """channels_last(_3d) on CUDA, and on the CPU for inference; contiguous for CPU training.

    Measured on the 2-core AVX2 CPU (one thread, 32x32 clips): channels_last speeds up inference
    of the flow generators and feature extractors by 1.3-1.8x, but slows CPU training steps
    (forward + backward) by 5-30% for the 2D models, so CPU training keeps the default layout.
    """
    if device.type != "cuda" and training:
        return torch.contiguous_format
    has_3d = any(isinstance(m, torch.nn.Conv3d) for m in model.modules())
    return torch.channels_last_3d if has_3d else torch.channels_last


def prepare_model(model: torch.nn.Module, device: torch.device, training: bool = True) -> torch.nn.Module:
    """``model`` on ``device`` in the memory layout that is fastest there for training or inference."""
    return model.to(device=device, memory_format=memory_format(model, device, training))


@dataclass
class RunContext:
    """Everything a stage needs about one run. Frames are loaded lazily (cached stages skip them)."""

    dataset: Any                         # deg.data.datasets.Dataset
    preset: Any                          # deg.presets.Preset
    profile: Any                         # deg.presets.Profile
    hparams: dict[str, Any]
    split: Any                           # deg.data.splits.Split
    labels: dict[str, np.ndarray]        # video -> (T, K) int8 of the training annotator
    videos: list[str]                    # every video with a video file (all get predictions)
    image_size: tuple[int, int]
    device: torch.device
    precision: Precision
    seed: int
    progress: bool = True
    flow_split: Any = None               # the split the flow generator trains on (None: ``split``)
    norm: dict[str, list[float]] | None = None   # {"mean": [3], "std": [3]} once known
    # Lightning Fabric the stages train on (deg.train.distributed); None: one process on ``device``
    fabric: Any = None
    _frames: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def training_fabric(self):
        """The run's Fabric (made on first use: one process on ``device`` with ``precision``)."""
        if self.fabric is None:
            from deg.train.distributed import make_fabric

            self.fabric = make_fabric(self.device, self.precision)
        return self.fabric

    @property
    def behaviours(self) -> list[str]:
        return list(self.dataset.behaviours)

    @property
    def n_classes(self) -> int:
        return len(self.dataset.behaviours)

    @property
    def frames(self) -> dict[str, np.ndarray]:
        if self._frames is None:
            self._frames = load_frames(self.dataset, self.videos, self.image_size, progress=self.progress)
            for video, lab in self.labels.items():
                if video in self._frames and len(lab) != len(self._frames[video]):
                    raise ValueError(f"{self.dataset.label_path(video)}: {len(lab)} label rows but the video "
                                     f"{self.dataset.video_path(video)} has {len(self._frames[video])} frames")
        return self._frames

    def lengths(self) -> dict[str, int]:
        return {v: len(a) for v, a in self.frames.items()}

    @property
    def flow_training_split(self) -> Any:
        """The split whose videos train the flow generator: ``flow_split`` (a Figure 6 run's
        parent split, the paper's "flow generator trained only once") or the run's own."""
        return self.flow_split if self.flow_split is not None else self.split

    def compute_norm(self) -> dict[str, list[float]]:
        """Channel mean/std of the flow generator's training videos (paper: inputs standardised
        channel-wise); part of the flow stage, so every run sharing a flow generator shares it."""
        split = self.flow_training_split
        mean, std = channel_stats([self.frames[v] for v in split.train], seed=self.seed)
        self.norm = {"mean": mean, "std": std}
        return self.norm

    @cached_property
    def standardizer(self) -> Standardizer:
        if self.norm is None:
            raise RuntimeError("normalisation statistics are not known yet (flow stage not run or loaded)")
        return Standardizer(self.norm["mean"], self.norm["std"]).to(self.device)

    def augmenter(self) -> ClipAugmenter:
        return ClipAugmenter(flips=dict(self.dataset.flips),
                             degrees=float(self.hparams["aug_rotation_degrees"]),
                             flip_p=float(self.hparams["aug_flip_p"]),
                             brightness=float(self.hparams["aug_brightness"]),
                             contrast=float(self.hparams["aug_contrast"]))

    def clip_batch(self, videos, centers, n_frames: int, augment: ClipAugmenter | None = None,
                   generator: torch.Generator | None = None,
                   params: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw, standardised) float clips (B, 3, n_frames, H, W) on the device; raw is in [0, 1].

        Augmentation (training only) happens on the device, after the uint8 copy (4x less traffic);
        ``params``: augmentation parameters drawn beforehand (``augment.sample``), else drawn now.
        """
        frames = to_device(gather_clips(self.frames, videos, centers, n_frames), self.device)
        clip = to_float_clip(frames)
        if augment is not None:
            clip = augment(clip, generator, params)
        return clip, self.standardizer(clip)

    def label_rows(self, videos, frames) -> np.ndarray:
        """(B, K) int8 labels of (video, frame) pairs."""
        return np.stack([self.labels[str(v)][int(t)] for v, t in zip(videos, frames)])

    def labelled(self, video: str) -> np.ndarray:
        """(T,) bool: frames whose every behaviour is labelled (no -1)."""
        return (self.labels[video] >= 0).all(axis=1)

    def train_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative frame counts per behaviour (K,) over the training videos."""
        lab = np.concatenate([self.labels[v] for v in self.split.train])
        return (lab == 1).sum(axis=0).astype(np.float64), (lab == 0).sum(axis=0).astype(np.float64)


def classification_loss(hparams: dict[str, Any], positives: np.ndarray, negatives: np.ndarray,
                        device: torch.device | str = "cpu", stage_prefix: str | None = None):
    """The feature extractors' and sequence models' loss with the run's constants (paper Methods,
    "Loss functions"): weighted binary focal loss, ``pos_weight`` from the training set's counts
    ((neg/pos)^``pos_weight_beta``), ``focal_gamma``, ``label_smoothing``. Returns
    ``loss(logits, targets) -> scalar`` for logits (N, K) or (N, K, T). ``stage_prefix``: read a
    value tuned for one stage (``sequence_focal_gamma``, ...) where given (:func:`stage_value`)."""
    from deg.losses import focal_loss, pos_weight_from_counts

    def value(name: str):
        return stage_value(hparams, stage_prefix, name) if stage_prefix else hparams[name]

    pos_weight = pos_weight_from_counts(positives, negatives, beta=value("pos_weight_beta")).to(device)
    gamma, smoothing = float(value("focal_gamma")), float(value("label_smoothing"))

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits.float(), targets, pos_weight, gamma=gamma, smoothing=smoothing)

    return loss


def mean_f1(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean F1 over non-background behaviours at the F1-maximising thresholds (model selection).

    probs (N, K) float, labels (N, K) -1/0/1 (-1 elements ignored). Behaviours without a positive
    frame are left out; NaN when none is left (the loop never counts NaN as an improvement).
    """
    from deg.metrics import confusion_counts, per_behaviour
    from deg.postprocess import best_thresholds

    if not (labels >= 0).any():
        return float("nan")
    thresholds = np.asarray(best_thresholds(probs, labels), dtype=np.float64)
    preds = (probs > thresholds[None, :]).astype(np.uint8)
    f1 = per_behaviour(confusion_counts(labels, preds))["f1"][1:]
    f1 = f1[~np.isnan(f1)]
    return float(f1.mean()) if len(f1) else float("nan")
