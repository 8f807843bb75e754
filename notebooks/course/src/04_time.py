# %% [markdown]
# # Lesson 4 — Time: the TGM sequence model
#
# **What you learn:** a classifier that looks at frames one at a time flickers: its predictions switch
# on and off from frame to frame, so one real bout becomes many. DeepEthogram's last stage, the
# sequence model (TGM: temporal Gaussian mixture, Piergiovanni & Ryoo 2018), reads the per-frame features
# of a window of frames and learns smooth temporal filters. Here: its receptive field, measured with an
# impulse; then it learns to clean up flickering frame-wise evidence.
#
# Functions doing the work: `deg.models.sequence.TGM`, `deg.losses.focal_loss`, `deg.bouts`,
# `deg.metrics`. Data: synthetic labels; the "frame-wise evidence" is made from them with noise (a
# stand-in for a feature extractor's outputs, said so below).

# %% tags=["parameters"]
size = "full"
dataset = "synthetic_openfield"
strict_checks = False

# %%
import numpy as np
import pandas as pd
import torch

from deg import bouts, metrics
from deg.course import checks
from deg.data import synthetic
from deg.losses import focal_loss
from deg.models.sequence import TGM
from deg.presets import HPARAMS

steps = {"full": 300, "tiny": 3}[size]
torch.manual_seed(0)
torch.set_num_threads(1)
ds = synthetic.generate(dataset, progress=False)
K = len(ds.behaviours)

# %% [markdown]
# ## 1. Receptive field
# Each TGM layer convolves every feature along time with a learned kernel of length L (odd); layers
# stack. Feed the model a single nonzero frame (an impulse) and see which output frames change.

# %%
L, n_layers, T = HPARAMS["tgm_filter_length"], 3, 101
tgm = TGM(n_features=K, n_classes=K, length=L, n_layers=n_layers).eval()
with torch.no_grad():
    base = tgm(torch.zeros(1, K, T))
    impulse = torch.zeros(1, K, T)
    impulse[0, :, T // 2] = 5.0
    changed = (tgm(impulse) - base).abs().amax(dim=(0, 1)) > 1e-7
measured = int(changed.sum())
print(f"L = {L}, {n_layers} layers: outputs changed at frames {int(changed.nonzero().min())}..{int(changed.nonzero().max())}")

# %% [markdown]
# ### Exercise 4.1
# Write the receptive field (frames one output sees) as a formula of `L` and `n_layers`.

# %% tags=["solution"]
receptive_field = 2 * n_layers * (L // 2) + 1

# %%
checks.receptive_field(receptive_field, measured, strict=strict_checks)
print(f"at {ds.fps:g} fps that is {measured / ds.fps:.1f} s of video")

# %% [markdown]
# ## 2. Flickering frame-wise evidence
# A stand-in for a feature extractor: for every frame, the true label plus independent noise. Thresholded
# frame by frame it is right most of the time but flickers.

# %%
rng = np.random.default_rng(0)
videos = ds.videos
labels = {v: ds.labels(v, ds.train_annotator) for v in videos}
evidence = {v: (labels[v] + rng.normal(0, 0.6, labels[v].shape)).astype(np.float32) for v in videos}
framewise = {v: (evidence[v] > 0.5).astype(np.uint8) for v in videos}
train_v, test_v = videos[:-1], videos[-1:]
v = test_v[0]
k = ds.behaviours.index("groom")
print(f"{v}: true groom bouts {len(bouts.find_bouts(labels[v][:, k])[1])}")

# %% [markdown]
# ### Exercise 4.2
# Count the `groom` bouts in the frame-wise predictions `framewise[v]` (any method).

# %% tags=["solution"]
n_flicker_bouts = len(bouts.find_bouts(framewise[v][:, k])[1])

# %%
checks.flicker_bouts(n_flicker_bouts, framewise[v], k, strict=strict_checks)

# %% [markdown]
# ### Exercise 4.3
# A hand-made fix: a centred moving average over `width` frames. Write `smooth(x, width)` for a 1-D
# array (same length out, zero padding at the ends).

# %% tags=["solution"]
def smooth(x, width):
    """Centred moving average of a 1-D array over `width` frames."""
    return np.convolve(x, np.ones(width) / width, mode="same")

# %%
checks.moving_average(smooth, strict=strict_checks)

# %% [markdown]
# ## 3. TGM learns its filters
# Train TGM on the evidence of all but one video (windows of 64 frames), then compare on the held-out
# video: frame-wise thresholding, the moving average, and TGM.

# %%
tgm = TGM(n_features=K, n_classes=K, length=L, n_layers=n_layers, hidden=32)
opt = torch.optim.Adam(tgm.parameters(), lr=3e-3)
x_all = {u: torch.from_numpy(evidence[u].T)[None] for u in videos}           # (1, K, T)
y_all = {u: torch.from_numpy(labels[u].T.astype(np.float32))[None] for u in videos}
window = min(64, min(labels[u].shape[0] for u in videos))
for step in range(steps):
    u = train_v[step % len(train_v)]
    s = rng.integers(0, labels[u].shape[0] - window + 1)
    loss = focal_loss(tgm(x_all[u][..., s:s + window]), y_all[u][..., s:s + window], None,
                      gamma=HPARAMS["focal_gamma"], smoothing=HPARAMS["label_smoothing"])
    opt.zero_grad()
    loss.backward()
    opt.step()
tgm.eval()
with torch.no_grad():
    tgm_probs = torch.sigmoid(tgm(x_all[v]))[0].T.numpy()
averaged = np.stack([np.convolve(evidence[v][:, j], np.ones(5) / 5, mode="same") for j in range(K)], 1)
rows = []
for name, pred in {"frame-wise": framewise[v], "moving average": (averaged > 0.5).astype(np.uint8),
                   "TGM": (tgm_probs > 0.5).astype(np.uint8)}.items():
    f1 = metrics.metrics_table(labels[v], pred, None, ds.behaviours)
    rows.append({"method": name, "macro F1 (no background)": float(f1[(f1.behaviour == "macro_nobg") & (f1.metric == "f1")].value.iloc[0]),
                 "groom bouts": len(bouts.find_bouts(pred[:, k])[1])})
print(f"held-out video {v} (true groom bouts: {len(bouts.find_bouts(labels[v][:, k])[1])}):")
print(pd.DataFrame(rows).round(3).to_string(index=False))

# %% [markdown]
# ## Discuss
# * The TGM kernel is a mixture of Cauchy (or Gaussian) bumps with learned centres and widths. What does
#   a wide, centred kernel do? A shifted one?
# * What can a sequence model fix that a frame model cannot, and what can it *not* fix (think of a
#   behaviour the frame model never sees)?
# * The paper also removes bouts shorter than a per-behaviour minimum (`deg.postprocess`). When is that
#   better than more temporal context?
