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
