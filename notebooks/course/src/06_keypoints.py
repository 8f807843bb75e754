# %% [markdown]
# # Lesson 6 — Pixels or keypoints
#
# **What you learn:** the same behaviours classified from *pose* (tracked body points, as DeepLabCut
# gives them) instead of pixels: the paper's keypoint MLP (Methods, "Keypoint-based classification",
# after Sturman et al. 2020) and an unsupervised route (B-SOiD-style: cluster the pose features, then
# name each cluster after the behaviour it overlaps most). When is pose enough, and what does it miss?
#
# Functions doing the work: `deg.pose.data.load_pose_set`, `deg.pose.features` (skeleton features,
# windows), `deg.pose.mlp.KeypointMLP`, `deg.pose.unsupervised` (B-SOiD features, UMAP + HDBSCAN,
# post-hoc assignment), `deg.losses.focal_loss`, `deg.metrics`. Data: the synthetic videos' pose, which
# the generator writes through a simulated tracker (jitter, dropouts, likelihoods): **synthetic pose**.
#
# `clustering = "bsoid"` runs UMAP + HDBSCAN (`deg.pose.unsupervised.fit_clusters`); its first call
# compiles UMAP (about a minute on a 2-core CPU). The tests use `"kmeans"` (scikit-learn's k-means on
# the same features) to stay within seconds; the assignment and scoring code is the same.

# %% tags=["parameters"]
size = "full"
dataset = "synthetic_openfield"
clustering = "bsoid"     # "bsoid" (UMAP + HDBSCAN, the paper's baseline) or "kmeans" (fast)
strict_checks = False

# %%
import numpy as np
import pandas as pd
import torch

from deg import metrics
from deg.course import checks
from deg.data import synthetic
from deg.data.splits import random_split
from deg.losses import focal_loss, pos_weight_from_counts
from deg.postprocess import best_thresholds
from deg.presets import HPARAMS

steps = {"full": 400, "tiny": 5}[size]
torch.manual_seed(0)
torch.set_num_threads(1)
from deg.pose import features as pf, unsupervised
from deg.pose.data import load_pose_set
from deg.pose.mlp import KeypointMLP
from deg.pose.run import pose_hparams

ds = synthetic.generate(dataset, progress=False)
ps = load_pose_set(ds)
hp = pose_hparams("demo")
print(f"{len(ps.pose)} units, points {ps.points}, skeleton {ps.skeleton.name} (synthetic pose)")

# %% [markdown]
# ## 1. What pose gives
# A pose array is (T, animals, points, 3): x, y in pixels and the tracker's likelihood. Body-part
# speeds, distances and angles are the raw material of every keypoint method.
#
# ### Exercise 6.1
# Compute the nose's speed in pixels per second between consecutive frames, (T - 1,), for the first
# unit (`xy`, (T, 2)).

# %%
unit = next(iter(ps.pose))
xy = ps.pose[unit][:, 0, ps.points.index("nose"), :2].astype(np.float64)
fps = ps.fps

# %% tags=["solution"]
nose_speed = np.linalg.norm(np.diff(xy, axis=0), axis=1) * fps

# %%
checks.nose_speed(nose_speed, xy, fps, strict=strict_checks)

# %% [markdown]
# ## 2. The keypoint MLP
# Per frame: the skeleton's features (normalised distances, angles, velocities; `deg.pose.features`),
# then a window of frames T-15..T+15 flattened, into an MLP (256, 128 hidden units). Trained like the
# DEG models: focal loss, positive weights, thresholds from validation.

# %%
half = hp["pose_window_half"]
feats = {u: pf.pose_features(ps.pose[u], ps.points, ps.skeleton, HPARAMS["keypoint_min_likelihood"],
                             arena_px=ps.arena_px) for u in ps.pose}
split = random_split(list(ps.pose), ps.labels, seed=0, behaviours=ps.behaviours)
mean = np.concatenate([feats[u] for u in split.train]).mean(0)
std = np.concatenate([feats[u] for u in split.train]).std(0) + 1e-6
win = {u: pf.windows((feats[u] - mean) / std, half, half).astype(np.float32) for u in ps.pose}
x_tr = torch.from_numpy(np.concatenate([win[u] for u in split.train]))
y_tr = np.concatenate([ps.labels[u] for u in split.train])
mlp = KeypointMLP(x_tr.shape[1], len(ps.behaviours), hidden=hp["mlp_hidden"], dropout=hp["mlp_dropout"])
opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)
pw = pos_weight_from_counts((y_tr == 1).sum(0), (y_tr == 0).sum(0), beta=HPARAMS["pos_weight_beta"])
rng = np.random.default_rng(0)
for step in range(steps):
    idx = torch.from_numpy(rng.integers(0, len(x_tr), size=min(512, len(x_tr))))
    loss = focal_loss(mlp(x_tr[idx]), torch.from_numpy(y_tr[idx.numpy()].astype(np.float32)), pos_weight=pw,
                      gamma=HPARAMS["focal_gamma"], smoothing=HPARAMS["label_smoothing"])
    opt.zero_grad()
    loss.backward()
    opt.step()
mlp.eval()
with torch.no_grad():
    prob = {u: torch.sigmoid(mlp(torch.from_numpy(win[u]))).numpy() for u in ps.pose}
cat = lambda d, units: np.concatenate([d[u] for u in units])
tau = best_thresholds(cat(prob, split.val), cat(ps.labels, split.val))
y_te, p_te = cat(ps.labels, split.test), cat(prob, split.test)
mlp_table = metrics.metrics_table(y_te, (p_te > tau).astype(np.uint8), p_te, ps.behaviours)
print("keypoint MLP, test F1 (synthetic pose):")
print(mlp_table[mlp_table.metric == "f1"].set_index("behaviour").value.round(3))

# %% [markdown]
# ## 3. Unsupervised: clusters, then names
# No labels for training: embed the pose features and cluster them. Afterwards each behaviour is
# assigned the cluster it co-occurs with most (`deg.pose.unsupervised.assign_behaviours`), and that
# cluster "predicts" it. How well clusters line up with human categories is measured by *purity*.

# %%
pts = {u: pf.normalised_points(ps.pose[u], ps.points, ps.skeleton, HPARAMS["keypoint_min_likelihood"],
                               arena_px=ps.arena_px) for u in ps.pose}
bfeat = {u: unsupervised.bsoid_features(pts[u], ps.fps, hp) for u in ps.pose}
train_x = np.concatenate([bfeat[u] for u in split.train])
if clustering == "bsoid":
    model = unsupervised.fit_clusters(train_x, hp, seed=0)
    z = lambda x: ((x - model.mean) / model.std).astype(np.float32)
    assign = lambda x: model.classifier.predict(z(x))
    proba = lambda x: model.classifier.predict_proba(z(x))
    n_clusters = model.n_clusters
else:
    from sklearn.cluster import KMeans
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    n_clusters = 8
    km = KMeans(n_clusters=n_clusters, n_init=3, random_state=0).fit((train_x - mu) / sd)
    assign = lambda x: km.predict((x - mu) / sd)
    proba = lambda x: np.eye(n_clusters)[assign(x)]
clusters_tr = assign(train_x)
mapping = unsupervised.assign_behaviours(unsupervised.cooccurrence(clusters_tr, y_tr))
print(f"{n_clusters} clusters; behaviour -> cluster: {dict(zip(ps.behaviours, mapping.tolist()))}")
# one behaviour per frame for purity: the first present non-background behaviour, else background
primary = np.where((y_tr[:, 1:] == 1).any(1), 1 + np.argmax(y_tr[:, 1:] == 1, axis=1), 0)

# %% [markdown]
# ### Exercise 6.2
# Compute the purity of `clusters_tr` against `primary` (one behaviour id per training frame): for each
# cluster, the number of its frames carrying its most common behaviour; summed over clusters, divided by
# the number of frames.

# %% tags=["solution"]
purity = sum(np.bincount(primary[clusters_tr == c]).max() for c in np.unique(clusters_tr)) / len(primary)

# %%
checks.cluster_purity(purity, clusters_tr, primary, strict=strict_checks)
test_x = np.concatenate([bfeat[u] for u in split.test])
c_te = assign(test_x)
pred_u, score_u = unsupervised.predict_behaviours(c_te, proba(test_x), mapping)
un_table = metrics.metrics_table(y_te, pred_u, score_u, ps.behaviours)
both = pd.DataFrame({"keypoint MLP": mlp_table[mlp_table.metric == "f1"].set_index("behaviour").value,
                     f"clusters ({clustering})": un_table[un_table.metric == "f1"].set_index("behaviour").value})
print("test F1 (synthetic pose):")
print(both.round(3))

# %% [markdown]
# ## Discuss
# * Compare with lesson 3's pixel models. Which behaviours does pose capture well, and which not
#   (the synthetic `rear` brightens the body; `groom` is a fast head bob that a tracker may smooth away)?
# * Pose needs a tracker trained on labelled body points first: where does that labelling cost go in a
#   comparison of methods?
# * Unsupervised clusters are not behaviours: what does a purity of 0.5 mean for a study that reports
#   "time spent in cluster 4"?
