"""The demo profile learns: DEG_f on synthetic_openfield beats its circular-shuffle chance level.

One real demo run (the `make figures` settings, not shrunk: the moving-shapes flow pretraining and
the run, ~6 minutes on one core), evaluated on its held-out test videos with the validation
thresholds, exactly as the figures read it, and the moving-shapes flow generator it started from
checked against the synthetic subject's true motion. The margins sit well below what the run
measures (README, "Headline numbers"), so the test fails when learning breaks (e.g. a stage that
silently stops updating), not on seed noise or another CPU's rounding.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from deg import evaluate, io, pipeline
from deg.data import synthetic
from deg.data.video import read_video, video_info
from deg.models.flow import build_flow_generator
from deg.presets import HPARAMS, PRESETS, get_profile
from deg.train import flow_shapes

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
        profile, preset = get_profile("demo").for_preset(PRESET), PRESETS[PRESET]
        tables = evaluate.evaluate_run(run_dir, ds, "demo", PRESET, f"split{SPLIT}", profile.shuffle_repeats, seed=0)
        size = tuple(profile.image_size)
        shapes_weights = flow_shapes.stage_dir(profile, preset.flow_generator, size) / "weights.pt"
        subject = subject_flow(ds, shapes_weights, preset.flow_generator, preset.n_flow_frames, size=size)
    m = tables["metrics"]
    pooled = m[(m.video == "all") & (m.subset == "test")]
    values = {(r.source, r.behaviour, r.metric): r.value for r in pooled.itertuples()}
    # F1 of predicting "always present" per behaviour (2p / (1 + p), p = the test frames' prevalence)
    split = io.read_json(run_dir / "split.json")
    prevalence = np.concatenate([ds.labels(v) for v in split["test"]]).mean(axis=0)
    values.update({("always", b, "f1"): 2 * p / (1 + p) for b, p in zip(ds.behaviours, prevalence)})
    values.update({("shapes_flow", k, "subject"): v for k, v in subject.items()})
    return values


def subject_flow(ds, weights, generator: str, n_frames: int, videos=("video02", "video03"), size=(32, 32)) -> dict:
    """The flow generator's flow on the synthetic subject against its true motion (the covariates).

    Clips of ``n_frames`` frames centred on every third frame of ``videos`` (decoded at ``size``,
    each video z-scored per channel); the finest flow (half the size) of the pair (t, t+1), averaged
    over the pixels within one of them of the subject's true centre; in locomotion frames (true
    displacement > 0.05 px) its cosine with the true displacement and the ratio of their lengths
    (median), both in ``size`` pixels. Zero flow gives a ratio near 0 and a cosine of noise.
    """
    model = build_flow_generator(generator, n_frames=n_frames, max_displacement=HPARAMS["flow_max_displacement"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["model"])
    model.eval()
    half = n_frames // 2
    loco_col = ds.behaviours.index("locomote")
    cosines, ratios = [], []
    for video in videos:
        native_w = video_info(ds.video_path(video)).width
        frames = torch.from_numpy(read_video(ds.video_path(video), size=size)).float().div(255).permute(3, 0, 1, 2)
        frames = (frames - frames.mean(dim=(1, 2, 3), keepdim=True)) / frames.std(dim=(1, 2, 3), keepdim=True)
        cov, locomote = pd.read_csv(ds.extra_path(video)), ds.labels(video)[:, loco_col].astype(bool)
        centres = np.arange(half, frames.shape[1] - half - 1, 3)
        with torch.no_grad():    # (N, 2(T-1), H/2, W/2) in pixels of the half size
            flow = model(torch.stack([frames[:, c - half:c + half + 1] for c in centres]))[0]
        pair = flow[:, 2 * half:2 * half + 2].numpy() * 2          # the pair (c, c + 1), in `size` pixels
        fine = flow.shape[-1] / native_w                          # native pixels -> finest-scale pixels
        yy, xx = np.mgrid[0:flow.shape[-2], 0:flow.shape[-1]] + 0.5
        for i, c in enumerate(centres):
            near = (xx - cov.x[c] * fine) ** 2 + (yy - cov.y[c] * fine) ** 2 <= 1.0
            true = np.array([cov.x[c + 1] - cov.x[c], cov.y[c + 1] - cov.y[c]]) * size[1] / native_w
            if locomote[c] and near.any() and np.linalg.norm(true) > 0.05:
                seen = pair[i][:, near].mean(axis=1)
                cosines.append(seen @ true / (np.linalg.norm(seen) * np.linalg.norm(true) + 1e-9))
                ratios.append(np.linalg.norm(seen) / np.linalg.norm(true))
    return {"cosine": float(np.mean(cosines)), "length_ratio": float(np.median(ratios)), "n": len(cosines)}


def test_demo_deg_f_beats_chance_on_its_test_videos(demo_metrics):
    model_f1 = demo_metrics[("model", "macro_nobg", "f1")]
    chance_f1 = demo_metrics[("shuffle", "macro_nobg", "f1")]
    print(f"demo DEG_f test macro F1 (no background): model {model_f1:.3f}, shuffle {chance_f1:.3f}")
    # measured before the moving-shapes flow start: 0.394 vs 0.219 (2-core AVX2 EPYC, 2 threads),
    # 0.354 vs 0.196 (one thread, as `make test`'s workers run it), 0.330 vs 0.196 (Zen 5 EPYC, one
    # thread); since: 0.371 vs 0.097 (Zen 4 EPYC, one thread); with the 800-step stage 0.485 vs 0.155
    # (Intel Xeon, one thread, 2026-12-03; feature extractor 0.489, its rear 0.694) and 0.563 vs 0.192
    # (2-core AVX2 EPYC, one thread, 2026-12-03; feature extractor 0.485). Other CPUs and thread counts
    # round differently, hence the slack.
    # Of the levels issue 13 asks for, the flow stream above chance is asserted below
    # (test_demo_flow_stream_sees_locomotion) and the sequence model level with or above its feature
    # extractor further down; F1 0.6 is not: the demo does not reach it at its budget (README,
    # "Headline numbers").
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
    # The sequence model reads the feature extractor's features and is at or above it: 0.563 vs 0.485
    # (AVX2 EPYC), 0.485 vs 0.489 (Intel Xeon), 0.371 vs 0.401 (Zen 4 EPYC, the earlier 1,000-step
    # stage): level within the spread between CPUs, above it where it gains on `locomote`. A sequence
    # model that does not learn, or that reads the wrong features, sits near chance (~0.2).
    assert model_f1 >= fe_f1 - 0.05, (model_f1, fe_f1)


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
    # measured on split 0's test videos, one thread, always present 0.341: with the demo's stage (800
    # steps of 8 at lr 3e-4) 0.724 on the 2-core Intel Xeon and 0.798 on the 2-core AVX2 EPYC
    # (2026-12-03). With the earlier stage (1,000 of 16 at lr 1e-3, whose learning began between
    # steps 500 and 750) 0.652 on a Zen 4 EPYC and 0.486 on the Xeon (CI failed on a margin of 0.15
    # there): the downstream level moves with the CPU's rounding, so the stage itself is checked
    # directly (test_demo_shapes_flow_follows_the_subject) and this margin only separates a flow
    # stream that sees motion from one that does not.
    loco, always = demo_metrics[("flow_stream", "locomote", "f1")], demo_metrics[("always", "locomote", "f1")]
    print(f"flow stream locomote {loco:.3f} (always present {always:.3f})")
    assert loco >= always + 0.10, (loco, always)


def test_demo_shapes_flow_follows_the_subject(demo_metrics):
    """The moving-shapes pretraining (deg.train.flow_shapes) gives a flow generator whose flow on
    the open-field subject, a video it never saw, points along the subject's motion and is of its
    order of length. A stage that learned zero flow (its failure mode: the error stays at zero
    flow's for the first few hundred steps) has a length ratio near 0 and a cosine of noise."""
    # measured on the 2-core Intel Xeon (AVX-512, AMX), one thread, 2026-12-03: 800 steps of 8 clips at
    # lr 3e-4 (the demo's stage): cosine 0.946, length ratio 0.743 (58 locomotion clips); on the 2-core
    # AVX2 EPYC (same day, one thread; best checkpoint step 750 on both) 0.930 / 0.709; the earlier
    # 1,000 steps of 16 at lr 1e-3: 0.936 / 0.650; 1,000 of 8 at lr 1e-3, which never left zero flow
    # (validation error at zero flow's 0.388 to the end): 0.323 / 0.002
    cosine, ratio = demo_metrics[("shapes_flow", "cosine", "subject")], demo_metrics[("shapes_flow", "length_ratio", "subject")]
    print(f"moving-shapes flow on the subject: cosine {cosine:.3f}, length ratio {ratio:.3f}, "
          f"{demo_metrics[('shapes_flow', 'n', 'subject')]} locomotion clips")
    assert demo_metrics[("shapes_flow", "n", "subject")] >= 20
    assert cosine >= 0.6, cosine
    assert ratio >= 0.2, ratio
