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

from dataclasses import asdict, dataclass, field, replace
from typing import Any


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
    n_splits: int
    datasets: tuple[str, ...]
    presets: tuple[str, ...]
    subsample_videos: tuple[int, ...]   # Figure 6 training-set sizes
    subsample_draws: int                # random draws per size
    shuffle_repeats: int
    # bfloat16 autocast on CPUs with native bf16 kernels. Off by default: measured on an AVX-512-BF16
    # EPYC, training under CPU bf16 autocast gave non-finite conv weight gradients now and then
    # (DEG_m layer4 after 60 steps, DEG_s layers 3-4 within 4 steps), which float32 never did.
    bf16: bool = False
    infer_batch: int = 64           # clips per forward pass when extracting features (no gradients)
    # HPARAMS entries this profile replaces (e.g. a larger learning rate for short CPU runs)
    hparams: dict[str, Any] = field(default_factory=dict)
    # Per-preset replacements of the fields above (e.g. smaller images for the 3D model on a CPU)
    preset_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Presets run on these datasets only (others: every dataset of the profile)
    preset_datasets: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.hparams) - set(HPARAMS))
        if unknown:
            raise TypeError(f"profile {self.name!r} replaces unknown HPARAMS entries {unknown}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_preset(self, preset: str) -> "Profile":
        """This profile with ``preset_overrides[preset]`` applied (the fields a run of ``preset`` uses)."""
        return replace(self, **self.preset_overrides.get(preset, {}))


PROFILES: dict[str, Profile] = {
    # Tests: every code path, seconds per stage.
    "tiny": Profile(
        name="tiny", image_size=(16, 16),
        flow_steps=4, feature_steps=10, sequence_steps=6, lr_patience_steps=4,
        val_every=2, val_batches=2,
        flow_batch=2, feature_batch=4, sequence_batch=2, sequence_length=32,
        n_splits=1, datasets=("synthetic_tiny",), presets=("DEG_f",),
        subsample_videos=(1, 2), subsample_draws=1, shuffle_repeats=5,
    ),
    # `make figures` default: synthetic data, all presets, 3 splits, a 2-core CPU in <= 30 min.
    "demo": Profile(
        name="demo", image_size=(32, 32),
        flow_steps=30, feature_steps=150, sequence_steps=150, lr_patience_steps=100,
        val_every=25, val_batches=8,
        flow_batch=8, feature_batch=16, sequence_batch=4, sequence_length=90,
        n_splits=3, datasets=("synthetic_openfield", "synthetic_distractor"),
        presets=("DEG_f", "DEG_m", "DEG_s"),
        subsample_videos=(1, 2, 4), subsample_draws=1, shuffle_repeats=100,
        # From scratch and a few hundred steps: 10x the paper's 1e-4 (which assumes pretrained
        # weights and 20,000 steps). Measured on synthetic_openfield split 0, DEG_f's feature-
        # extractor validation F1: 0.51 (1e-4) and 0.53 (1e-3) after 60 steps, 0.63 (1e-3) after 150.
        hparams={"lr": 1e-3},
        # A feature step of DEG_m costs 3x DEG_f's on a CPU, one of DEG_s 6x at half the batch:
        # fewer steps, half the batch for the 3D model, and one dataset, to fit the 30-minute budget.
        preset_overrides={"DEG_m": {"feature_steps": 60, "sequence_steps": 100},
                          "DEG_s": {"feature_steps": 60, "sequence_steps": 100, "feature_batch": 8}},
        preset_datasets={"DEG_m": ("synthetic_openfield",), "DEG_s": ("synthetic_openfield",)},
    ),
    # The paper's sizes and limits; needs a GPU and the downloads.
    "paper": Profile(
        name="paper", image_size=None,
        flow_steps=10_000, feature_steps=20_000, sequence_steps=100_000,
        lr_patience_steps=5_000, val_every=500, val_batches=0,
        flow_batch=32, feature_batch=32, sequence_batch=32, sequence_length=180,
        n_splits=5,
        datasets=("mouse_ventral1", "mouse_ventral2", "mouse_openfield", "mouse_homecage",
                  "mouse_social", "sturman_epm", "sturman_fst", "sturman_oft", "fly"),
        presets=("DEG_f", "DEG_m", "DEG_s"),
        subsample_videos=(1, 2, 4, 8, 12, 16), subsample_draws=5, shuffle_repeats=100,
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


def get_profile(name: str, **overrides: Any) -> Profile:
    """The named profile, optionally with fields replaced (for notebooks and tests)."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
    return replace(profile, **overrides) if overrides else profile


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
