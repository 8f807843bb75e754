"""Stages 5-6: calibration (thresholds, minimum bout lengths) and the predictions of every video.

Paper (Methods: Postprocessing): per behaviour, the threshold maximising F1 on the validation
videos; positive and negative bouts shorter than the 1st percentile of the training set's bout
lengths removed; background = no other behaviour. The same is done for the feature extractor's
fused probabilities (``fe_probs`` / ``fe_preds``), for the comparisons of Figure 3.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from deg import io
from deg.train import sequence
from deg.train.common import RunContext


def predict_all(ctx: RunContext, out_dir: Path, run_dir: Path, seq_model, features) -> dict[str, Any]:
    """Thresholds from the validation videos, postprocessing, one npz per video.

    Writes ``out_dir/<video>.npz`` for every video (probs, preds, fe_probs, fe_preds: (T, K)) and
    ``run_dir/thresholds.json`` ({"sequence", "feature_extractor", "min_bout": [K], "behaviours"}).
    ``features``: {video: {"x": (T, D), "fe_logits": (T, K)}} (:func:`deg.train.sequence.load_features`).
    """
    from deg.postprocess import best_thresholds, min_bout_lengths, postprocess

    probs = {v: sequence.predict(seq_model, features[v]["x"], ctx.device, ctx.precision) for v in ctx.videos}
    fe_probs = {v: expit(features[v]["fe_logits"]).astype(np.float32) for v in ctx.videos}
    val = ctx.split.val
    val_labels = np.concatenate([ctx.labels[v] for v in val])     # -1 elements are ignored
    thr = np.asarray(best_thresholds(np.concatenate([probs[v] for v in val]), val_labels))
    fe_thr = np.asarray(best_thresholds(np.concatenate([fe_probs[v] for v in val]), val_labels))
    min_len = np.asarray(min_bout_lengths([ctx.labels[v] for v in ctx.split.train],
                                          percentile=ctx.hparams["bout_percentile"]))
    for v in ctx.videos:
        io.write_npz(out_dir / f"{v}.npz", probs=probs[v],
                     preds=np.asarray(postprocess(probs[v], thr, min_len), dtype=np.uint8),
                     fe_probs=fe_probs[v],
                     fe_preds=np.asarray(postprocess(fe_probs[v], fe_thr, min_len), dtype=np.uint8))
    thresholds = {"sequence": thr.tolist(), "feature_extractor": fe_thr.tolist(), "min_bout": min_len.tolist(),
                  "behaviours": ctx.behaviours}
    io.write_json(run_dir / "thresholds.json", thresholds)
    return thresholds
