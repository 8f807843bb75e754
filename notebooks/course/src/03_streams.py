# %% [markdown]
# # Lesson 3 — Seeing behaviour in one frame and in motion: two streams, fusion, class imbalance
#
# **What you learn:** DeepEthogram's feature extractor has two streams, a *spatial* one that sees one
# still frame and a *flow* one that sees motion, fused by averaging their logits. Some behaviours are
# visible in a still frame (`rear`: the body shortens and brightens), others only in motion
# (`locomote`, `groom`). And behaviours are rare, so the loss must weigh them: positive weights and the
# focal loss.
#
# To keep this lesson in seconds on a CPU, each stream here is a **linear classifier on a coarse grid of
# pixels** (`deg.course.toy`), spatial = the frame, motion = the frame difference; DeepEthogram's streams
# are ResNets on frames and on optic flow (`deg.models.feature`, trained by `deg.pipeline`, lesson 7).
# The loss is the package's own: `deg.losses.focal_loss` with `deg.losses.pos_weight_from_counts`.
# Data: synthetic.

# %% tags=["parameters"]
size = "full"
dataset = "synthetic_openfield"
strict_checks = False

# %%
import numpy as np
import pandas as pd
import torch

from deg import metrics
from deg.course import checks, toy
from deg.data import synthetic
from deg.data.splits import random_split
from deg.losses import focal_loss, pos_weight_from_counts
from deg.postprocess import best_thresholds
from deg.presets import HPARAMS

steps = {"full": 300, "tiny": 5}[size]
torch.set_num_threads(1)
ds = synthetic.generate(dataset, progress=False)
labels = {v: ds.labels(v, ds.train_annotator) for v in ds.videos}
split = random_split(ds.videos, labels, seed=0, behaviours=ds.behaviours)
feats = {v: toy.frame_features(ds.video_path(v)) for v in ds.videos}
train, val, test = (toy.stack(feats, s) for s in (split.train, split.val, split.test))
y_train, y_val, y_test = (np.concatenate([labels[v] for v in s]) for s in (split.train, split.val, split.test))
print(f"split by video: train {split.train}, val {split.val}, test {split.test}")
print("training frames per behaviour:", dict(zip(ds.behaviours, (y_train == 1).sum(0).tolist())))

# %% [markdown]
# ## 1. Class imbalance and positive weights
# With few positive frames, a classifier lowers its loss most by predicting "absent" everywhere. The
# paper weighs each behaviour's positive term by w_k = (negatives_k / positives_k) ** beta, with
# beta = 0.25 (`HPARAMS["pos_weight_beta"]`): a rare behaviour counts more, but not in full proportion,
# which would make the model predict it everywhere.
#
# ### Exercise 3.1
# Compute `weights` (one per column of `y_train`) by hand with NumPy.

# %%
beta = HPARAMS["pos_weight_beta"]

# %% tags=["solution"]
positives = (y_train == 1).sum(0)
negatives = (y_train == 0).sum(0)
weights = (np.maximum(negatives, 1) / np.maximum(positives, 1)) ** beta

# %%
checks.pos_weight(weights, y_train, beta, strict=strict_checks)

# %% [markdown]
# ## 2. The focal loss
# The focal loss multiplies each element's cross-entropy by (1 - p)^gamma for positives (p^gamma for
# negatives): frames the model already gets right count less, hard frames more. With gamma = 0 and no
# label smoothing it is the ordinary binary cross-entropy.
#
# ### Exercise 3.2
# Compute the mean binary cross-entropy of `logits` against `targets` by hand (torch, no
# `binary_cross_entropy` function), and compare with `focal_loss(logits, targets, gamma=0, smoothing=0)`.

# %%
g = torch.Generator().manual_seed(3)
logits = torch.randn(6, 4, generator=g)
targets = (torch.rand(6, 4, generator=g) > 0.7).float()

# %% tags=["solution"]
p = torch.sigmoid(logits)
bce = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean().item()

# %%
checks.bce_by_hand(bce, logits, targets, strict=strict_checks)
print("focal_loss(gamma=0, smoothing=0):", focal_loss(logits, targets, None, gamma=0.0, smoothing=0.0).item())
print("focal_loss(gamma=1, smoothing=0.05), the paper's:",
      focal_loss(logits, targets, None, gamma=HPARAMS["focal_gamma"], smoothing=HPARAMS["label_smoothing"]).item())

# %% [markdown]
# ## 3. Spatial, motion, fused
# Three models: the spatial stream alone, the motion stream alone, and both with their logits averaged
# (late fusion). Thresholds come from the validation videos, F1 is measured on the test videos.

# %%
pw = pos_weight_from_counts((y_train == 1).sum(0), (y_train == 0).sum(0), beta=beta)
rows = []
for name, streams in {"spatial": ["spatial"], "motion": ["motion"], "fused": ["spatial", "motion"]}.items():
    model, norm = toy.fit_streams(train, y_train, streams, steps, pos_weight=pw)
    tau = best_thresholds(toy.predict_streams(model, norm, val), y_val)
    probs = toy.predict_streams(model, norm, test)
    table = metrics.metrics_table(y_test, (probs > tau).astype(np.uint8), probs, ds.behaviours)
    rows.append(table[table.metric == "f1"].assign(model=name))
f1 = pd.concat(rows).pivot(index="behaviour", columns="model", values="value")[["spatial", "motion", "fused"]]
print("test F1 (synthetic data, linear toy streams):")
print(f1.round(2))

# %% [markdown]
# ### Exercise 3.3
# From the table: which single stream, `"spatial"` or `"motion"`, detects `locomote` better? Answer
# with the string.

# %%
locomote = {s: float(f1.loc["locomote", s]) for s in ("spatial", "motion")}

# %% tags=["solution"]
stream_for_locomote = max(locomote, key=locomote.get)

# %%
checks.best_stream(stream_for_locomote, locomote, "locomote", strict=strict_checks)

# %% [markdown]
# ## Discuss
# * Which behaviours does each stream see, and why (look at the synthetic generator's table in
#   `deg/data/synthetic.py`: "visible in")? Does fusion help every behaviour?
# * Try `gamma=0` and `pos_weight=None` in `toy.fit_streams`: what happens to `jump`'s F1?
# * Why average logits rather than concatenate features? (Hint: each stream can be trained and checked
#   alone, and the paper trains them first separately.)
