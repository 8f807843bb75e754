"""The demo profile learns: DEG_f on synthetic_openfield beats its circular-shuffle chance level.

One real demo run (the `make figures` settings, not shrunk: the moving-shapes flow pretraining and
the run, ~8 minutes on one core), evaluated on its held-out test videos with the validation
thresholds, exactly as the figures read it. The
margins sit well below what the run measures (README, "Headline numbers"), so the test fails
when learning breaks (e.g. a stage that silently stops updating), not on seed noise.
"""
from __future__ import annotations

import numpy as np
import pytest

from deg import evaluate, io, pipeline
from deg.data import synthetic
from deg.presets import get_profile

DATASET, PRESET, SPLIT = "synthetic_openfield", "DEG_f", 0


@pytest.fixture(scope="module")
def demo_metrics(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("DEG_DATA", "DEG_RESULTS", "DEG_FIGURES"):
            (root / var).mkdir()
            mp.setenv(var, str(root / var))
        ds = synthetic.generate(DATASET, progress=False)
        run_dir = pipeline.run(DATASET, PRESET, SPLIT, profile="demo", progress=False)
        tables = evaluate.evaluate_run(run_dir, ds, "demo", PRESET, f"split{SPLIT}",
                                       get_profile("demo").shuffle_repeats, seed=0)
    m = tables["metrics"]
    pooled = m[(m.video == "all") & (m.subset == "test")]
    values = {(r.source, r.behaviour, r.metric): r.value for r in pooled.itertuples()}
    # F1 of predicting "always present" per behaviour (2p / (1 + p), p = the test frames' prevalence)
    split = io.read_json(run_dir / "split.json")
    prevalence = np.concatenate([ds.labels(v) for v in split["test"]]).mean(axis=0)
    values.update({("always", b, "f1"): 2 * p / (1 + p) for b, p in zip(ds.behaviours, prevalence)})
    return values


def test_demo_deg_f_beats_chance_on_its_test_videos(demo_metrics):
    model_f1 = demo_metrics[("model", "macro_nobg", "f1")]
    chance_f1 = demo_metrics[("shuffle", "macro_nobg", "f1")]
    print(f"demo DEG_f test macro F1 (no background): model {model_f1:.3f}, shuffle {chance_f1:.3f}")
    # measured before the moving-shapes flow start: 0.394 vs 0.219 (2-core AVX2 EPYC, 2 threads),
    # 0.354 vs 0.196 (one thread, as `make test`'s workers run it), 0.330 vs 0.196 (Zen 5 EPYC, one
    # thread); since: 0.371 vs 0.097 (Zen 4 EPYC, one thread). Other CPUs and thread counts round
    # differently, hence the slack.
    # Of the levels issue 13 asks for, the flow stream above chance is asserted below
    # (test_demo_flow_stream_sees_locomotion); F1 0.6 and the sequence model at or above the
    # feature extractor are not: the demo does not reach them at its budget (README, "Headline numbers").
    assert model_f1 >= chance_f1 + 0.07, (model_f1, chance_f1)
    assert model_f1 >= 1.4 * chance_f1, (model_f1, chance_f1)
    # The feature extractor alone (Figure 6F-G compares the two) is above chance, and above on
    # `rear`, which its spatial stream sees in a still frame (a feature extractor that does not
    # learn sits at its always-present level, ~0.16). Measured since the moving-shapes flow start
    # (2-core Zen 4 EPYC, one thread, 2026-12-02; the same split-0 numbers as that machine's
    # `make figures`): model 0.371 vs shuffle 0.097, feature extractor 0.401, its `rear` 0.436
    # (always present 0.161; 0.877 before, when the spatial stream carried the fused logits alone).
    fe_f1 = demo_metrics[("feature_extractor", "macro_nobg", "f1")]
    fe_rear, always_rear = demo_metrics[("feature_extractor", "rear", "f1")], demo_metrics[("always", "rear", "f1")]
    print(f"feature extractor: macro F1 {fe_f1:.3f}, rear {fe_rear:.3f} (always present {always_rear:.3f})")
    assert fe_f1 >= chance_f1 + 0.1, (fe_f1, chance_f1)
    assert fe_rear >= always_rear + 0.15, (fe_rear, always_rear)


def test_demo_spatial_stream_sees_what_a_still_frame_shows(demo_metrics):
    """Each stream is scored on its own: the spatial stream alone must tell ``rear`` (a still-frame
    signature) far above its "always present" level; a spatial stream that stopped learning, or
    logits written for the wrong stream, sit at that level. The flow stream's level is asserted in
    test_demo_flow_stream_sees_locomotion; here its rows exist, and are printed."""
    # measured 2026-12-01 (2-core AVX2 EPYC, 2 threads): spatial stream rear 0.694 against 0.161
    # always-present; flow stream locomote 0.341 = always-present, groom 0.546 against 0.631 (it
    # predicts "always"). On one thread: rear 0.694; flow stream locomote 0.239, groom 0.414.
    for stream in ("spatial_stream", "flow_stream"):
        print(stream, {b: round(demo_metrics[(stream, b, "f1")], 3) for b in ("rear", "locomote", "groom", "macro_nobg")})
    print("always present", {b: round(demo_metrics[("always", b, "f1")], 3) for b in ("rear", "locomote", "groom")})
    rear, always = demo_metrics[("spatial_stream", "rear", "f1")], demo_metrics[("always", "rear", "f1")]
    assert rear >= always + 0.3, (rear, always)
    assert ("flow_stream", "macro_nobg", "f1") in demo_metrics


def test_demo_flow_stream_sees_locomotion(demo_metrics):
    """DEG_f's flow generator starts from the moving-shapes pretraining (deg.train.flow_shapes), so
    its flows follow the subject and the flow stream alone tells ``locomote`` (motion only: a still
    frame does not show it) far above its "always present" level. With a flow generator that puts
    out zero flow (from random weights, or a broken pretraining) the stream sat at or below it
    (0.20-0.34 against 0.34, README)."""
    # measured on split 0's test videos (2-core Zen 4 EPYC): flow stream locomote 0.652 in `make
    # figures` (one thread), 0.672 with the experiment's one-cycle weights (2 threads); always
    # present 0.341
    loco, always = demo_metrics[("flow_stream", "locomote", "f1")], demo_metrics[("always", "locomote", "f1")]
    print(f"flow stream locomote {loco:.3f} (always present {always:.3f})")
    assert loco >= always + 0.15, (loco, always)
