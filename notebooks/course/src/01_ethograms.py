# %% [markdown]
# # Lesson 1 — Ethograms and human disagreement
#
# **What you learn:** what a per-frame label matrix is, what a *bout* is, how much three experts
# disagree on the same video (real data: Sturman et al. 2020), and why behaviour classifiers are
# judged by F1 rather than accuracy.
#
# Everything here is computed by the package: `deg.data` reads labels, `deg.bouts` finds bouts,
# `deg.metrics` scores agreement. The exercises ask you to do by hand what those functions do, and
# a check cell tells you whether your answer is right.
#
# The videos here are **synthetic** (made by `deg.data.synthetic`: a mouse-like subject whose
# behaviours are known frame by frame, and two simulated annotators who disagree the way people do).

# %% tags=["parameters"]
size = "full"            # "full" for the class, "tiny" for the tests
dataset = "synthetic_openfield"
strict_checks = False    # True: a failed check stops the notebook (the solutions run this way)

# %%
import numpy as np
import matplotlib.pyplot as plt

from deg import bouts, metrics, evaluate, paths
from deg.course import checks
from deg.data import synthetic
from deg.data.labels import read_sturman

n_sturman_videos = {"full": 20, "tiny": 2}[size]
ds = synthetic.generate(dataset, progress=False)      # cached in data/<dataset>/ after the first run
print(ds.description)
print("behaviours:", ds.behaviours, "| annotators:", ds.annotators)

# %% [markdown]
# ## 1. Per-frame labels
# A label file has one row per video frame and one column per behaviour, **background first**
# (the frames where none of the behaviours happens). A 1 means "this behaviour is happening in this
# frame". Several behaviours can be 1 on the same frame (here `sniff` overlays `locomote`): each
# column is its own yes/no question, which is why DeepEthogram uses one sigmoid per behaviour, not
# one softmax over all.

# %%
video = ds.videos[0]
truth = ds.labels(video, "truth")
human2 = ds.labels(video, "human2")
print(f"{video}: {truth.shape[0]} frames x {truth.shape[1]} behaviours, dtype {truth.dtype}")
print("frames per behaviour:", dict(zip(ds.behaviours, truth.sum(0).tolist())))

fig, axes = plt.subplots(2, 1, figsize=(10, 3.2), sharex=True)
for ax, (who, lab) in zip(axes, [("truth", truth), ("human2", human2)]):
    ax.imshow(lab.T, aspect="auto", interpolation="nearest", cmap="Greys")
    ax.set_yticks(range(len(ds.behaviours)), ds.behaviours)
    ax.set_title(f"ethogram of {video}, annotator {who} (synthetic)", fontsize=9)
axes[-1].set_xlabel("frame")
plt.tight_layout()

# %% [markdown]
# ## 2. Bouts
# A **bout** is a run of consecutive frames of one behaviour. Counting bouts and their durations
# (`deg.bouts.bout_stats`) is how behaviour is usually reported in papers, so a classifier that
# flickers (many one-frame bouts) is wrong in a way that frame accuracy hides.

# %%
print(bouts.bout_stats(truth, ds.fps, ds.behaviours).pivot(index="behaviour", columns="metric", values="value"))

# %% [markdown]
# ### Exercise 1.1
# Count the bouts of `groom` in `truth` **without** `deg.bouts`: a bout starts at a frame where the
# column is 1 and the previous frame is 0 (or the video starts). Hint: `np.diff` of the column padded
# with a 0 in front.

# %%
k_groom = ds.behaviours.index("groom")
column = truth[:, k_groom]

# %% tags=["solution"]
n_groom_bouts = int((np.diff(np.concatenate([[0], column])) == 1).sum())

# %%
checks.bout_count(n_groom_bouts, truth, k_groom, "groom", strict=strict_checks)

# %% [markdown]
# ## 3. Two people, one video
# `human2` labelled the same video. Its bouts start and stop a few frames away from `truth`'s, it
# missed some short bouts and called part of some grooming "rear". Agreement is measured like a
# classifier: one annotator is taken as the truth, the other as the prediction, per behaviour.

# %%
t, o = evaluate.pair_for_metrics(truth, human2)
table = metrics.metrics_table(t, o, None, ds.behaviours)
print(table[table.metric.isin(["accuracy", "f1"])].pivot(index="behaviour", columns="metric", values="value").round(3))

# %% [markdown]
# ### Exercise 1.2
# Compute the F1 of `human2` against `truth` for `groom` from the counts: TP (both 1), FP (human2 1,
# truth 0), FN (human2 0, truth 1); F1 = 2 TP / (2 TP + FP + FN).

# %%
y, p = truth[:, k_groom], human2[:, k_groom]

# %% tags=["solution"]
tp = int(((y == 1) & (p == 1)).sum())
fp = int(((y == 0) & (p == 1)).sum())
fn = int(((y == 1) & (p == 0)).sum())
f1_groom = 2 * tp / (2 * tp + fp + fn)

# %%
checks.f1_by_hand(f1_groom, truth, human2, k_groom, strict=strict_checks)

# %% [markdown]
# ## 4. Why F1 and not accuracy
# `jump` is rare (about 2% of frames). A "classifier" that never says jump is right on 98% of the
# frames.
#
# ### Exercise 1.3
# Compute the accuracy and the F1 of the predictor that never predicts `jump`.

# %%
k_jump = ds.behaviours.index("jump")
jump = truth[:, k_jump]
never = np.zeros_like(jump)

# %% tags=["solution"]
accuracy_never = float((jump == never).mean())
f1_never = 0.0     # TP = 0, so 2 TP / (2 TP + FP + FN) = 0

# %%
checks.constant_predictor(accuracy_never, f1_never, jump, "jump", strict=strict_checks)

# %% [markdown]
# ## 5. Real experts: the Sturman open-field labels
# Sturman et al. (2020) had three experts (FA, Jin, OS) label 20 open-field videos of 10 minutes at
# 25 fps. The files are public (`../shared/data/sturman`, or `make data`); when they are absent the
# cell says so and the lesson goes on.
#
# **Discuss:** the paper's Figure 5 compares the model with these humans. If two experts agree with
# F1 0.5 on grooming, what F1 should we expect, or demand, from a model trained on one of them?

# %%
sturman = paths.shared_data_dir() / "sturman" / "OFT" / "AllLabDataOFT_final.csv"
if not sturman.exists():
    print(f"SKIPPED: the Sturman label file {sturman} is absent (it is public: see the README's data section)")
else:
    import warnings
    import pandas as pd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # the file has one row without a behaviour type
        st = read_sturman(sturman)
    rows = []
    for v in st.videos[:n_sturman_videos]:
        for a, b in [("FA", "Jin"), ("FA", "OS"), ("Jin", "OS")]:
            if (v, a) in st.matrices and (v, b) in st.matrices:
                tt, oo = evaluate.pair_for_metrics(st.matrices[(v, a)], st.matrices[(v, b)])
                tab = metrics.metrics_table(tt, oo, None, st.behaviours)
                rows.append(tab[tab.metric == "f1"].assign(video=v, pair=f"{a}-{b}"))
    agreement = pd.concat(rows)
    print(f"F1 between experts, mean over {agreement.video.nunique()} real videos (Jumping is rare: few frames, so its F1 swings):")
    print(agreement.pivot_table(index="behaviour", columns="pair", values="value").round(2))

# %% [markdown]
# ## Summary
# * Labels: a (T, K) 0/1 matrix, background first; each behaviour its own yes/no.
# * Bouts are runs of 1s; their counts and durations are what papers report.
# * People disagree, most on short and ambiguous behaviours: the human-human F1 is the ceiling to
#   compare a model with.
# * Accuracy rewards ignoring rare behaviours; F1 (per behaviour, then averaged) does not.
