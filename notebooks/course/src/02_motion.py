# %% [markdown]
# # Lesson 2 — Motion: optic flow by hand, then a network that learns it without labels
#
# **What you learn:** why many behaviours (walking, grooming) are invisible in a single frame; what
# optic flow is; how *warping* the next frame by a flow field reconstructs the current one; and how
# DeepEthogram's flow generator (TinyMotionNet for DEG_f) learns flow from raw video with no labels at
# all, by minimising the reconstruction error (the "MotionNet loss": pixel error, SSIM, smoothness).
#
# Functions doing the work: `deg.data.video.read_video`, `deg.models.flow.warp`,
# `deg.models.flow.build_flow_generator`, `deg.losses.motionnet_loss`, `deg.losses.ssim`. Data: synthetic.

# %% tags=["parameters"]
size = "full"            # "full" for the class, "tiny" for the tests
dataset = "synthetic_openfield"
strict_checks = False

# %%
import numpy as np
import torch
import matplotlib.pyplot as plt

from deg.course import checks
from deg.data import synthetic
from deg.data import video as video_io
from deg.losses import MotionNetLossConfig, motionnet_loss, ssim
from deg.models.flow import build_flow_generator, warp
from deg.presets import HPARAMS

steps = {"full": 60, "tiny": 2}[size]
torch.manual_seed(0)
torch.set_num_threads(1)        # tiny tensors: one thread is faster than two that wait on each other
ds = synthetic.generate(dataset, progress=False)
video = ds.videos[0]
frames = video_io.read_video(ds.video_path(video))          # (T, H, W, 3) uint8, decoded with PyAV
labels = ds.labels(video, "truth")
print(f"{video}: frames {frames.shape}, {ds.fps} fps (synthetic)")

# %% [markdown]
# ## 1. Frame differences
# The simplest motion signal: subtract consecutive frames. Where the animal moves, pixels change.
#
# ### Exercise 2.1
# Compute the **motion energy**: for each pair of consecutive frames, the mean absolute difference over
# all pixels and channels, an array of length T - 1. Careful: the frames are `uint8`.

# %% tags=["solution"]
energy = np.abs(np.diff(frames.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))

# %%
checks.motion_energy(energy, frames, strict=strict_checks)

# %% [markdown]
# Motion energy against the labels: it is high during `locomote`, but grooming in place moves few
# pixels and rearing none once the animal is up. Frame differences tell *that* something moved, not
# *where to*: that is what optic flow adds.

# %%
reference = np.abs(np.diff(frames.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))
for k, name in enumerate(ds.behaviours):
    on = labels[1:, k] == 1
    if on.any():
        print(f"{name:>10}: mean motion energy {reference[on].mean():5.2f} over {on.sum()} frames")

# %% [markdown]
# ## 2. Optic flow and warping
# A flow field gives, for every pixel of frame t, where it went in frame t+1: (dx, dy) in pixels.
# `warp(next_frame, flow)` reads the next frame at (x + dx, y + dy) and so *reconstructs* frame t. If
# the reconstruction is good, the flow is right: this is the whole idea of self-supervised flow.
#
# Here we shift a real frame 2 pixels to the right, so the true flow is known.

# %%
shift = 2
frame = torch.from_numpy(frames[len(frames) // 2]).permute(2, 0, 1)[None].float() / 255   # (1, 3, H, W)
shifted = torch.roll(frame, shifts=shift, dims=-1)                                      # moved right
H, W = frame.shape[-2:]

# %% [markdown]
# ### Exercise 2.2
# Build `flow`, a tensor of shape (1, 2, H, W) (channel 0: x displacement, channel 1: y), such that
# `warp(shifted, flow)` reconstructs `frame`.

# %% tags=["solution"]
flow = torch.zeros(1, 2, H, W)
flow[:, 0] = shift          # every pixel of `frame` is found `shift` pixels further right in `shifted`

# %%
checks.shift_flow(flow, frame, shifted, shift, strict=strict_checks)

# %% [markdown]
# ### Exercise 2.3
# A good reconstruction has the same *structure* as the original, which is what SSIM measures
# (1 = identical). Compute `ssim_same = ssim(frame, frame)` and `ssim_moved = ssim(frame, shifted)`
# with `deg.losses.ssim`.

# %% tags=["solution"]
ssim_same = ssim(frame, frame).item()
ssim_moved = ssim(frame, shifted).item()

# %%
checks.ssim_pair(ssim_same, ssim_moved, frame, shifted, strict=strict_checks)

# %% [markdown]
# ## 3. TinyMotionNet learns flow without labels
# The flow generator takes a clip of 11 frames and outputs 10 flow fields at three scales. Training
# minimises `motionnet_loss`: for each frame pair, warp frame t+1 by the predicted flow and compare with
# frame t by
#
# * a robust pixel error (Charbonnier): is the reconstruction right?
# * 1 - SSIM: is its structure right?
# * a smoothness penalty on the flow's spatial gradients: neighbouring pixels move together
#   (without it, any noisy flow that copies matching colours would do).
#
# No behaviour label is used: this stage can train on every video you have.

# %%
n_frames = 11
model = build_flow_generator("tinymotionnet", n_frames=n_frames)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
clips = torch.from_numpy(frames).permute(3, 0, 1, 2).float()[None] / 255     # (1, 3, T, H, W) in [0, 1]
history = []
rng = np.random.default_rng(0)
loss_config = MotionNetLossConfig.from_hparams(HPARAMS)      # the loss's constants (deg/presets.py)
for step in range(steps):
    starts = rng.integers(0, frames.shape[0] - n_frames, size=2)
    clip = torch.cat([clips[:, :, s:s + n_frames] for s in starts])         # (2, 3, 11, H, W)
    flows = model((clip - 0.5) / 0.25)                                       # normalised input
    loss, parts = motionnet_loss(clip, flows, loss_config)
    opt.zero_grad()
    loss.backward()
    opt.step()
    history.append(parts)
print("first step:", {k: round(v, 4) for k, v in history[0].items()})
print("last step: ", {k: round(v, 4) for k, v in history[-1].items()})

# %%
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
with torch.no_grad():
    f = model((clip[:1] - 0.5) / 0.25)[0][0, :2]                          # finest scale, first pair
axes[0].imshow(clip[0, :, 0].permute(1, 2, 0))
axes[0].set_title("frame t (synthetic)")
axes[1].imshow(f[0], cmap="RdBu")
axes[1].set_title("learned flow x")
axes[2].plot([h["total"] for h in history])
axes[2].set_title("MotionNet loss")
axes[2].set_xlabel("step")
plt.tight_layout()

# %% [markdown]
# ## Discuss
# * Why does the smoothness term get a *larger* weight at coarser scales (0.01, 0.02, 0.04)?
# * Frames where the animal does not move: what flow minimises the loss there? What does that mean for
#   the flow stream's ability to see `rear` after the animal is up?
# * The paper pretrains the flow generator on Kinetics700 and fine-tunes it on each dataset for
#   10,000 steps; this lesson trains a few from scratch. What would you expect to see with more steps?
