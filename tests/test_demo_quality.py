"""The demo profile learns: DEG_f on synthetic_openfield beats its circular-shuffle chance level.

One real demo run (the `make figures` settings, not shrunk: ~2 minutes on 2 cores), evaluated on
its held-out test videos with the validation thresholds, exactly as the figures read it. The
margins sit well below what the run measures (README, "Headline numbers"), so the test fails
when learning breaks (e.g. a stage that silently stops updating), not on seed noise.
"""
from __future__ import annotations

import pytest

from deg import evaluate, pipeline
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
    return {(r.source, r.behaviour, r.metric): r.value for r in pooled.itertuples()}


def test_demo_deg_f_beats_chance_on_its_test_videos(demo_metrics):
    model_f1 = demo_metrics[("model", "macro_nobg", "f1")]
    chance_f1 = demo_metrics[("shuffle", "macro_nobg", "f1")]
    print(f"demo DEG_f test macro F1 (no background): model {model_f1:.3f}, shuffle {chance_f1:.3f}")
    # measured here: 0.304 vs 0.161 (README); on 2026-12-01 0.394 vs 0.219 (2-core AVX2 EPYC; feature
    # extractor 0.398). Other CPUs round differently, hence the slack. The levels issue 13 asks for
    # (F1 0.6, sequence model >= feature extractor, flow stream above chance) are not asserted: the
    # demo does not reach them at its budget (README, "Why the demo's stages stay weak").
    assert model_f1 >= chance_f1 + 0.07, (model_f1, chance_f1)
    assert model_f1 >= 1.4 * chance_f1, (model_f1, chance_f1)
    # the feature extractor alone is above chance too (Figure 6F-G compares the two)
    assert demo_metrics[("feature_extractor", "macro_nobg", "f1")] >= chance_f1 + 0.07

