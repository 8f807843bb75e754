"""Stages 5-6: calibration (thresholds, minimum bout lengths) and the predictions of every video.

Paper (Methods: Postprocessing): per behaviour, the threshold maximising F1 on the validation
videos; positive and negative bouts shorter than the 1st percentile of the training set's bout
lengths removed; background = no other behaviour. The same is done for the feature extractor's
fused probabilities (``fe_probs`` / ``fe_preds``), for the comparisons of Figure 3, and for each
stream's own (``flow_*``, ``spatial_*``): what the flow stream alone makes of motion-only behaviours.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from deg import io
from deg.train import sequence
from deg.train.common import RunContext

# thresholds.json names (the sequence model's entry predates the streams')
THRESHOLD_NAMES = {"model": "sequence"}


def predict_all(ctx: RunContext, out_dir: Path, run_dir: Path, seq_model, features) -> dict[str, Any]:
    """Thresholds from the validation videos, postprocessing, one npz per video.

    Writes ``out_dir/<video>.npz`` for every video (:data:`deg.evaluate.PREDICTION_ARRAYS`: probs,
    preds of the sequence model; fe_probs, fe_preds of the fused feature extractor; flow_* and
    spatial_* of each stream when the features hold their logits; all (T, K)) and
    ``run_dir/thresholds.json`` ({"sequence", "feature_extractor", ["flow_stream", "spatial_stream"],
    "min_bout": [K], "behaviours"}). ``features``: {video: {"x": (T, D), "fe_logits": (T, K), ...}}
    (:func:`deg.train.sequence.load_features`).
    """
    from deg.evaluate import PREDICTION_ARRAYS
    from deg.postprocess import best_thresholds, min_bout_lengths, postprocess

    probs = {"model": {v: sequence.predict(seq_model, features[v]["x"], ctx.device, ctx.precision) for v in ctx.videos}}
    for source, logits in sequence.LOGITS.items():
        if all(logits in features[v] for v in ctx.videos):
            probs[source] = {v: expit(features[v][logits]).astype(np.float32) for v in ctx.videos}
    val = ctx.split.val
    val_labels = np.concatenate([ctx.labels[v] for v in val])     # -1 elements are ignored
    thr = {source: np.asarray(best_thresholds(np.concatenate([p[v] for v in val]), val_labels))
           for source, p in probs.items()}
    min_len = np.asarray(min_bout_lengths([ctx.labels[v] for v in ctx.split.train],
                                          percentile=ctx.hparams["bout_percentile"]))
    for v in ctx.videos:
        arrays = {}
        for source, p in probs.items():
            p_key, d_key = PREDICTION_ARRAYS[source]
            arrays[p_key] = p[v]
            arrays[d_key] = np.asarray(postprocess(p[v], thr[source], min_len), dtype=np.uint8)
        io.write_npz(out_dir / f"{v}.npz", **arrays)
    thresholds = {THRESHOLD_NAMES.get(s, s): t.tolist() for s, t in thr.items()}
    thresholds.update({"min_bout": min_len.tolist(), "behaviours": ctx.behaviours})
    io.write_json(run_dir / "thresholds.json", thresholds)
    return thresholds
