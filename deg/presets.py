"""The one table of numbers: model presets, hyperparameters and run profiles.

Every hyperparameter of the package lives here, with a comment naming the section of
Bohnslav et al., eLife 2021 ("the paper", ``../shared/papers/deepethogram_elife2021.txt``)
it comes from. Notebooks and library code read these values; they never restate them.

Three layers:

* ``PRESETS``: DEG_f / DEG_m / DEG_s, which flow generator, feature extractor and sequence
  model make up each (paper Table 2).
* ``HPARAMS``: optimisation, loss and architecture constants shared by all presets
  (paper Methods: Training protocol, Loss functions, Sequence models, Postprocessing).
* ``PROFILES``: tiny / demo / paper, which only scale *how much* is computed (image size,
  steps, splits, datasets), never *what* is computed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping


# --------------------------------------------------------------------------------------
# Presets (paper Table 2)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    name: str
    flow_generator: str          # key of deg.models.flow.FLOW_GENERATORS
    feature_extractor: str       # key of deg.models.feature.FEATURE_EXTRACTORS
    sequence_model: str = "tgm"  # key of deg.models.sequence.SEQUENCE_MODELS
    n_flow_frames: int = 11      # RGB frames into the flow generator -> n_flow_frames - 1 flows
    n_rgb_frames: int = 1        # RGB frames into the spatial stream (11 for the 3D model)
    feature_dim: int = 512       # per-stream feature size written to disk
    # Parameter counts printed in paper Table 2 (millions), for the tests and Table 2 figure.
    paper_params_m: tuple[float, float, float] = (0.0, 0.0, 0.0)


PRESETS: dict[str, Preset] = {
    # DeepEthogram-fast: TinyMotionNet (1.9M) + ResNet18 x 2 (22.4M) + TGM (250K)
    "DEG_f": Preset("DEG_f", "tinymotionnet", "resnet18", paper_params_m=(1.9, 22.4, 0.25)),
    # DeepEthogram-medium: MotionNet (45.8M) + ResNet50 x 2 with 2048->512 fc (49.2M) + TGM
    "DEG_m": Preset("DEG_m", "motionnet", "resnet50", paper_params_m=(45.8, 49.2, 0.25)),
    # DeepEthogram-slow: TinyMotionNet3D (0.4M) + 3D ResNet34 x 2 (127M) + TGM; 11 RGB frames
    "DEG_s": Preset("DEG_s", "tinymotionnet3d", "resnet3d34", n_rgb_frames=11,
                    paper_params_m=(0.4, 127.0, 0.25)),
}


# --------------------------------------------------------------------------------------
# Hyperparameters shared by every preset
# --------------------------------------------------------------------------------------
HPARAMS: dict[str, Any] = {
    # --- Training protocol -------------------------------------------------------------
    "lr": 1e-4,                     # Adam, initial learning rate, all models
    "lr_factor": 0.1,               # reduce on plateau, neuroscience datasets
    "lr_min": 5e-7,                 # stop when the learning rate falls below this
    "lr_patience_steps": 5000,      # "validation performance saturated for 5000 steps"
    "split_fractions": (0.6, 0.2, 0.2),  # train / validation / test, by video
    # --- Flow generator loss (MotionNet loss; Zhu et al. 2017) --------------------------
    "flow_pixel_alpha": 0.4,        # generalised Charbonnier exponent, photometric term
    "flow_eps": 1e-7,               # Charbonnier epsilon
    "flow_smooth_alpha": 0.3,       # Charbonnier exponent, smoothness term
    "flow_smooth_weights": (0.01, 0.02, 0.04),  # lambda_2 from largest to smallest scale
    "flow_ssim_weight": 1.0,        # lambda_1
    "flow_pixel_weight": 1.0,       # lambda_0
    "flow3d_sparsity_weight": 0.05, # lambda_3, TinyMotionNet3D only
    "flow3d_smooth_factor": 0.25,   # lambda_2 x 0.25 for TinyMotionNet3D
    "flow_l2sp_alpha": 1e-5,        # L2-SP towards pretrained weights
    "flow_max_displacement": 10.0,  # not in the paper: clamp of |flow| in pixels for stability
    # --- Feature extractor ---------------------------------------------------------------
    "fe_dropout": 0.25,             # dropout before the final linear layer (DeepEthogram default)
    "fe_l2sp_alpha": 1e-5,          # L2-SP alpha (pretrained weights)
    "fe_l2sp_beta": 1e-3,           # L2-SP beta (new weights)
    "focal_gamma": 1.0,             # focal loss gamma, feature extractor and sequence model
    "pos_weight_beta": 0.25,        # w_k = (negatives_k / positives_k) ** beta
    "label_smoothing": 0.05,        # targets 0.05 / 0.95
    # --- Sequence model: TGM (Piergiovanni and Ryoo 2018, paper modifications) ----------
    "tgm_filter_length": 15,        # L
    "tgm_n_filters": 8,             # Gaussian (Cauchy) filters per layer
    "tgm_c_in": 1,
    "tgm_c_out": 8,
    "tgm_n_layers": 3,
    "tgm_hidden": 128,              # 128 instead of 512 output channels
    "tgm_input_dropout": 0.5,
    "tgm_output_dropout": 0.5,
    "tgm_kernel": "cauchy",         # published DeepEthogram; "gaussian" is the TGM paper's
    "tgm_soft_attention": True,
    "sequence_length": 180,         # training snippets of 180 frames
    "sequence_l2_alpha": 0.01,      # plain L2 (no pretraining)
    # --- Augmentations (Methods: Augmentations), identical on every frame of a clip ------
    "aug_rotation_degrees": 10.0,   # "rotated each image by up to 10 degrees"
    "aug_flip_p": 0.5,              # flips (where Dataset.flips allows) "with a probability of 0.5"
    "aug_brightness": 0.25,         # not in the paper text: DeepEthogram's default augs.yaml (brightness 0.25)
    "aug_contrast": 0.1,            # not in the paper text: DeepEthogram's default augs.yaml (contrast 0.1)
    # --- Postprocessing ------------------------------------------------------------------
    "bout_percentile": 1.0,         # remove bouts shorter than the 1st percentile (training set)
    # --- Keypoint baseline (Methods: keypoint-based classification) ----------------------
    "keypoint_min_likelihood": 0.9, # "linear interpolation for keypoints with confidence below 0.9"
    # --- Evaluation ----------------------------------------------------------------------
    "shuffle_repeats": 100,         # circular shifts per video
    "train_annotator_sturman": "Jin",
}


# --------------------------------------------------------------------------------------
# Run profiles: how much is computed
# --------------------------------------------------------------------------------------
# Paper, Methods (Statistics): "We repeated this process five times for all datasets" (three
# times for Sturman-EPM, whose record says so).
DEFAULT_SPLITS = 5

@dataclass(frozen=True)
class Profile:
    name: str
    image_size: tuple[int, int] | None  # (H, W) all frames are resized to; None = dataset's own
    flow_steps: int                 # paper: 10,000
    feature_steps: int              # paper: 20,000
    sequence_steps: int             # paper: 100,000
    lr_patience_steps: int          # paper: 5,000
    val_every: int                  # steps between validations
    val_batches: int                # validation batches per validation (0 = all)
    flow_batch: int
    feature_batch: int
    sequence_batch: int
    sequence_length: int
    # Random train/val/test splits per dataset. None (paper-like profiles): the dataset record's
    # own count, deg.data.registry n_splits (paper Methods: five, three for Sturman-EPM), and
    # DEFAULT_SPLITS for a dataset whose record gives none; an int: that count for every dataset
    # (tiny and demo keep theirs small). See splits_for.
    n_splits: int | None
    datasets: tuple[str, ...]
    presets: tuple[str, ...]
    subsample_videos: tuple[int, ...]   # Figure 6 training-set sizes
    subsample_draws: int                # random draws per size
    shuffle_repeats: int
    # Figure 6 datasets (DEG_f runs sub<n>_d<draw>); the profile's own, so an explicit DATASETS
    # selection runs the sweep only on those of these it names
    subsample_datasets: tuple[str, ...] = ()
    # bfloat16 autocast on CPUs with native bf16 kernels. Off by default: measured on an AVX-512-BF16
    # EPYC, training under CPU bf16 autocast gave non-finite conv weight gradients now and then
    # (DEG_m layer4 after 60 steps, DEG_s layers 3-4 within 4 steps), which float32 never did.
    bf16: bool = False
    infer_batch: int = 64           # clips per forward pass when extracting features (no gradients)
    # Initial weights: "kinetics" = the paper's (data/pretrained/<preset>/*.pt when present, else
    # random); "selfsup" = this dataset's self-supervised pretraining (SELFSUP_*, end of file)
    pretrained: str = "kinetics"
    # A flow generator that would start from random weights (no Kinetics file, not "selfsup")
    # starts from supervised pretraining on procedurally moving shapes (deg.train.flow_shapes,
    # FLOW_SHAPES_HPARAMS) when this is > 0: its steps and batch. 0 = random weights.
    flow_shapes_steps: int = 0
    flow_shapes_batch: int = 16
    # HPARAMS entries this profile replaces (e.g. a larger learning rate for short CPU runs)
    hparams: dict[str, Any] = field(default_factory=dict)
    # Per-preset replacements of the fields above (e.g. smaller images for the 3D model on a CPU)
    preset_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Presets run on these datasets only (others: every dataset of the profile)
    preset_datasets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Presets run on the first k splits only (others: every split, ``splits_for``). The splits are
    # the profile's own, so split0 of such a preset trains and tests on split0's videos of every
    # other preset (a paired comparison); the split count that defines them stays ``n_splits``.
    preset_splits: dict[str, int] = field(default_factory=dict)
    # What the caller replaced (get_profile(name, **overrides)): Profile fields and HPARAMS entries,
    # as given. Non-empty overrides give the profile its own results folder (see results_name).
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.hparams) - set(HPARAMS))
        if unknown:
            raise TypeError(f"profile {self.name!r} replaces unknown HPARAMS entries {unknown}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def splits_for(self, dataset_id: str) -> int:
        """Number of random splits of ``dataset_id`` under this profile (see ``n_splits``)."""
        if self.n_splits is not None:
            return int(self.n_splits)
        from deg.data import registry   # registry reads HPARAMS: imported here, not at module level

        try:
            count = registry.get(dataset_id).n_splits
        except KeyError:                 # a user's own dataset: the paper's usual count
            count = None
        return int(count) if count else DEFAULT_SPLITS

    def run_splits(self, dataset_id: str, preset: str) -> int:
        """How many of ``dataset_id``'s splits (``split0`` on) ``preset`` runs: ``splits_for``, or
        fewer where ``preset_splits`` says so."""
        total = self.splits_for(dataset_id)
        return min(total, int(self.preset_splits.get(preset, total)))

    @property
    def results_name(self) -> str:
        """Folder name under ``results/`` and ``figures/``: see :func:`results_name`. ``pretrained``
        is left out: a run from self-supervised weights has its own folder inside the profile's
        (``<dataset>/selfsup/<preset>/<split>``, :func:`deg.train.selfsup.run_dir`)."""
        return results_name(self.name, {k: v for k, v in self.overrides.items() if k != "pretrained"})

    def for_preset(self, preset: str) -> "Profile":
        """This profile with ``preset_overrides[preset]`` applied (the fields a run of ``preset`` uses).

        The caller's overrides keep the last word: they are applied again on top.
        """
        mine = {k: v for k, v in self.overrides.items() if k in PROFILE_FIELDS}
        return replace(self, **{**self.preset_overrides.get(preset, {}), **mine})


PROFILES: dict[str, Profile] = {
    # Tests: every code path, seconds per stage.
    "tiny": Profile(
        name="tiny", image_size=(16, 16),
        flow_steps=4, feature_steps=10, sequence_steps=6, lr_patience_steps=4,
        val_every=2, val_batches=2,
        flow_batch=2, feature_batch=4, sequence_batch=2, sequence_length=32,
        n_splits=1, datasets=("synthetic_tiny",), presets=("DEG_f",),
        subsample_videos=(1, 2), subsample_draws=1, shuffle_repeats=5,
        subsample_datasets=("synthetic_tiny",), flow_shapes_steps=4, flow_shapes_batch=2,
    ),
    # `make figures` default: synthetic data, all presets, 3 splits, aimed at <= 30 min on a 2-core CPU
    # (met on one CPU kind only: README, "Headline numbers").
    "demo": Profile(
        name="demo", image_size=(32, 32),
        # DEG_f's flow generator starts from 800 steps of 8 clips on moving shapes and is kept as it is
        # (flow_steps 0): 30 steps of the MotionNet loss shrank its flows on the subject from 0.14
        # to 0.03 px and the flow stream fell to its "always present" level (README, "A flow
        # generator pretrained on moving shapes"); DEG_m and DEG_s train theirs from random weights.
        flow_steps=0, flow_shapes_steps=800, flow_shapes_batch=8,
        # sequence_steps 100 (150 until 2026-12-03): the same trajectory for the first 100 steps, test F1
        # without background 0.562 / 0.559 / 0.448 on splits 0-2 against 0.563 / 0.559 / 0.403 at
        # 150 (split 2's validation picked step 125 there); sequence stage 21-26 s against 28 s (AVX2 EPYC)
        feature_steps=150, sequence_steps=100, lr_patience_steps=100,
        val_every=25, val_batches=8,
        flow_batch=8, feature_batch=16, sequence_batch=4, sequence_length=90,
        # one synthetic dataset: synthetic_distractor (the harder one) cost 3 DEG_f runs, a Selfee
        # pretraining and its pose runs, ~800 s of the ~5,400 s of one-core job time of a fresh run
        # (2026-12-03, AVX2 EPYC) that had to lose a third for the 30-minute budget; it stays a
        # registered dataset: DATASETS="synthetic_openfield synthetic_distractor" runs both.
        n_splits=3, datasets=("synthetic_openfield",),
        # DEG_f only since 2026-12-03, for the 30-minute budget (fresh runs on the 2-core AVX2 EPYC:
        # 45:22 with every preset and two datasets, 30:57 with DEG_f and DEG_m). Both larger presets
        # ran split 0 only, from random weights, and stayed near chance: DEG_s (16x16, 30 feature
        # steps) a 214 s job at test F1 0.148 against a circular-shift chance of 0.148; DEG_m (16x16,
        # 60 steps, its MotionNet's flows 0.012 px after 30 steps) a 193-234 s job at 0.337 against
        # 0.229. OVERRIDES='{"presets": ["DEG_f", "DEG_m", "DEG_s"]}' adds them, with the sizes of
        # preset_overrides below (and its own results folder).
        presets=("DEG_f",),
        # Figure 6: 1 and 4 of a split's 6 training videos (size 2 too was one more DEG_f run, ~190 s)
        subsample_videos=(1, 4), subsample_draws=1, shuffle_repeats=100,
        subsample_datasets=("synthetic_openfield",),
        # From scratch and a few hundred steps: 10x the paper's 1e-4 (which assumes pretrained
        # weights and 20,000 steps). Measured on synthetic_openfield split 0, DEG_f's feature-
        # extractor validation F1: 0.51 (1e-4) and 0.53 (1e-3) after 60 steps, 0.63 (1e-3) after 150.
        hparams={"lr": 1e-3},
        # A feature step of DEG_m costs 3x DEG_f's on a CPU, one of DEG_s 6x at half the batch:
        # fewer steps, half the batch for the 3D model, one dataset, and 16x16 frames, to fit the
        # 30-minute budget. Measured on synthetic_openfield split 0 (one AVX2 core, 2026-12-03): a
        # DEG_s run 486 s at 32x32 (feature stage 215 s, features 212 s), 254 s at 16x16; DEG_m
        # ~280 s and 191 s (60 feature steps each). Test F1 without background, split 0 (chance
        # 0.21-0.23): DEG_s 0.26 at 32x32, 0.21 at 16x16; DEG_m 0.34 at 16x16. From random weights
        # at these step counts the 3D model stays at chance at either size, so it gets 30 feature
        # steps (~70 s less): enough to show the preset end to end, not to rank it.
        preset_overrides={"DEG_m": {"image_size": (16, 16), "feature_steps": 60, "sequence_steps": 100,
                                    "flow_steps": 30, "flow_shapes_steps": 0},
                          "DEG_s": {"image_size": (16, 16), "feature_steps": 30, "sequence_steps": 100,
                                    "feature_batch": 8, "flow_steps": 30, "flow_shapes_steps": 0}},
        preset_datasets={"DEG_m": ("synthetic_openfield",), "DEG_s": ("synthetic_openfield",)},
        # and on one split: 3 splits of DEG_m and DEG_s took ~1,200 of a fresh run's ~4,800 s of
        # one-core job time (2026-12-02, Intel Xeon, DEG_s split0 341 s); their Figure 3 bars lose
        # the SEM over splits (README, deviations).
        preset_splits={"DEG_m": 1, "DEG_s": 1},
    ),
    # The paper's sizes and limits; needs a GPU and the downloads.
    "paper": Profile(
        name="paper", image_size=None,
        flow_steps=10_000, feature_steps=20_000, sequence_steps=100_000,
        lr_patience_steps=5_000, val_every=500, val_batches=0,
        flow_batch=32, feature_batch=32, sequence_batch=32, sequence_length=180,
        n_splits=None,                  # the records' counts: 5, Sturman-EPM 3 (Methods: Statistics)
        datasets=("mouse_ventral1", "mouse_ventral2", "mouse_openfield", "mouse_homecage",
                  "mouse_social", "sturman_epm", "sturman_fst", "sturman_oft", "fly"),
        presets=("DEG_f", "DEG_m", "DEG_s"),
        # Results, "DeepEthogram performance as a function of training set size": 1, 2, 4, 8, 12
        # or 16 videos, five draws each, DeepEthogram-fast, Mouse-Ventral1, Mouse-Ventral2 and Fly
        subsample_videos=(1, 2, 4, 8, 12, 16), subsample_draws=5, shuffle_repeats=100,
        subsample_datasets=("mouse_ventral1", "mouse_ventral2", "fly"),
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


# --------------------------------------------------------------------------------------
# Overrides: any profile with fields or HPARAMS entries replaced
# --------------------------------------------------------------------------------------
PROFILE_FIELDS = frozenset(f.name for f in fields(Profile)) - {"name", "overrides"}


def _like(value: Any, template: Any) -> Any:
    """``value`` in the types the table uses: JSON gives lists where the table has tuples (every
    sequence here is a tuple), and ints where it has floats."""
    if isinstance(value, list):
        return tuple(_like(v, None) for v in value)
    if isinstance(value, dict):
        return {k: _like(v, template.get(k) if isinstance(template, dict) else None) for k, v in value.items()}
    if isinstance(template, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def check_overrides(overrides: Mapping[str, Any]) -> None:
    """TypeError naming every key that is neither a Profile field nor an HPARAMS entry."""
    unknown = sorted(set(overrides) - PROFILE_FIELDS - set(HPARAMS))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown}: neither Profile fields nor HPARAMS entries "
                        f"(Profile fields: {', '.join(sorted(PROFILE_FIELDS))})")


def get_profile(name: str, **overrides: Any) -> Profile:
    """The named profile with ``overrides`` applied: Profile fields replaced, HPARAMS entries added
    to its ``hparams`` (the caller's value wins over the profile's own). The result records the
    overrides (``Profile.overrides``) and, when there are any, lives in its own results folder
    (:func:`results_name`). Lists are read as the tuples the table uses (JSON from a command line)."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
    if not overrides:
        return profile
    check_overrides(overrides)
    changes = {k: _like(v, getattr(profile, k)) for k, v in overrides.items() if k in PROFILE_FIELDS}
    hparams = {**profile.hparams, **changes.pop("hparams", {}),
               **{k: _like(v, HPARAMS[k]) for k, v in overrides.items() if k in HPARAMS}}
    recorded = {k: _like(v, getattr(profile, k) if k in PROFILE_FIELDS else HPARAMS[k]) for k, v in overrides.items()}
    return replace(profile, **changes, hparams=hparams, overrides=recorded)


def overrides_digest(overrides: Mapping[str, Any]) -> str:
    """8 hex digits of the canonical JSON of ``overrides`` (lists and tuples hash alike)."""
    text = json.dumps(dict(overrides), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def results_name(name: str, overrides: Mapping[str, Any] | None = None) -> str:
    """``results/<this>/`` and ``figures/<this>/``: the profile's name, or ``<name>+<digest>`` when
    fields are overridden, so results of e.g. a shrunk ``paper`` run never mix with the paper's.
    ``results/<name>+<digest>/profile.json`` says what the digest stands for."""
    return f"{name}+{overrides_digest(overrides)}" if overrides else name


def parse_overrides(value: Any) -> dict[str, Any]:
    """Overrides from a command line: JSON object text (``'{"flow_steps": 2}'``), "" or None (none),
    or the structure Snakemake's ``--config`` made of it (it reads values as YAML strings: each
    string is read again as JSON when it parses, so ``"2"`` becomes 2). Names are checked."""
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"overrides must be a JSON object such as '{{\"flow_steps\": 2}}', got {value!r} "
                             f"({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"overrides must be a JSON object (name -> value), got {value!r}")

    def typed(v: Any) -> Any:
        if isinstance(v, str):
            try:
                return json.loads(v)
            except json.JSONDecodeError:
                return v
        if isinstance(v, list):
            return [typed(x) for x in v]
        if isinstance(v, dict):
            return {k: typed(x) for k, x in v.items()}
        return v

    out = {str(k): typed(v) for k, v in value.items()}
    check_overrides(out)
    return out


# --------------------------------------------------------------------------------------
# Flow pretraining on procedurally moving shapes (deg.train.flow_shapes; Profile.flow_shapes_*):
# a textured background under up to three textured ellipses, each translating at constant velocity,
# with the true flow as the target (the idea of Flying Chairs, Dosovitskiy et al. 2015). Values
# chosen here, not from a paper (README, "A flow generator pretrained on moving shapes").
# --------------------------------------------------------------------------------------
FLOW_SHAPES_HPARAMS: dict[str, Any] = {
    "max_speed": 2.5,               # px per frame at the training size; speed = max * u**1.5
    "min_radius": 1.5,              # ellipse semi-axes, px
    "max_radius": 7.0,
    "background_move_p": 0.5,       # clips whose background translates too
    "background_speed": 0.6,        # its speed per axis, uniform in +/- this (px per frame)
    "noise_max": 0.03,              # Gaussian pixel noise, std uniform in [0, this]
    "moving_weight": 4.0,           # moving pixels weigh 1 + this in the end-point error
    "lr": 3e-4,                     # Adam, constant (1e-3 sat at zero flow for 1,000 steps of 8 clips)
    "val_every": 250,               # steps between validations (the best checkpoint is kept)
    "val_clips": 64,                # fixed validation clips
}


# --------------------------------------------------------------------------------------
# Self-supervised pretraining: Selfee (Jia et al., eLife 2022, 10.7554/eLife.76218) and
# self-supervised initialisation of DEG. Facts from the paper's public code
# (github.com/EBGU/Selfee, train_selfee.py, Classification_Fly/Classification_mAP.py);
# read by deg.models.selfsup, deg.train.selfsup and deg.selfee only (not part of DEG's keys).
# --------------------------------------------------------------------------------------
INIT_WEIGHTS = ("kinetics", "selfsup")   # values of Profile.pretrained


def check_init_weights(name: str) -> str:
    """``name`` if it is a value of Profile.pretrained, else a ValueError naming the choices."""
    if name not in INIT_WEIGHTS:
        raise ValueError(f"pretrained={name!r}: choose one of {INIT_WEIGHTS}")
    return name

SELFSUP_HPARAMS: dict[str, Any] = {
    # --- Live frames: grey frames t - d, t, t + d as the R, G, B channels of one image --------
    "live_interval_s": 2 / 30,      # frame_interval = 2 at 30 fps (mice; 1 for flies at 30 fps)
    "gray_weights": (0.299, 0.587, 0.114),  # ITU-R 601 luma (OpenCV's IMREAD_GRAYSCALE)
    # --- Augmentations (RandomTransformed), independent per view -----------------------------
    "crop_min_scale": 0.7,          # crop width and height each uniform in [0.7, 1) of the frame
    "rotation_degrees": 37.0,       # "37 degree for XXH, 45 for others"; zero padding
    "flip_p": 0.5,                  # horizontal and vertical flips (where Dataset.flips allows)
    "turbo_p": 0.5,                 # Turbo colour map applied channel-wise
    "color_jitter": 0.1,            # brightness, contrast, saturation and hue, in random order
    # --- SimSiam network (AddProjector, PredAndCLD) -----------------------------------------
    "projector_layers": 3,          # Linear-BN-ReLU x 2, Linear-BN; width = the backbone's (2048 for ResNet50)
    "predictor_ratio": 0.25,        # predictor bottleneck 512 of 2048
    "cld_dim_ratio": 0.5,           # CLD branch: normalised linear 2048 -> 1024, L2-normalised
    # --- CLD loss (cross-level instance-group discrimination, Wang et al. 2021) --------------
    "cld_clusters": 10,             # k-means clusters per batch
    "cld_iters": 10,                # k-means iterations
    "cld_temperature": 0.07,
    "cld_weight": 2.0,              # maxLambda: loss = SimSiam + 2.0 x CLD
    "batch_from_one_video": True,   # innerShuffle: each batch from one video ("batch effects", mice)
    # --- Optimisation. Selfee: SGD, lr 0.05 per 256 images, momentum 0.9, weight decay 1e-4,
    # one-cycle schedule, 20,000 steps of 256. Here: deg.train.loop's Adam and reduce-on-plateau
    # (one loop for every stage), at the rate below (a deviation, README).
    "lr": 1e-3,
    "weight_decay": 1e-4,
    # --- k-NN classification of the meta-representations (knnSorter) -----------------------
    "knn_k": 200,                   # neighbours (cosine similarity)
    "knn_tau": 0.07,                # neighbour weight exp(similarity / tau) (Wu et al. 2018)
    "knn_balance": True,            # votes weighted by total / count of each class
    "knn_window_s": 0.7,            # temporal mode filter of 21 frames at 30 fps
    # --- 2-D embedding (tSNE_visulizer.py) ---------------------------------------------------
    "embed_max_frames": 2000,       # frames drawn for the t-SNE map
    "embed_pca_dims": 50,           # PCA before t-SNE
    "embed_perplexity": 30.0,
}


@dataclass(frozen=True)
class SelfsupProfile:
    """How much self-supervised pretraining a run profile computes (never *what*)."""

    steps: int                      # SimSiam + CLD steps (Selfee: 20,000 of 256 images)
    batch: int                      # views per branch
    flow_steps: int                 # flow-generator steps on the unlabelled pool
    flow_batch: int
    val_every: int
    pool_max_frames: int            # frames taken from each real video of the pool (0 = none)
    # DEG presets compared from scratch vs self-supervised initialisation, on the first run
    # dataset, at the profile's own step budget (split runs, plus these Figure 6 sizes)
    compare_presets: tuple[str, ...] = ("DEG_f",)
    compare_subsample: tuple[int, ...] = ()
    # the Selfee row's backbone: DEG_f's spatial-stream ResNet18 on a CPU; Selfee's ResNet50 on a GPU
    selfee_backbone: str = "resnet18"


SELFSUP_PROFILES: dict[str, SelfsupProfile] = {
    "tiny": SelfsupProfile(steps=4, batch=8, flow_steps=4, flow_batch=2, val_every=2, pool_max_frames=0,
                           compare_subsample=(1,)),
    # a few minutes of CPU per dataset; the real videos of ../shared/data join the flow pool
    # measured: one ResNet18 step (2 views of 64 at 32x32) ~1.1 s on one AVX2 core, so 32 a batch
    # compared at the 3 splits (6 training videos) and at 1 training video, the low-data end of
    # Figure 6's axis, where pretraining matters most: sizes 2 and 4 too were 2 more DEG_f runs
    # (~380 s of one-core job time, 2026-12-03) over the 30-minute budget
    # 100 SimSiam + CLD steps (150 until 2026-12-03: the two ResNet18 pretrainings were 137-146 s
    # jobs, for the 30-minute budget)
    "demo": SelfsupProfile(steps=100, batch=32, flow_steps=120, flow_batch=8, val_every=50,
                           pool_max_frames=600, compare_subsample=(1,)),
    "paper": SelfsupProfile(steps=20_000, batch=256, flow_steps=10_000, flow_batch=32, val_every=500,
                            pool_max_frames=0, compare_subsample=(1, 2, 4, 8, 12, 16),
                            selfee_backbone="resnet50"),
}


def get_selfsup_profile(name: str) -> SelfsupProfile:
    try:
        return SELFSUP_PROFILES[name]
    except KeyError:
        raise KeyError(f"no self-supervised sizes for profile {name!r}; known: {', '.join(SELFSUP_PROFILES)}") from None


# --------------------------------------------------------------------------------------
# Pose-based methods (deg/pose/): the paper's keypoint MLP (Methods, "Keypoint-based
# classification", after Sturman et al. 2020), its unsupervised baseline (Methods,
# "Unsupervised classification", after B-SOiD, Hsu and Yttri 2021) and ContrastivePose
# (Zhou et al., ../shared/papers/contrastivepose.txt). Read by deg.pose.* only, passed
# explicitly (``deg.pose.run.pose_hparams``); POSE_PROFILES scales how much is computed.
# --------------------------------------------------------------------------------------
POSE_HPARAMS: dict[str, Any] = {
    # --- Keypoint features (Keypoint-based classification) -------------------------------
    # low-confidence points (< HPARAMS["keypoint_min_likelihood"] = 0.9) are interpolated
    "pose_window_half": 15,         # "T-15 frames to T + 15 frames as input to our classifier"
    "pose_min_units": 5,            # fewer videos than this: split each into contiguous segments
    # --- Keypoint MLP (Keypoint-based classification; Sturman et al. architecture) -------
    "mlp_hidden": (256, 128),       # "two hidden layers with 256 and 128 neurons", ReLU
    "mlp_dropout": 0.35,            # "Dropout ... with probability 0.35 between each layer"
    "mlp_l2_alpha": 0.01,           # "L2 regularization" as for the sequence models (alpha = 0.01)
    "mlp_lr": 1e-4,                 # Adam 1e-4, as every DEG model (Training protocol)
    "mlp_epochs": 100,              # "the stopping criterion (100 epochs or when lr reduces below 5e-7)"
    "mlp_batch": 512,               # not in the paper: frames per step
    # focal gamma, positive-weight beta, label smoothing, lr factor / minimum, bout percentile:
    # HPARAMS (the sequence models' values, "training tricks from DeepEthogram sequence models")
    # --- Unsupervised (Unsupervised classification; B-SOiD v2 defaults) -------------------
    "bsoid_bin_s": 0.1,             # B-SOiD: features over non-overlapping 100 ms bins (10 fps)
    "bsoid_smooth_s": 0.06,         # B-SOiD: ~60 ms boxcar smoothing of the frame-wise features
    "umap_n_neighbors": 60,         # B-SOiD's UMAP: n_neighbors 60, min_dist 0
    "umap_min_dist": 0.0,
    "umap_n_components": 3,         # not fixed in the paper (Figure 5-supplement 2B draws 3 axes)
    "hdbscan_min_cluster_fraction": 0.01,  # B-SOiD's slider (0.5-1% of embedded samples); sets
                                    # how many clusters HDBSCAN finds (the paper's run: 11)
    "bsoid_classifier_hidden": (100, 10),  # B-SOiD's fast assignment: MLPClassifier (100, 10)
    "bsoid_classifier_max_iter": 300,
    # --- ContrastivePose (Methods: Sliding window, Contrastive learning) -------------------
    "cp_window": 30,                # "frame t - 29 to frame t" (30 frames at 30 fps)
    "cp_hidden": 128,               # encoder width (the paper's S5 architecture is not in the text)
    "cp_embedding": 64,             # representation handed to the random forest
    "cp_projection": 32,            # projection head for the loss (SimCLR, Chen et al. 2020)
    "cp_temperature": 0.5,          # NT-Xent temperature (not in the text: SimCLR's 0.5)
    "cp_lr": 1e-3,                  # Adam (not in the text)
    "cp_batch": 256,                # windows per step; 2 x 256 views in the NT-Xent loss
    "cp_flip_p": 0.5,               # "random flipping along the x or y axis"
    "cp_rotation": True,            # "rotation by random angles" (uniform 0-360 degrees)
    "cp_translation": 0.1,          # "random translation along both axes" (fraction of the arena)
    "rf_n_estimators": 100,         # random forest (scikit-learn defaults; "A random forest model")
    "rf_min_samples_leaf": 1,
}

# How much the pose methods compute per run profile (never what): steps, frames, trees.
POSE_PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {"mlp_max_steps": 30, "mlp_val_every": 10, "mlp_patience_steps": 10, "mlp_lr": 1e-3,
             "cp_steps": 20, "unsup_embed_frames": 400, "rf_max_train_frames": 2000, "rf_n_estimators": 20,
             "umap_n_neighbors": 15, "umap_n_epochs": 50, "bsoid_classifier_max_iter": 50},
    # demo: 10x the paper's learning rate for short CPU runs, as the DEG models of the demo profile
    "demo": {"mlp_max_steps": 200, "mlp_val_every": 50, "mlp_patience_steps": 100, "mlp_lr": 1e-3, "mlp_batch": 256,
             "cp_steps": 200, "unsup_embed_frames": 2000, "rf_max_train_frames": 10000, "rf_n_estimators": 50,
             "umap_n_epochs": 100, "bsoid_classifier_max_iter": 200},
    # paper: every frame, 100 epochs (mlp_max_steps None = epochs x frames / batch)
    "paper": {"mlp_max_steps": None, "mlp_val_every": 500, "mlp_patience_steps": 5000,
              "cp_steps": 20000, "unsup_embed_frames": 50000, "rf_max_train_frames": None,
              "umap_n_epochs": None},
}

# --------------------------------------------------------------------------------------
# Hyperparameter search (paper Methods: Hyperparameter optimization) -- deg.tune, `make tune`
# --------------------------------------------------------------------------------------
# Per-stage values and switches the search varies. None = the shared entry above (the paper
# finally "used the same parameters for all models"); a value tuned for one stage alone goes here
# so that tuning it leaves the earlier stages' cached outputs valid.
HPARAMS.update({
    "fe_lr": None,                    # feature extractor's learning rate (None: "lr")
    "fe_final_bn": False,             # batch norm after the final fully connected layer (Kocaman et al. 2020)
    "sequence_lr": None,              # sequence model's learning rate (None: "lr")
    "sequence_focal_gamma": None,     # None: "focal_gamma"
    "sequence_pos_weight_beta": None, # None: "pos_weight_beta"
    "sequence_label_smoothing": None, # None: "label_smoothing"
    "tgm_final_bn": False,            # batch norm after the final layer of both TGM heads
    "tgm_nonlinear_head": True,       # "nonlinear classification layer" (width: tgm_hidden); False: one linear layer
})

# What the paper searched, stage by stage (it names the hyperparameters, not their ranges: the
# ranges are ours, spanning the values the paper settled on). Each entry: HPARAMS name ->
# ("log", low, high) log-uniform, ("float", low, high) uniform, ("int", low, high, step) or
# ("choice", [values]).
SEARCH_SPACES: dict[str, dict[str, tuple]] = {
    # "learning rate, alpha and beta from the regularization loss, gamma from the focal loss, beta
    # from the positive example weighting, [final] batch normalization, dropout probability, and
    # label smoothing"
    "feature": {
        "fe_lr": ("log", 1e-5, 1e-2),
        "fe_l2sp_alpha": ("log", 1e-7, 1e-3),
        "fe_l2sp_beta": ("log", 1e-5, 1e-1),
        "focal_gamma": ("float", 0.0, 2.0),
        "pos_weight_beta": ("float", 0.0, 1.0),
        "fe_final_bn": ("choice", [False, True]),
        "fe_dropout": ("float", 0.0, 0.75),
        "label_smoothing": ("float", 0.0, 0.2),
    },
    # "learning rate, regularization alpha, gamma ..., beta ..., [final] batch normalization, input
    # dropout probability, output dropout probability, filter length, number of layers, ... soft
    # attention, ... a nonlinear classification layer, and number of features in [it]"
    "sequence": {
        "sequence_lr": ("log", 1e-5, 1e-2),
        "sequence_l2_alpha": ("log", 1e-4, 1e-1),
        "sequence_focal_gamma": ("float", 0.0, 2.0),
        "sequence_pos_weight_beta": ("float", 0.0, 1.0),
        "tgm_final_bn": ("choice", [False, True]),
        "tgm_input_dropout": ("float", 0.0, 0.75),
        "tgm_output_dropout": ("float", 0.0, 0.75),
        "tgm_filter_length": ("int", 5, 31, 2),
        "tgm_n_layers": ("int", 1, 5, 1),
        "tgm_soft_attention": ("choice", [True, False]),
        "tgm_nonlinear_head": ("choice", [True, False]),
        "tgm_hidden": ("choice", [64, 128, 256, 512]),
    },
}

# Random search with asynchronous successive halving (Li et al. 2020), as the paper ran it in Ray
# Tune; here Optuna's RandomSampler and SuccessiveHalvingPruner. Rungs are counted in validations:
# a trial is first compared after `min_validations` of them, then after 4x, 16x, ...
TUNING: dict[str, Any] = {
    "reduction_factor": 4,          # ASHA's eta: the top 1/4 of a rung goes on (Ray Tune's default)
    "min_validations": 1,           # the first rung, in validations of the tuned stage
}
