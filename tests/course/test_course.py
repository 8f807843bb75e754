"""The course: notebooks built from their sources, every solution passes its checks, every stub fails.

The lessons run for real (papermill, the python3 kernel, synthetic_tiny generated once for the
session, the lessons' ``size="tiny"``); two notebooks execute at a time because each kernel start
is a few seconds of mostly waiting.
"""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import numpy as np
import pytest

from deg.course import build, checks

pytestmark = pytest.mark.slow

LESSONS = [p.stem for p in build.lessons()]
CHECK_LINE = re.compile(r"\[check (\d+\.\d+)\] (PASS|NOT YET)")
EXTRA_PARAMS = {"06_keypoints": ["-p", "clustering", "kmeans"]}   # UMAP's compile alone takes a minute


def _solution_cells(lesson: str) -> list[dict]:
    return [c for c in build.parse_cells(build.SOURCES / f"{lesson}.py") if "solution" in c["tags"]]


def _expected_ids(lesson: str) -> set[str]:
    n = int(lesson[:2])
    return {f"{n}.{i}" for i in range(1, len(_solution_cells(lesson)) + 1)}


def _check_lines(notebook: Path) -> list[tuple[str, str]]:
    nb = nbformat.read(notebook, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    return CHECK_LINE.findall(text)


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """Every solutions notebook, executed at tiny size (the stubs are proven to fail in-process)."""
    from deg.data import synthetic

    root = tmp_path_factory.mktemp("course")
    env = dict(os.environ, DEG_DATA=str(root / "data"), DEG_RESULTS=str(root / "results"),
               DEG_FIGURES=str(root / "figures"), OMP_NUM_THREADS="1", PYTHONPATH=str(build.REPO))
    env.pop("DEG_DATA_MIRROR", None)
    old = os.environ.get("DEG_DATA")
    os.environ["DEG_DATA"] = env["DEG_DATA"]
    try:
        synthetic.generate("synthetic_tiny", progress=False)      # shared by every lesson
    finally:
        if old is None:
            os.environ.pop("DEG_DATA")
        else:
            os.environ["DEG_DATA"] = old
    jobs = [(lesson, "solutions", build.SOLUTIONS / f"{lesson}.ipynb", True) for lesson in LESSONS]

    def run(job):
        lesson, variant, notebook, strict = job
        out = root / variant / f"{lesson}.ipynb"
        cmd = [sys.executable, "-m", "deg.notebooks", str(notebook), str(out), "-p", "size", "tiny",
               "-p", "dataset", "synthetic_tiny", "-p", "strict_checks", "true" if strict else "false",
               *EXTRA_PARAMS.get(lesson, []), "--cwd", str(root)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        return (lesson, variant), (proc, out)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, jobs))


def test_committed_notebooks_are_built_from_their_sources():
    assert len(LESSONS) == 7
    assert build.build(check=True) == [], "run python -m deg.course.build"
    for lesson in LESSONS:
        for path in build.outputs(build.SOURCES / f"{lesson}.py").values():
            nb = nbformat.read(path, as_version=4)
            assert nb.metadata["kernelspec"]["name"] == "python3"
            assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
            assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1


@pytest.mark.parametrize("lesson", LESSONS)
def test_solutions_pass_every_check(executed, lesson):
    proc, out = executed[(lesson, "solutions")]
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = _check_lines(out)
    assert {ex for ex, status in results if status == "PASS"} == _expected_ids(lesson)
    assert not [r for r in results if r[1] != "PASS"]


def test_student_notebooks_hold_stubs_not_solutions():
    for lesson in LESSONS:
        student = nbformat.read(build.COURSE / f"{lesson}.ipynb", as_version=4)
        cells = [c for c in student.cells if "solution" in c.metadata.get("tags", [])]
        assert len(cells) == len(_solution_cells(lesson))
        for cell, solution in zip(cells, _solution_cells(lesson)):
            assert cell.source.startswith(build.STUB_MARK) and cell.source != solution["source"]


def _stub_values(lesson: str) -> list[dict]:
    """What each solution cell's student stub defines, executed."""
    values = []
    for cell in _solution_cells(lesson):
        namespace: dict = {}
        exec(build.stub(cell["source"]), namespace)
        values.append({k: v for k, v in namespace.items() if not k.startswith("__")})
    return values


CHECKS = [f for name, f in inspect.getmembers(checks, inspect.isfunction)
          if f.__module__ == checks.__name__ and not name.startswith("_")]


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_every_check_fails_on_the_student_stub(check):
    stubbed = {k: v for lesson in LESSONS for cell in _stub_values(lesson) for k, v in cell.items()}
    params = [p for p in inspect.signature(check).parameters if p != "strict"]
    # the stub gives None (or a function raising NotImplementedError) for the answer arguments
    args = {p: stubbed.get(p) for p in params}
    if check is checks.moving_average:
        assert inspect.isfunction(stubbed["smooth"])
        args = {"fn": stubbed["smooth"]}
    result = check(**args)
    assert not result.ok and "not answered" in result.message
    with pytest.raises(checks.ExerciseNotPassed):
        check(**args, strict=True)


def test_stubs_cover_every_solution_cell():
    for lesson in LESSONS:
        for cell in _stub_values(lesson):
            assert cell and all(v is None or inspect.isfunction(v) for v in cell.values())


def test_checks_catch_wrong_answers_with_a_hint():
    labels = np.zeros((20, 2), dtype=np.int8)
    labels[:, 0] = 1
    labels[2:6, 1], labels[10:12, 1] = 1, 1
    labels[2:6, 0], labels[10:12, 0] = 0, 0
    assert checks.bout_count(2, labels, 1, "b").ok
    wrong = checks.bout_count(6, labels, 1, "b")                    # counted frames
    assert not wrong.ok and "frames, not of bouts" in wrong.message
    other = labels.copy()
    other[12, 1] = 1
    accuracy = float((labels[:, 1] == other[:, 1]).mean())
    assert not checks.f1_by_hand(accuracy, labels, other, 1).ok
    assert "accuracy" in checks.f1_by_hand(accuracy, labels, other, 1).message
    assert checks.f1_by_hand(2 * 6 / (2 * 6 + 1), labels, other, 1).ok
    assert not checks.constant_predictor(1.0, 0.0, labels[:, 1], "b").ok
    fn_bad = lambda x, w: np.convolve(x, np.ones(w), mode="same")  # forgot to divide
    assert not checks.moving_average(fn_bad).ok
    assert checks.moving_average(lambda x, w: np.convolve(x, np.ones(w) / w, mode="same")).ok


def test_threshold_check_names_peeking_at_the_test_set():
    from deg.postprocess import best_thresholds

    rng = np.random.default_rng(0)
    y_val, y_test = (rng.random((50, 3)) > 0.6).astype(np.int8), (rng.random((50, 3)) > 0.6).astype(np.int8)
    p_val, p_test = rng.random((50, 3)), rng.random((50, 3))
    assert checks.val_thresholds(best_thresholds(p_val, y_val), p_val, y_val, p_test, y_test).ok
    peeked = checks.val_thresholds(best_thresholds(p_test, y_test), p_val, y_val, p_test, y_test)
    assert not peeked.ok and "TEST" in peeked.message


def test_stub_and_source_errors(tmp_path):
    stub = build.stub("x = 1\ny, z = 2, 3\ndef f(a):\n    '''Doc.'''\n    return a")
    assert "x = None" in stub and "z = None" in stub and "raise NotImplementedError" in stub and "Doc." in stub
    with pytest.raises(build.CourseSourceError, match="assign a name"):
        build.stub("print(1)")
    bad = tmp_path / "01_bad.py"
    bad.write_text("# %% [markdown]\nnot a comment\n")
    with pytest.raises(build.CourseSourceError, match="01_bad.py:1: markdown lines"):
        build.parse_cells(bad)
    bad.write_text("# %% tags=[\"solution\"]\nx = 1\n")
    with pytest.raises(build.CourseSourceError, match="exactly one cell tagged 'parameters'"):
        build.build_notebook(bad, solutions=True)
