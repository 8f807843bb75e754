"""Command lines: unknown names are refused with one line and exit code 2 before anything is written.

Entry points are called in-process (their ``main``) except the Snakemake plan, which runs the real
``snakemake -n`` once.
"""
from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from deg import cli, paths


def _one_line_error(capsys, *parts):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    return err


def test_evaluate_unknown_profile_writes_nothing(isolated, capsys):
    from deg import evaluate

    assert evaluate.main(["humans", "--profile", "demi", "synthetic_tiny"]) == cli.EXIT_USAGE
    _one_line_error(capsys, "unknown profile 'demi'", "did you mean 'demo'", "known: tiny, demo, paper")
    assert not any((isolated / "results").iterdir())


def test_evaluate_and_describe_unknown_dataset(isolated, capsys):
    from deg import describe, evaluate

    assert evaluate.main(["humans", "--profile", "tiny", "synthetic_tiyn"]) == cli.EXIT_USAGE
    _one_line_error(capsys, "unknown dataset 'synthetic_tiyn'", "did you mean 'synthetic_tiny'")
    assert describe.main(["--profile", "tiny", "Synthetic_Tiny"]) == cli.EXIT_USAGE
    _one_line_error(capsys, "case-sensitive")


def test_input_errors_exit_3_with_the_file(isolated, capsys):
    from deg import evaluate

    root = isolated / "data" / "mine"
    root.mkdir()
    (root / "dataset.json").write_text("{}")          # prepared under data/: a known name, but unfinished
    assert evaluate.main(["humans", "--profile", "tiny", "mine"]) == cli.EXIT_INPUT
    _one_line_error(capsys, str(root), "COMPLETE")


@pytest.mark.parametrize("device", ["gpu0", "cuda:7", "CPU"])
def test_infer_unknown_device(capsys, device, tmp_path):
    from deg import infer

    if device == "cuda:7" and not __import__("torch").cuda.is_available():
        expected = "no CUDA GPU"
    else:
        expected = "unknown device" if device != "cuda:7" else "GPU(s)"
    assert infer.main(["--run", str(tmp_path), "--device", device, str(tmp_path / "a.mp4")]) == cli.EXIT_USAGE
    _one_line_error(capsys, f"'{device}'", expected)


@pytest.mark.parametrize("args, expected", [(["--presets", "DEG_x"], "unknown preset 'DEG_x'"),
                                            (["--profile", "Paper"], "did you mean 'paper'"),
                                            (["--device", "gpu"], "unknown device 'gpu'"),
                                            (["--sizes", "30"], "divisible by 8")])
def test_bench_checks_names_before_measuring(capsys, tmp_path, args, expected):
    from deg import bench

    assert bench.main(args + ["--out", str(tmp_path / "b.json")]) == cli.EXIT_USAGE
    _one_line_error(capsys, expected)
    assert not (tmp_path / "b.json").exists()


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('split = "split0"\nseed = 0\ndatasets = []')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params]
    nbformat.write(nb, path)
    return path


def test_notebook_values_are_typed_like_their_defaults(tmp_path, capsys):
    from deg import notebooks, pipeline

    nb = _notebook(tmp_path / "a.ipynb")
    params = notebooks.parse_parameters(nb, [("split", "0"), ("seed", "3"), ("datasets", '["a"]')])
    assert params == {"split": "0", "seed": 3, "datasets": ["a"]}
    assert pipeline.split_name(params["split"]) == "split0"            # and "0" is split 0
    for pair, expected in ((["seed", "three"], "'three' is not a number"),
                           (["datasets", "a"], "not a JSON list"), (["sede", "1"], "unknown parameter(s) sede")):
        assert notebooks.main([str(nb), str(tmp_path / "o.ipynb"), "-p", *pair]) == cli.EXIT_USAGE
        _one_line_error(capsys, expected)
    assert not (tmp_path / "o.ipynb").exists()


def test_plan_refuses_typos_and_knows_user_datasets(isolated):
    from deg.data.datasets import Dataset
    from deg.workflow import plan

    with pytest.raises(cli.UsageError, match=r"unknown dataset 'synthetic_tin'; did you mean 'synthetic_tiny'\?"):
        plan("tiny", "synthetic_tin")
    with pytest.raises(cli.UsageError, match="case-sensitive"):
        plan("tiny", "Synthetic_tiny")
    with pytest.raises(cli.UsageError, match="unknown profile 'tinny'"):
        plan("tinny")
    root = isolated / "data" / "my_lab"
    Dataset(id="my_lab", fps=30.0, behaviours=["background", "groom"], annotators=["me"], train_annotator="me",
            videos=["v"], root=root).save()
    assert plan("tiny", "my_lab").datasets == ["my_lab"]


def test_snakemake_dry_run_with_a_typo_exits_2_with_one_line(isolated):
    env = {**os.environ, "PYTHONPATH": str(paths.REPO), "OMP_NUM_THREADS": "1"}
    snakemake = os.path.join(os.path.dirname(sys.executable), "snakemake")
    done = subprocess.run([snakemake, "--snakefile", str(paths.REPO / "workflow" / "Snakefile"), "-n", "--cores", "1",
                           "--config", "profile=tiny", "datasets=synthetic_tyni"], capture_output=True, text=True,
                          env=env, cwd=isolated, timeout=120)
    assert done.returncode == cli.EXIT_USAGE, done.stderr[-2000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("deg: error: unknown dataset 'synthetic_tyni'"), lines


def _file_size_limit(limit: int):
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_no_room_exits_4_and_a_read_only_folder_exits_3_with_one_line(isolated):
    """``deg.data.prepare`` and ``deg.evaluate`` out of room (a file-size limit: EFBIG, as a full
    disk gives ENOSPC), and ``deg.data.prepare`` onto a read-only data folder: deg.cli's codes 4 and
    3, a last line naming the file or the folder, no traceback, nothing partial left."""
    from tests.reliability.test_runs import read_only

    env = {**os.environ, "PYTHONPATH": str(paths.REPO), "OMP_NUM_THREADS": "1"}
    data, results = isolated / "data", isolated / "results"

    def command(*args, limit=None):
        done = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=300,
                              preexec_fn=_file_size_limit(limit) if limit else None)
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        return done.returncode, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""

    code, last = command("deg.data.prepare", "synthetic_tiny", limit=1024)
    assert code == cli.EXIT_NO_SPACE and last.startswith(f"prepare synthetic_tiny: {data}") and "EFBIG" in last, last
    assert sorted(p.name for p in data.iterdir()) == [".locks"]          # no partial dataset

    with read_only(data):
        code, last = command("deg.data.prepare", "synthetic_tiny")
    assert code == cli.EXIT_INPUT and last.startswith(f"prepare synthetic_tiny: {data}") and ": read-only" in last, last

    # (deg.evaluate onto a read-only results folder: tests/reliability/test_runs.py)
    from deg.data import synthetic

    synthetic.generate("synthetic_tiny", progress=False)
    code, last = command("deg.evaluate", "humans", "--profile", "tiny", "synthetic_tiny", limit=1024)
    assert code == cli.EXIT_NO_SPACE and last.startswith(f"deg.evaluate: error: {results}") and "EFBIG" in last, last
    assert not list(results.rglob(".tmp-*")) and not list(data.rglob(".tmp-*"))
