# %% [markdown]
# # Lesson 5 — Honest evaluation
#
# **What you learn:** the four habits that keep a behaviour classifier's numbers honest, as the paper
# and this package follow them:
#
# 1. split **by video**, never by frame (neighbouring frames are near copies);
# 2. choose thresholds on the **validation** videos only, and report the test videos;
# 3. compare with a **chance level**: the same predictions against time-shifted labels;
# 4. compare models with **repeated-measures** statistics over random splits (the split is the subject).
#
# Functions doing the work: `deg.data.splits`, `deg.postprocess.best_thresholds`,
# `deg.metrics.shuffle_table`, `deg.stats`. The classifier is lesson 3's linear toy (`deg.course.toy`),
# so that several splits train in seconds. Data: synthetic.

# %% tags=["parameters"]
size = "full"
dataset = "synthetic_openfield"
strict_checks = False

# %%
import numpy as np
import pandas as pd
import torch

from deg import metrics, stats
from deg.course import checks, toy
from deg.data import synthetic
from deg.data.splits import make_splits, random_split
from deg.losses import pos_weight_from_counts
from deg.postprocess import best_thresholds
from deg.presets import HPARAMS

steps, n_splits, shuffles = {"full": (300, 5, 100), "tiny": (5, 3, 3)}[size]
torch.set_num_threads(1)
ds = synthetic.generate(dataset, progress=False)
labels = {v: ds.labels(v, ds.train_annotator) for v in ds.videos}
feats = {v: toy.frame_features(ds.video_path(v)) for v in ds.videos}
print(f"{len(ds.videos)} videos (synthetic), {sum(len(l) for l in labels.values())} frames")

# %% [markdown]
# ## 1. Split by video
# `random_split` assigns whole videos to train / validation / test (60/20/20) and redraws until every
# behaviour occurs in every subset.
#
# ### Exercise 5.1
# Make the split with seed 0 (`deg.data.splits.random_split`).

# %% tags=["solution"]
split = random_split(ds.videos, labels, seed=0, behaviours=ds.behaviours)

# %%
checks.video_split(split, ds.videos, labels, strict=strict_checks)
split = random_split(ds.videos, labels, seed=0, behaviours=ds.behaviours)   # the lesson goes on with the reference

# %% [markdown]
# ## 2. Thresholds from validation only
# A model outputs probabilities; a threshold per behaviour turns them into an ethogram. Choosing the
# threshold that maximises F1 *on the test set* and then reporting test F1 uses the answers to set the
# exam: the number comes out too good.
#
# ### Exercise 5.2
# Choose `thresholds` with `best_thresholds` from the validation data only.

# %%
sets = {name: toy.stack(feats, getattr(split, name)) for name in ("train", "val", "test")}
ys = {name: np.concatenate([labels[v] for v in getattr(split, name)]) for name in ("train", "val", "test")}
pw = pos_weight_from_counts((ys["train"] == 1).sum(0), (ys["train"] == 0).sum(0), beta=HPARAMS["pos_weight_beta"])
model, norm = toy.fit_streams(sets["train"], ys["train"], ["spatial", "motion"], steps, pos_weight=pw)
val_probs, test_probs = (toy.predict_streams(model, norm, sets[n]) for n in ("val", "test"))

# %% tags=["solution"]
thresholds = best_thresholds(val_probs, ys["val"])

# %%
checks.val_thresholds(thresholds, val_probs, ys["val"], test_probs, ys["test"], strict=strict_checks)


def macro_f1(y, probs, tau):
    t = metrics.metrics_table(y, (probs > tau).astype(np.uint8), probs, ds.behaviours)
    return float(t[(t.behaviour == "macro_nobg") & (t.metric == "f1")].value.iloc[0])


reference = best_thresholds(val_probs, ys["val"])
print(f"test macro F1 with validation thresholds: {macro_f1(ys['test'], test_probs, reference):.3f}")
print(f"test macro F1 with thresholds fitted on test (optimistic, not allowed): "
      f"{macro_f1(ys['test'], test_probs, best_thresholds(test_probs, ys['test'])):.3f}")

# %% [markdown]
# ## 3. Chance level
# How good is "good"? Shift each test video's labels in time by a random offset (the ethogram keeps its
# bouts and proportions but no longer lines up with the video) and score the same predictions:
# `deg.metrics.shuffle_table`. A model must beat this, not zero.

# %%
preds = {v: (toy.predict_streams(model, norm, feats[v]) > reference).astype(np.uint8) for v in split.test}
chance = metrics.shuffle_table([labels[v] for v in split.test], [preds[v] for v in split.test], None,
                               ds.behaviours, n_repeats=shuffles, seed=0)
real = metrics.metrics_table(np.concatenate([labels[v] for v in split.test]),
                             np.concatenate([preds[v] for v in split.test]), None, ds.behaviours)
both = pd.DataFrame({"model": real[real.metric == "f1"].set_index("behaviour").value,
                     "chance (shifted labels)": chance[chance.metric == "f1"].set_index("behaviour").value})
print(both.round(3))

# %% [markdown]
# ## 4. Comparing two models over splits
# Is fusion better than the spatial stream alone? One split gives one number per model: a single
# split can be lucky. Repeat over random splits and test the paired differences; each split is one
# *subject* of a repeated-measures design (`deg.stats.compare_conditions`: a paired t-test for two
# models, an RM-ANOVA with post hoc tests for more, as in the paper's figure legends).

# %%
rows = []
for s in make_splits(ds.videos, labels, n_splits=n_splits, seed=1, behaviours=ds.behaviours):
    tr, va, te = (toy.stack(feats, getattr(s, n)) for n in ("train", "val", "test"))
    ytr, yva, yte = (np.concatenate([labels[v] for v in getattr(s, n)]) for n in ("train", "val", "test"))
    w = pos_weight_from_counts((ytr == 1).sum(0), (ytr == 0).sum(0), beta=HPARAMS["pos_weight_beta"])
    for name, streams in {"spatial": ["spatial"], "fused": ["spatial", "motion"]}.items():
        m, nm = toy.fit_streams(tr, ytr, streams, steps, pos_weight=w)
        tau = best_thresholds(toy.predict_streams(m, nm, va), yva)
        rows.append({"split": s.seed, "model": name, "f1": macro_f1(yte, toy.predict_streams(m, nm, te), tau)})
per_split = pd.DataFrame(rows)
print(per_split.pivot(index="split", columns="model", values="f1").round(3))
print(stats.compare_conditions(per_split, dv="f1", within="model", subject="split").T)

# %% [markdown]
# ### Exercise 5.3
# How many subjects does this test have? (`n_subjects`, a number.)

# %% tags=["solution"]
n_subjects = per_split.split.nunique()

# %%
checks.n_subjects(n_subjects, n_splits, int(sum(len(labels[v]) for v in split.test)), strict=strict_checks)

# %% [markdown]
# ## Discuss
# * Why would a split by *frame* give a much higher test F1 here? Try it.
# * With 5 splits a paired test has little power: what does a non-significant difference mean?
# * The paper reports test F1 over 5 random splits of each dataset, thresholds from validation, chance
#   from shuffled labels: find each in `deg.evaluate.evaluate_run`.
