"""Unsupervised clustering with post-hoc assignment (paper Methods, "Unsupervised classification").

The paper ran B-SOiD v2 (Hsu and Yttri 2021) on the DeepLabCut outputs: pose features, a UMAP
embedding, HDBSCAN clusters (11 on Mouse-Openfield), a classifier trained on the cluster labels
for fast assignment of every frame; then "a simple lookup table that mapped human annotations to
B-SoID clusters by counting the frames on which they co-occurred. For each human label, we picked
the B-SoID cluster with the maximum number of co-occurring labels ... We used this mapping to
'predict' human labels on the test set". Written here from that description and B-SOiD's
published defaults (no B-SOiD code):

* Frame features (B-SOiD): distances between every pair of points, the frame-to-frame change of
  each pair's angle, the displacement of each point; smoothed over ~60 ms; aggregated over
  100 ms windows (distances averaged, angle changes and displacements summed). Training samples
  are non-overlapping 100 ms bins; every frame is assigned through its centred 100 ms window
  (B-SOiD's frame-shift prediction).
* UMAP (umap-learn; n_neighbors 60, min_dist 0) on the z-scored bins, HDBSCAN (scikit-learn) on
  the embedding with ``min_cluster_size`` a fraction of the embedded bins; noise bins are left out.
* A multilayer perceptron (scikit-learn, hidden (100, 10)) from bin features to clusters.

Shapes: pose points (T, A, P, 2) in arena units; features (T, F); clusters (T,) int.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

# umap-learn's own threshold: below it every pairwise distance is computed (no NN-descent)
UMAP_EXACT_BELOW = 4096


def _boxcar(x: np.ndarray, n: int, how: str) -> np.ndarray:
    """Centred running mean or sum over n frames of x (T, F), edges use what is inside."""
    if n <= 1:
        return x.astype(np.float32)
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0, dtype=np.float64)])
    T = len(x)
    lo = np.clip(np.arange(T) - n // 2, 0, T)
    hi = np.clip(lo + n, 0, T)
    total = c[hi] - c[lo]
    out = total / (hi - lo)[:, None] if how == "mean" else total * (n / (hi - lo))[:, None]
    return out.astype(np.float32)


def bsoid_features(pts: np.ndarray, fps: float, hp: dict[str, Any]) -> np.ndarray:
    """B-SOiD-style features (T, F) of each frame's centred 100 ms window; pts (T, A, P, 2).

    F = n_pairs distances + n_pairs angle changes + n_points displacements (all points of all
    animals together).
    """
    T = len(pts)
    flat = pts.reshape(T, -1, 2).astype(np.float64)
    n = flat.shape[1]
    pairs = list(itertools.combinations(range(n), 2))
    i, j = np.array([p[0] for p in pairs], int), np.array([p[1] for p in pairs], int)
    vec = flat[:, j] - flat[:, i]                                            # (T, n_pairs, 2)
    dist = np.linalg.norm(vec, axis=-1)
    ang = np.arctan2(vec[..., 1], vec[..., 0])
    dang = np.zeros_like(ang)
    dang[1:] = np.angle(np.exp(1j * (ang[1:] - ang[:-1])))                   # wrapped to (-pi, pi]
    disp = np.zeros((T, n))
    disp[1:] = np.linalg.norm(flat[1:] - flat[:-1], axis=-1)
    smooth = max(1, int(round(hp["bsoid_smooth_s"] * fps)))
    binn = max(1, int(round(hp["bsoid_bin_s"] * fps)))
    d = _boxcar(_boxcar(np.nan_to_num(dist), smooth, "mean"), binn, "mean")
    a = _boxcar(_boxcar(np.nan_to_num(dang), smooth, "mean"), binn, "sum")
    m = _boxcar(_boxcar(np.nan_to_num(disp), smooth, "mean"), binn, "sum")
    return np.concatenate([d, a, m], axis=1).astype(np.float32)


def bin_frames(T: int, fps: float, hp: dict[str, Any]) -> np.ndarray:
    """Centre frames of the non-overlapping 100 ms bins of a T-frame video (B-SOiD's samples)."""
    binn = max(1, int(round(hp["bsoid_bin_s"] * fps)))
    return np.arange(binn // 2, T, binn)


@dataclass
class Clustering:
    """A fitted embedding + clustering + fast classifier.

    embedding: (N, D) UMAP coordinates of the N embedded bins; clusters (N,) HDBSCAN labels
    (-1 = noise); n_clusters; classifier: features -> cluster; scaler mean/std (F,);
    classifier_accuracy: on held-out non-noise bins (B-SOiD's check of its fast assignment).
    """

    embedding: np.ndarray
    clusters: np.ndarray
    n_clusters: int
    classifier: Any
    mean: np.ndarray
    std: np.ndarray
    classifier_accuracy: float

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(clusters (T,), probabilities (T, n_clusters)) of feature rows x (T, F)."""
        z = (x - self.mean) / self.std
        if self.n_clusters == 1:
            return np.zeros(len(x), int), np.ones((len(x), 1), np.float32)
        proba = self.classifier.predict_proba(z).astype(np.float32)
        full = np.zeros((len(x), self.n_clusters), np.float32)
        full[:, self.classifier.classes_] = proba
        return full.argmax(1), full


def fit_clusters(samples: np.ndarray, hp: dict[str, Any], seed: int) -> Clustering:
    """UMAP -> HDBSCAN -> classifier on bin features ``samples`` (N, F)."""
    import umap
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics import pairwise_distances
    from sklearn.neural_network import MLPClassifier

    mean = samples.mean(0)
    std = np.where(samples.std(0) > 1e-8, samples.std(0), 1.0)
    z = ((samples - mean) / std).astype(np.float32)
    n_neighbors = int(min(hp["umap_n_neighbors"], len(z) - 1))
    # Below UMAP_EXACT_BELOW samples umap-learn computes every pairwise distance itself, calling
    # its numba metric once per pair from Python (4 M calls, ~28 s for 2,000 samples); the same
    # Euclidean matrix from scikit-learn's vectorised code is handed over as "precomputed".
    # Above it umap-learn's approximate nearest neighbours (NN-descent) run as they are.
    exact = len(z) < UMAP_EXACT_BELOW
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # umap: "n_jobs overridden by random_state" etc.
        reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=float(hp["umap_min_dist"]),
                            n_components=int(hp["umap_n_components"]), random_state=seed,
                            n_epochs=hp.get("umap_n_epochs"), init="random",
                            metric="precomputed" if exact else "euclidean")
        emb = reducer.fit_transform(pairwise_distances(z) if exact else z).astype(np.float32)
    min_size = max(2, int(round(hp["hdbscan_min_cluster_fraction"] * len(z))))
    labels = HDBSCAN(min_cluster_size=min_size, copy=True).fit_predict(emb)
    if labels.max() < 0:                        # everything noise: one cluster
        labels = np.zeros(len(z), int)
    n_clusters = int(labels.max()) + 1
    keep = labels >= 0
    classifier, acc = None, 1.0
    if n_clusters > 1:
        # B-SOiD's check of its fast assignment: fit on 80% of the clustered bins, score the rest;
        # the same classifier then assigns every frame
        rng = np.random.default_rng(seed)
        idx = rng.permutation(np.flatnonzero(keep))
        n_test = max(1, len(idx) // 5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")    # ConvergenceWarning at small max_iter
            classifier = MLPClassifier(hidden_layer_sizes=tuple(hp["bsoid_classifier_hidden"]),
                                       max_iter=int(hp["bsoid_classifier_max_iter"]), random_state=seed)
            classifier.fit(z[idx[n_test:]], labels[idx[n_test:]])
            acc = float((classifier.predict(z[idx[:n_test]]) == labels[idx[:n_test]]).mean())
    return Clustering(emb, labels, n_clusters, classifier, mean.astype(np.float32), std.astype(np.float32), acc)


def cooccurrence(clusters: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n_clusters, K) frames on which cluster c and behaviour k (label 1) co-occur.

    clusters (T,) int >= 0; labels (T, K) -1/0/1.
    """
    n = int(clusters.max()) + 1 if len(clusters) else 0
    out = np.zeros((n, labels.shape[1]), np.int64)
    np.add.at(out, clusters, (labels == 1).astype(np.int64))
    return out


def assign_behaviours(table: np.ndarray) -> np.ndarray:
    """(K,) the cluster of maximum co-occurrence for each behaviour (column of ``table``)."""
    return table.argmax(axis=0)


def predict_behaviours(clusters: np.ndarray, proba: np.ndarray, mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """'Predictions' (T, K) uint8 and scores (T, K) of a cluster sequence under ``mapping`` (K,).

    Behaviour k is predicted where the frame's cluster is ``mapping[k]``; its score is the
    classifier's probability of that cluster. Column 0 (background) is the logical not of the
    others, as in DEG's postprocessing.
    """
    preds = (clusters[:, None] == mapping[None, :]).astype(np.uint8)
    scores = proba[:, mapping].astype(np.float32)
    preds[:, 0] = (preds[:, 1:].sum(1) == 0)
    scores[:, 0] = 1.0 - scores[:, 1:].max(1) if scores.shape[1] > 1 else scores[:, 0]
    return preds, scores
