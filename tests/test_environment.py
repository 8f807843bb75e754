"""The project's own rules: pinned dependencies agree, notebooks are stripped and parameterized."""
from __future__ import annotations

import re
import tomllib
from importlib import metadata

import nbformat
import pytest
import yaml

from deg import paths
from deg.notebooks import declared_parameters

REPO = paths.REPO
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(dep.split("==") for dep in deps)


def test_every_dependency_is_pinned_exactly():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert deps and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", d) for d in deps), deps
    pins = _pyproject_pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert int(pins["pingouin"].split(".")[1]) >= 6 or int(pins["pingouin"].split(".")[0]) >= 1
    assert "lightning" not in pins, "one Lightning namespace only (pytorch-lightning)"


def test_environment_yml_has_the_same_pins_as_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_block = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    conda_pins = dict(dep.split("==") for dep in pip_block)
    assert conda_pins == _pyproject_pins()
    assert "python=3.11" in env["dependencies"]


def test_installed_versions_match_the_pins():
    mismatched = {name: (pin, metadata.version(name)) for name, pin in _pyproject_pins().items()
                  if metadata.version(name).split("+")[0] != pin}
    assert not mismatched, f"installed versions differ from pyproject pins (re-run make setup): {mismatched}"


def test_ci_runs_exactly_the_readme_commands():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make setup && make test" in ci
    first_block = readme.split("```")[1]
    assert first_block.split() == ["make", "setup", "make", "test"] or first_block.split()[1:] == ["make", "setup", "make", "test"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.name for nb in NOTEBOOKS])
def test_notebook_is_stripped_and_parameterized(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs must be stripped"
    params = declared_parameters(notebook)
    assert "profile" in params
    source = next(c.source for c in code if "parameters" in c.metadata.get("tags", []))
    for line in filter(str.strip, source.splitlines()):
        assert re.match(r"^\w+: [\w\[\], |]+ = .+#\s*\S", line), f"{notebook.name}: parameter needs a type and a comment: {line}"
        # papermill cannot parse a parameters line whose comment holds "=" (it only warns).
        assert "=" not in line.split("#", 1)[1], f"{notebook.name}: '=' in a parameter comment: {line}"


def test_notebooks_exist():
    assert {"fig2_datasets.ipynb", "run_pipeline.ipynb"} <= {nb.name for nb in NOTEBOOKS}
