"""deg.infer on a finished tiny run: same numbers as the pipeline, CSV layout, edges, bad input, streaming.

The run is trained once per session (deg.pipeline.run on synthetic_tiny, tiny profile); the real
models, PyAV decoding and postprocessing run on real mp4 files.
"""
from __future__ import annotations

import fcntl
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deg import infer
from deg.data.labels import read_deg_labels
from deg.data.video import VideoError, read_video, write_video

DATASET, PRESET = "synthetic_tiny", "DEG_f"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(run folder, dataset videos folder) of a finished tiny DEG_f run in temporary folders.

    DEG_DATA / DEG_RESULTS point at the temporary folders only while the run trains: inference
    reads the run folder by path and needs neither.
    """
    from deg import pipeline
    from deg.data import synthetic

    root = tmp_path_factory.mktemp("infer_run")
    mp = pytest.MonkeyPatch()
    for var, name in (("DEG_DATA", "data"), ("DEG_RESULTS", "results"), ("DEG_FIGURES", "figures")):
        (root / name).mkdir()
        mp.setenv(var, str(root / name))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # see one_thread below
    try:
        synthetic.generate(DATASET, progress=False)
        run_dir = pipeline.run(DATASET, PRESET, 0, profile="tiny", progress=False)
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    return run_dir, root / "data" / DATASET / "videos"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: with the decoding thread beside them, two OpenMP threads on a busy 2-core
    machine wait on each other at every op (measured here: 1 s vs 10 s for the same 72 frames)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return infer.Predictor.from_run(tiny_run[0], device="cpu")


def _test_video(run_dir: Path) -> str:
    return json.loads((run_dir / "split.json").read_text())["test"][0]


def test_predictions_equal_the_pipelines(tiny_run, tmp_path):
    """Same model, same preprocessing: the probabilities of a dataset video equal predictions/<video>.npz."""
    run_dir, videos = tiny_run
    video = _test_video(run_dir)
    src = tmp_path / f"{video}.mp4"
    shutil.copy(videos / f"{video}.mp4", src)
    res = infer.predict_video(run_dir, src, progress=False, device="cpu")      # out_dir: beside the video

    csv, npz = tmp_path / f"{video}_predictions.csv", tmp_path / f"{video}_probabilities.npz"
    assert res["paths"] == {"predictions": csv, "probabilities": npz}
    assert res["n_frames"] == 90 and res["seconds"] > 0 and res["frames_per_s"] == pytest.approx(90 / res["seconds"])
    with np.load(run_dir / "predictions" / f"{video}.npz") as ref, np.load(npz) as got:
        assert got["probs"].shape == ref["probs"].shape and got["probs"].dtype == np.float32
        # batches of clips are the pipeline's (infer_batch); only thread scheduling may differ
        np.testing.assert_allclose(got["probs"], ref["probs"], rtol=0, atol=1e-5)
        thresholds = json.loads((run_dir / "thresholds.json").read_text())
        np.testing.assert_array_equal(got["thresholds"], thresholds["sequence"])
        np.testing.assert_array_equal(got["min_bout"], thresholds["min_bout"])
        assert list(got["behaviours"]) == thresholds["behaviours"]
        ref_preds = ref["preds"]

    # DeepEthogram CSV: unnamed frame index, background first, one 0/1 column per behaviour
    header = csv.read_text().splitlines()[0].split(",")
    assert header == [""] + thresholds["behaviours"]
    matrix, names = read_deg_labels(csv)
    assert names == thresholds["behaviours"] and matrix.shape == (90, len(names))
    np.testing.assert_array_equal(matrix, ref_preds)
    assert set(np.unique(matrix)) <= {0, 1}
    assert pd.read_csv(csv).iloc[:, 0].tolist() == list(range(90))


def test_video_shorter_than_the_clip_gets_every_frame(tiny_run, predictor, tmp_path):
    """5 frames < the 11-frame clip: 5 rows, clips padded with edge frames exactly as in training."""
    from deg.train import sequence
    from deg.train.feature import _forward

    run_dir, videos = tiny_run
    frames = read_video(videos / "video00.mp4")[40:45]
    path = write_video(tmp_path / "short.mp4", frames, fps=10)
    res = predictor.predict(path, progress=False)
    matrix, names = read_deg_labels(res["paths"]["predictions"])
    assert matrix.shape == (5, len(predictor.behaviours))

    # Reference through the training code's own clip gathering (deg.train.clips.gather_clips)
    ctx = predictor.ctx
    ctx._frames = {"short": read_video(path, size=ctx.image_size)}
    with torch.inference_mode(), ctx.precision.autocast():     # bf16 on CPUs with native kernels
        _, clip = ctx.clip_batch(["short"] * 5, np.arange(5), ctx.preset.n_flow_frames)
        out = _forward(ctx, predictor.flow_model, predictor.feature_model, clip)
        x = torch.cat([out["spatial_features"], out["flow_features"]], dim=1).float().numpy()
    ctx._frames = None
    expected = sequence.predict(predictor.sequence_model, x, ctx.device, ctx.precision)
    with np.load(res["paths"]["probabilities"]) as z:
        np.testing.assert_allclose(z["probs"], expected, rtol=0, atol=1e-5)


def test_bad_videos_fail_clearly_and_the_others_are_predicted(tiny_run, predictor, tmp_path, capsys):
    run_dir, videos = tiny_run
    good = tmp_path / "good.mp4"
    shutil.copy(videos / "video01.mp4", good)
    truncated = tmp_path / "truncated.mp4"
    data = (videos / "video02.mp4").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)

    for bad, words in ((truncated, "truncated"), (text, "not a readable video")):
        with pytest.raises(VideoError, match=words) as info:
            predictor.predict(bad, out_dir=tmp_path / "direct", progress=False)
        assert str(bad) in str(info.value)
    assert not (tmp_path / "direct").exists() or not any((tmp_path / "direct").iterdir())

    out = tmp_path / "out"
    labels = sorted((videos.parent / "labels").glob("*/video01.csv"))[0]     # same behaviours: accepted
    code = infer.main(["--run", str(run_dir), "--out", str(out), "--quiet", "--device", "cpu",
                       "--labels", str(labels), str(truncated), str(text), str(good)])
    captured = capsys.readouterr()
    err = captured.err
    assert code == 1
    assert "2 of 3 video(s) failed" in err and str(truncated) in err and str(text) in err
    assert sorted(p.name for p in out.iterdir()) == ["good_predictions.csv", "good_probabilities.npz"]
    assert len(pd.read_csv(out / "good_predictions.csv")) == 90
    # the command line chose its backend itself (--backend auto is the default) and says which
    assert re.search(r"good\.mp4: 90 frames .*backend (eager|onnxruntime|onnxruntime-int8)\)", captured.out), captured.out


def test_unfinished_or_inconsistent_run_names_the_stage(tiny_run, tmp_path, capsys):
    run_dir, videos = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("*.pt", "*.npz", ".lock"))
    infer.check_run(copy)                                            # the JSON files are all it reads

    (copy / "sequence" / "DONE").unlink()
    with pytest.raises(infer.RunFolderError, match="stage 'sequence' has no DONE"):
        infer.check_run(copy)
    code = infer.main(["--run", str(copy), "--quiet", str(videos / "video00.mp4")])
    assert code == 3 and "'sequence'" in capsys.readouterr().err
    assert not (videos / "video00_predictions.csv").exists()

    shutil.copy(run_dir / "sequence" / "DONE", copy / "sequence" / "DONE")
    done = json.loads((copy / "feature" / "DONE").read_text())
    (copy / "feature" / "DONE").write_text(json.dumps(dict(done, key="0123456789abcdef")))
    with pytest.raises(infer.RunFolderError, match="stage 'feature'"):
        infer.check_run(copy)
    with pytest.raises(infer.RunFolderError, match="no such run folder"):
        infer.check_run(tmp_path / "absent")

    # a run that deg.pipeline is training right now (it holds the folder's lock)
    shutil.copy(run_dir / "feature" / "DONE", copy / "feature" / "DONE")
    infer.check_run(copy)
    with open(copy / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(infer.RunFolderError, match="training this run right now"):
            infer.check_run(copy)
    infer.check_run(copy)


def test_behaviours_of_another_run_are_refused(tiny_run, predictor, tmp_path, capsys):
    run_dir, videos = tiny_run
    names = predictor.behaviours
    predictor.check_behaviours(list(reversed(names[1:])), "--behaviours")      # order, background: free
    with pytest.raises(infer.BehaviourMismatchError, match=r"not in the run: \['walk'\]"):
        predictor.check_behaviours(names[1:-1] + ["walk"], "--behaviours")
    code = infer.main(["--run", str(run_dir), "--behaviours", "locomote,walk", str(videos / "video00.mp4")])
    assert code == 3 and "walk" in capsys.readouterr().err
    other = tmp_path / "other_labels.csv"
    other.write_text(",background,walk,rear\n0,1,0,0\n1,0,1,0\n")
    code = infer.main(["--run", str(run_dir), "--labels", str(other), str(videos / "video00.mp4")])
    err = capsys.readouterr().err
    assert code == 3 and str(other) in err and "['walk']" in err
    assert not (videos / "video00_predictions.csv").exists()

    # An output CSV already there with other columns is left alone, and nothing else is written.
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "video00_predictions.csv"
    existing.write_text(",background,walk\n0,1,0\n")
    with pytest.raises(infer.BehaviourMismatchError, match="already exists with columns"):
        predictor.predict(videos / "video00.mp4", out_dir=out, progress=False)
    assert existing.read_text() == ",background,walk\n0,1,0\n"
    assert sorted(p.name for p in out.iterdir()) == ["video00_predictions.csv"]


def test_streaming_memory_does_not_grow_with_length(predictor, tiny_run, tmp_path):
    """Decoded in chunks of `batch` frames; frame buffer and feature window bounded; results unchanged."""
    run_dir, videos = tiny_run
    frames = np.concatenate([read_video(videos / f"video0{i}.mp4") for i in (0, 1)])[:72]
    path = write_video(tmp_path / "long.mp4", frames, fps=10)
    whole = predictor.probabilities(path)                   # one sequence window (72 < SEQ_CHUNK)

    hp = predictor.ctx.hparams
    receptive = hp["tgm_n_layers"] * (hp["tgm_filter_length"] // 2)   # frames each side a TGM output reads
    margin = receptive + 3
    small = infer.Predictor(ctx=predictor.ctx, flow_model=predictor.flow_model,
                            feature_model=predictor.feature_model, sequence_model=predictor.sequence_model,
                            behaviours=predictor.behaviours, batch=8, seq_chunk=8, seq_margin=margin)
    streamed = small.probabilities(path)
    stats = small.last_stats
    n = predictor.ctx.preset.n_flow_frames
    assert stats["n_frames"] == 72 and stats["n_chunks"] == 9 and stats["max_chunk"] == 8
    assert stats["max_buffered_frames"] <= 8 + 8 + n            # one chunk, one batch, one clip: not T
    assert stats["max_feature_rows"] <= 8 + 2 * margin + 8 < 72  # window + margins + one batch
    # the margins exceed the TGM's receptive field: windowing changes no output
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-5)


def test_onnxruntime_backend_agrees_with_eager_and_is_cached(tiny_run, predictor, tmp_path, capsys):
    """The trained tiny DEG_f run through ONNX Runtime float32: probabilities within 1e-4 of eager;
    the exported model is cached in the run folder and reused by the command line."""
    from deg import backends

    if not backends.available("onnxruntime"):
        pytest.skip("onnxruntime not installed")
    run_dir, videos = tiny_run
    video = videos / "video00.mp4"
    eager = predictor.probabilities(video)
    assert predictor.backend_name == "eager"
    ort = infer.Predictor.from_run(run_dir, device="cpu", backend="onnxruntime")
    probs = ort.probabilities(video)
    assert ort.backend_name == "onnxruntime" and probs.shape == eager.shape
    agree = backends.agreement(eager, probs, ort.thresholds)
    assert agree["max_abs_diff"] <= backends.TOLERANCE["onnxruntime"] and agree["flip_fraction"] == 0.0
    def float_models() -> list[Path]:         # (earlier tests' auto may also have quantised int8 models here)
        keys = {p: json.loads((p.parent / "key.json").read_text()) for p in (run_dir / "backends").glob("*/model.onnx")}
        # the float32 backend's export, not the sub-pixel export that int8 quantises on VNNI CPUs
        return sorted(p for p, key in keys.items() if key["backend"] == "onnxruntime" and "deconvs" not in key)

    cached = float_models()
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    code = infer.main(["--run", str(run_dir), "--out", str(tmp_path), "--quiet", "--device", "cpu",
                       "--backend", "onnxruntime", str(video)])
    assert code == 0 and "backend onnxruntime" in capsys.readouterr().out
    assert float_models() == cached and cached[0].stat().st_mtime_ns == mtime
    with np.load(tmp_path / "video00_probabilities.npz") as z:
        np.testing.assert_allclose(z["probs"], probs, rtol=0, atol=1e-6)
    # auto: every candidate measured against eager on the video's first clips; the fastest agreeing one runs
    auto = infer.Predictor.from_run(run_dir, device="cpu", backend="auto")
    auto_probs = auto.probabilities(video)
    assert [r["backend"] for r in auto.backend_report] == list(backends.NAMES)
    rows = {r["backend"]: r for r in auto.backend_report}
    assert rows["eager"]["ok"] and rows["onnxruntime"]["ok"]
    # int8 runs when it agrees on the checked clips (its tolerance) and is the fastest that does
    assert rows["onnxruntime-int8"]["ok"] == (rows["onnxruntime-int8"]["max_abs_diff"]
                                              <= backends.TOLERANCE["onnxruntime-int8"])
    assert auto.backend_name == max((r for r in auto.backend_report if r["ok"]),
                                    key=lambda r: r["clips_per_s"])["backend"]
    limit = 0.0 if auto.backend_name == "eager" else backends.TOLERANCE[auto.backend_name]
    assert backends.agreement(eager, auto_probs)["max_abs_diff"] <= 2 * limit   # the whole video, not only the checked clips
