"""deg.notebooks: strict parameters, failures that leave nothing looking finished (real papermill runs)."""
from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from deg.notebooks import NotebookExecutionError, NotebookParameterError, declared_parameters, run_notebook


def _notebook(path, body: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("n: int = 2  # how many\nword: str = 'a'  # what")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def test_declared_parameters(tmp_path):
    nb = _notebook(tmp_path / "a.ipynb", "x = n")
    assert declared_parameters(nb) == {"n": "2", "word": "'a'"}


def test_success_writes_executed_copy_with_injected_parameters(tmp_path):
    nb = _notebook(tmp_path / "a.ipynb", "result = word * n\nprint(result)")
    out = run_notebook(nb, tmp_path / "out" / "a.ipynb", {"n": 3, "word": "ab"}, log_output=False)
    executed = nbformat.read(out, as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "ababab" in printed
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_mistyped_parameter_is_an_error(tmp_path):
    nb = _notebook(tmp_path / "a.ipynb", "x = n")
    with pytest.raises(NotebookParameterError, match="unknown parameter.*wrod.*declares: n, word"):
        run_notebook(nb, tmp_path / "out.ipynb", {"wrod": "b"})
    assert not (tmp_path / "out.ipynb").exists()


def test_failing_cell_fails_and_leaves_nothing_finished(tmp_path):
    nb = _notebook(tmp_path / "a.ipynb", "raise ValueError('broken input file xyz.csv')")
    out = tmp_path / "out.ipynb"
    with pytest.raises(NotebookExecutionError, match="ValueError: broken input file xyz.csv"):
        run_notebook(nb, out, {"n": 1}, log_output=False)
    assert not out.exists()
    assert (tmp_path / "out.failed.ipynb").exists()


def test_command_line_exit_code_and_message(tmp_path):
    nb = _notebook(tmp_path / "a.ipynb", "assert n == 5, 'n must be five'")
    proc = subprocess.run([sys.executable, "-m", "deg.notebooks", str(nb), str(tmp_path / "o.ipynb"), "-p", "n", "4"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "AssertionError: n must be five" in proc.stderr
    ok = subprocess.run([sys.executable, "-m", "deg.notebooks", str(nb), str(tmp_path / "o.ipynb"), "-p", "n", "5"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o.ipynb").exists()
