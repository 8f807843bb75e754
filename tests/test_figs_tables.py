"""deg.figs.tables (Tables 1-2) and deg.figs.flowviz (Figure 1C colour code), on hand-made inputs."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from deg import io  # noqa: E402
from deg.figs import flowviz, tables  # noqa: E402
from deg.presets import PRESETS  # noqa: E402


# --------------------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------------------
def _bench(tmp_path, rows, **extra):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"device": "cpu", "cpu": "test cpu", "torch": "2.x", "rows": rows, **extra}))
    return path


def _row(preset, h, w, fps=None, stage="inference", steps=None, device="cpu", precision="fp32"):
    row = {"preset": preset, "height": h, "width": w, "device": device, "precision": precision, "stage": stage,
           "n_frames": 100}
    if fps is not None:
        row["frames_per_s"] = fps
    if steps is not None:
        row["steps_per_s"] = steps
    return row


def test_read_bench_absent_and_malformed(tmp_path):
    assert tables.read_bench(tmp_path / "nothing.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(tables.BenchError, match="bad.json.*JSON"):
        tables.read_bench(bad)
    with pytest.raises(tables.BenchError, match="rows"):
        tables.read_bench(_bench(tmp_path, "oops"))
    with pytest.raises(tables.BenchError, match="stage"):
        tables.read_bench(_bench(tmp_path, [_row("DEG_f", 8, 8, 1.0, stage="dance")]))
    with pytest.raises(tables.BenchError, match="neither frames_per_s nor steps_per_s"):
        tables.read_bench(_bench(tmp_path, [_row("DEG_f", 8, 8)]))
    with pytest.raises(tables.BenchError, match="width"):
        tables.read_bench(_bench(tmp_path, [{"preset": "DEG_f", "height": 8, "stage": "inference",
                                             "frames_per_s": 1.0}]))


def test_inference_table_against_the_paper(tmp_path):
    rows = [_row("DEG_f", 256, 256, 100.0), _row("DEG_f", 256, 256, 120.0), _row("DEG_m", 256, 256, 50.0),
            _row("DEG_f", 64, 64, 900.0), _row("DEG_s", 64, 64, 90.0),
            _row("DEG_f", 64, 64, stage="train_flow", steps=3.0)]
    bench = tables.read_bench(_bench(tmp_path, rows))
    out = tables.inference_table(bench).set_index("resolution")
    assert list(out.index) == ["64 x 64", "256 x 256"]
    big = out.loc["256 x 256"]
    assert big["ours_DEG_f"] == 110.0 and big["ours_DEG_m"] == 50.0 and np.isnan(big["ours_DEG_s"])
    # paper Titan RTX at 256 x 256: Ventral1 235, Ventral2 249, Openfield 211, EPM 240, OFT 250 -> median 240
    assert big["paper_DEG_f"] == 240.0 and big["paper_DEG_s"] == 34.0
    assert "Mouse-Ventral1" in big["paper_datasets"] and "Sturman-OFT" in big["paper_datasets"]
    small = out.loc["64 x 64"]
    assert small["paper_datasets"] == "" and np.isnan(small["paper_DEG_f"]) and small["ours_DEG_s"] == 90.0
    train = tables.training_table(bench)
    assert len(train) == 1 and train.rate.iloc[0] == 3.0 and train.unit.iloc[0] == "steps/s"
    with pytest.raises(tables.BenchError, match="no inference rows"):
        tables.inference_table(tables.read_bench(_bench(tmp_path, rows[-1:])))


def test_backend_table_keeps_the_fastest_agreeing_backend(tmp_path):
    def rnd(preset, size, backend, fps, diff, used=None):
        return {"preset": preset, "height": size, "width": size, "backend": backend, "used": used or backend,
                "frames_per_s": fps, "max_abs_diff": diff, "flip_fraction": 0.0}

    rounds = [rnd("DEG_f", 256, "eager", 2.0, 0.0), rnd("DEG_f", 256, "onnxruntime", 3.0, 1e-7),
              rnd("DEG_f", 256, "onnxruntime-int8", 4.0, 0.001),
              rnd("DEG_m", 256, "eager", 1.0, 0.0), rnd("DEG_m", 256, "onnxruntime", 1.5, 1e-7),
              rnd("DEG_m", 256, "onnxruntime-int8", 9.0, 0.3),                 # fast but disagrees
              rnd("DEG_s", 128, "eager", 2.0, 0.0), rnd("DEG_s", 128, "onnxruntime", 5.0, 0.0, used="eager")]
    bench = tables.read_bench(_bench(tmp_path, [_row("DEG_f", 256, 256, 2.0)], backends=rounds))
    out = tables.backend_table(bench).set_index("preset")
    assert out.loc["DEG_f", "best_backend"] == "onnxruntime-int8" and out.loc["DEG_f", "speedup"] == 2.0
    assert out.loc["DEG_m", "best_backend"] == "onnxruntime" and out.loc["DEG_m", "best_fps"] == 1.5
    assert out.loc["DEG_s", "best_backend"] == "eager"                # the "faster" run had fallen back to eager
    assert out.loc["DEG_f", "paper_fps"] == 240.0 and np.isnan(out.loc["DEG_s", "paper_fps"])
    assert tables.backend_table(tables.read_bench(_bench(tmp_path, [_row("DEG_f", 8, 8, 1.0)]))).empty
    with pytest.raises(tables.BenchError, match="eager reference"):
        tables.backend_table({"backends": rounds[1:3]})


def test_paper_table1_is_the_papers():
    paper = tables.paper_table1()
    assert len(paper) == 9 * 2 * 3
    flies = paper[(paper.dataset == "Flies") & (paper.gpu == "Titan RTX")].set_index("preset").frames_per_s
    assert list(flies) == [623, 294, 89]
    fst = paper[paper.dataset == "Sturman-FST"].iloc[0]
    assert (fst.height, fst.width) == (224, 448)


# --------------------------------------------------------------------------------------
# Table 2
# --------------------------------------------------------------------------------------
def test_count_parameters_known_answer():
    assert tables.count_parameters(torch.nn.Linear(3, 2)) == 3 * 2 + 2
    assert tables.count_parameters(torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, bias=False), torch.nn.BatchNorm2d(4))) \
        == 2 * 4 * 9 + 2 * 4


def test_param_counts_equal_a_real_build_and_the_paper(tmp_path):
    from deg.models.flow import build_flow_generator
    from deg.models.sequence import build_sequence_model

    counts = tables.param_counts(["DEG_f"], n_classes=6).set_index("component")
    assert counts.loc["flow_generator", "n_params"] == tables.count_parameters(build_flow_generator("tinymotionnet"))
    assert counts.loc["sequence_model", "n_params"] == tables.count_parameters(
        build_sequence_model("tgm", n_features=1024, n_classes=6))
    parts = counts.loc[["flow_generator", "feature_extractors", "sequence_model"], "n_params"].sum()
    assert counts.loc["total", "n_params"] == parts
    assert counts.loc["total", "paper_params_m"] == pytest.approx(sum(PRESETS["DEG_f"].paper_params_m), abs=1e-3)
    # within 10% of paper Table 2, component by component
    for comp, paper in zip(("flow_generator", "feature_extractors", "sequence_model"), PRESETS["DEG_f"].paper_params_m):
        assert counts.loc[comp, "params_m"] == pytest.approx(paper, rel=0.1)
    # K changes only the output layers: two TGM heads and two streams gain 2 x (128 + 1) and 2 x (512 + 1) per class
    k7 = tables.param_counts(["DEG_f"], n_classes=7).set_index("component")
    assert k7.loc["sequence_model", "n_params"] - counts.loc["sequence_model", "n_params"] == 2 * 129
    assert k7.loc["feature_extractors", "n_params"] - counts.loc["feature_extractors", "n_params"] == 2 * 513

    path = tables.write_param_counts(tmp_path / "results" / "param_counts.csv", presets=["DEG_f"])
    back = tables.read_param_counts(path)
    assert list(back.columns) == tables.PARAM_COLUMNS and back.n_params.tolist() == counts.n_params.tolist()
    wide = tables.table2_wide(back)
    assert wide["total: paper (M)"].iloc[0] == pytest.approx(24.55)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv"):
        tables.read_param_counts(tmp_path / "bad.csv")


def test_render_table_formats_cells():
    fig, ax = plt.subplots()
    table = pd.DataFrame({"name": ["a", "b"], "x": [1.0, 2.345], "y": [np.nan, 120.0]})
    tables.render_table(ax, table, decimals=2)
    texts = sorted(c.get_text().get_text() for c in ax.tables[0].get_celld().values())
    plt.close(fig)
    assert texts == sorted(["name", "x", "y", "a", "b", "1", "2.35", "\u2013", "120"])


# --------------------------------------------------------------------------------------
# Figure 1C colour code
# --------------------------------------------------------------------------------------
def _one(dx, dy, m=1.0):
    return flowviz.flow_to_rgb(np.array([dx, dy], float).reshape(2, 1, 1), max_magnitude=m)[0, 0].astype(int)


def test_flow_colours_by_direction_and_magnitude():
    assert _one(0, 0).tolist() == [255, 255, 255]            # still = white
    assert _one(1, 0).tolist() == [255, 0, 0]                # right = red
    assert _one(-1, 0).tolist() == [0, 255, 255]             # left = cyan
    assert _one(0, 1).tolist() == [128, 255, 0]              # down (image y) = hue 1/4
    assert _one(0, -1).tolist() == [128, 0, 255]             # up = hue 3/4
    assert _one(0.5, 0).tolist() == [255, 128, 128]          # half speed = half saturation
    assert _one(5, 0).tolist() == [255, 0, 0]                # beyond the scale: clipped
    batch = flowviz.flow_to_rgb(np.zeros((3, 2, 4, 5)))
    assert batch.shape == (3, 4, 5, 3) and batch.dtype == np.uint8
    with pytest.raises(ValueError, match="shape"):
        flowviz.flow_to_rgb(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        flowviz.flow_to_rgb(np.full((2, 2, 2), np.nan))
    flows = np.zeros((2, 2, 10, 10))
    flows[0, 0, 0, 0] = 100.0                                 # one outlier pixel
    flows[1, 1] = 2.0
    assert flowviz.robust_max(flows, 99) == pytest.approx(2.0)


def test_colour_wheel_legend():
    wheel, inside = flowviz.colour_wheel(101)
    assert wheel.shape == (101, 101, 3)
    assert wheel[50, 50].tolist() == [255, 255, 255]         # centre: no motion
    assert wheel[50, 100].tolist() == [255, 0, 0]            # right edge, middle row
    assert wheel[100, 50].tolist() == [128, 255, 0]          # bottom = downward
    assert not inside[0, 0] and wheel[0, 0].tolist() == [255, 255, 255]


def test_load_flow_example(tmp_path):
    path = tmp_path / "flow_example.npz"
    frames = np.zeros((11, 8, 8, 3), np.uint8)
    flows = np.ones((10, 2, 4, 4), np.float32)
    io.write_npz(path, frames=frames, flows=flows, video=np.array("v1"), center=np.array(7), key=np.array("k"))
    ex = flowviz.load_flow_example(path)
    assert ex["video"] == "v1" and ex["center"] == 7 and ex["flows"].shape == (10, 2, 4, 4)
    io.write_npz(path, frames=frames, flows=flows[:9])
    with pytest.raises(flowviz.FlowExampleError, match="flow_example.npz.*11 frames but 9 flows"):
        flowviz.load_flow_example(path)
    io.write_npz(path, frames=frames)
    with pytest.raises(flowviz.FlowExampleError, match="lacks 'flows'"):
        flowviz.load_flow_example(path)
    with pytest.raises(flowviz.FlowExampleError, match="missing"):
        flowviz.load_flow_example(tmp_path / "none.npz")


def test_command_line_writes_the_counts(tmp_path, capsys):
    out = tmp_path / "p" / "param_counts.csv"
    assert tables.main(["param-counts", str(out), "--n-classes", "4"]) == 0
    assert "K=4" in capsys.readouterr().out
    counts = tables.read_param_counts(out)
    assert set(counts.preset) == set(PRESETS) and (counts.n_classes == 4).all()
    assert len(counts) == len(PRESETS) * len(tables.COMPONENTS)
