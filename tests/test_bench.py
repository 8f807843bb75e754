"""deg.bench --quick: every stage measured for DEG_f at 64 x 64 on the CPU, valid bench.json."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from deg import bench, provenance
from deg.figs.tables import read_bench
from deg.presets import get_profile
from deg.train.common import choose_precision


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # tiny tensors; two OpenMP threads on a busy 2-core machine are slower
    yield
    torch.set_num_threads(threads)


def test_quick_bench_writes_every_stage(tmp_path, one_thread, capsys):
    out = tmp_path / "bench.json"
    with_ort = bench.backends.available("onnxruntime")
    code = bench.main(["--quick", "--presets", "DEG_f", "--sizes", "64", "--frames", "12", "--device", "cpu",
                       "--out", str(out), "--repeats", "1", "--backends"] + (["onnxruntime"] if with_ort else []))
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data) == {"device", "cpu", "torch", "created", "rows"} | ({"backends", "cpu_features"} if with_ort else set())
    assert data["device"] == f"cpu: {provenance.cpu_name()}, 1 threads"
    assert data["cpu"] == provenance.cpu_name() and data["torch"] == torch.__version__
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", data["created"])

    rows = data["rows"]
    expected_precision = choose_precision(torch.device("cpu"), get_profile("demo").bf16).name
    assert [r["stage"] for r in rows] == list(bench.STAGES)
    for row in rows:
        rate, count = ("frames_per_s", "n_frames") if row["stage"] == "inference" else ("steps_per_s", "n_steps")
        assert set(row) == {"preset", "height", "width", "device", "precision", "stage", rate, count, "batch"}
        assert row["preset"] == "DEG_f" and row["height"] == row["width"] == 64
        # the pipeline's own rule: bf16 autocast only on CPUs with native bf16 kernels
        assert row["device"] == data["device"] and row["precision"] == expected_precision
        assert np.isfinite(row[rate]) and row[rate] > 0
        assert row[count] >= 1 and row["batch"] >= 1
    inference = rows[0]
    assert bench.MIN_FRAMES <= inference["n_frames"] <= 12 and inference["batch"] <= inference["n_frames"]
    tiny = bench.presets.get_profile("tiny")           # --quick uses the tiny profile's batch sizes
    assert rows[1]["batch"] <= tiny.flow_batch and rows[2]["batch"] <= tiny.feature_batch  # (budget may cut)
    assert rows[3]["batch"] == tiny.sequence_batch

    printed = capsys.readouterr().out
    if with_ort:           # eager and ONNX Runtime on the same video, timed in turn, compared
        features = data["cpu_features"]
        assert features["model"] == data["cpu"] and features["threads"] == 1 and "avx2" in features["flags"]
        assert [r["backend"] for r in data["backends"]] == ["eager", "onnxruntime"]
        for row in data["backends"]:
            assert row["used"] == row["backend"] and row["n_frames"] == inference["n_frames"]
            assert len(row["runs"]) == len(row["load"]) == 1 and row["frames_per_s"] == row["runs"][0] > 0
        assert data["backends"][1]["max_abs_diff"] <= bench.backends.TOLERANCE["onnxruntime"]
        assert "CPU " in printed and "backend onnxruntime" in printed
        printed = "\n".join(line for line in printed.splitlines() if "backend " not in line)
    assert printed.count("DEG_f") == 4 and "train_feature" in printed and str(out) in printed
    # The figure notebook's reader accepts it
    table = read_bench(out)
    assert len(table["rows"]) == 4


def test_synthetic_frames_move_and_stream():
    chunks = list(bench.synthetic_frames(40, 32, 48, chunk=16))
    assert [c.shape for c in chunks] == [(16, 32, 48, 3), (16, 32, 48, 3), (8, 32, 48, 3)]
    frames = np.concatenate(chunks)
    assert frames.dtype == np.uint8 and np.abs(np.diff(frames.astype(int), axis=0)).mean() > 0.5
    np.testing.assert_array_equal(np.concatenate(list(bench.synthetic_frames(40, 32, 48, chunk=40))), frames)
