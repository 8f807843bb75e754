"""Execute parameterized notebooks with papermill, strictly.

Papermill alone only *warns* about a parameter the notebook does not declare, and on failure it
leaves the executed notebook at its final path. Here:

* every parameter name must be assigned in the notebook's cell tagged ``parameters``
  (a typo is a :class:`NotebookParameterError` listing the known names);
* the notebook runs with the current interpreter's ``python3`` kernel;
* on success the executed notebook is renamed onto ``output`` (atomic); on failure it is kept as
  ``<output>.failed.ipynb`` for inspection and :class:`NotebookExecutionError` carries the failing
  cell's source and error, so nothing that looks finished is left behind.

Command line (used by the Snakemake rules)::

    python -m deg.notebooks notebooks/fig2_datasets.ipynb results/.../fig2.ipynb -p profile demo
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat

from deg import io

KERNEL = "python3"


class NotebookParameterError(ValueError):
    """A parameter passed to a notebook that its ``parameters`` cell does not declare."""


class NotebookExecutionError(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


def declared_parameters(notebook: str | os.PathLike) -> dict[str, str]:
    """Names assigned in the cell tagged ``parameters``, mapped to their default's source text."""
    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise NotebookParameterError(f"{notebook}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    tree = ast.parse(cells[0].source)
    declared: dict[str, str] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name):
                declared[target.id] = ast.get_source_segment(cells[0].source, node.value) if node.value else ""
    return declared


def check_parameters(notebook: str | os.PathLike, parameters: dict[str, Any]) -> None:
    declared = declared_parameters(notebook)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise NotebookParameterError(
            f"{notebook}: unknown parameter(s) {', '.join(unknown)}; the notebook declares: {', '.join(declared)}")


def run_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict[str, Any] | None = None,
                 cwd: str | os.PathLike | None = None, log_output: bool = True) -> Path:
    """Execute ``notebook`` with ``parameters`` and write the executed copy to ``output``."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    parameters = dict(parameters or {})
    check_parameters(notebook, parameters)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    failed = output.with_name(output.name.removesuffix(".ipynb") + ".failed.ipynb")
    failed.unlink(missing_ok=True)
    with io.atomic_path(output, suffix=".ipynb") as tmp:
        try:
            papermill.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name=KERNEL,
                                       cwd=str(cwd) if cwd else None, log_output=log_output, progress_bar=False,
                                       stdout_file=sys.stdout if log_output else None,
                                       stderr_file=sys.stderr if log_output else None)
        except PapermillExecutionError as exc:
            os.replace(tmp, failed)
            raise NotebookExecutionError(
                f"{notebook} failed in cell {exc.cell_index} (executed copy: {failed}):\n"
                f"--- cell source ---\n{exc.source}\n--- error ---\n{exc.ename}: {exc.evalue}") from None
    return output


def _parse_value(text: str, default_source: str | None = None, name: str = "") -> Any:
    """A command-line value, typed like the notebook's default for it.

    JSON when it parses (numbers, lists, true/false), else the raw string; but where the
    notebook's default is a string literal the raw text is kept as a string (``-p split 0``
    arrives as ``"0"``, not ``0``), and where the default is a number a non-number is refused.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    try:
        default = ast.literal_eval(default_source) if default_source else None
    except (ValueError, SyntaxError):
        return value                      # an expression default: nothing to compare with
    if isinstance(default, str) and not isinstance(value, str):
        return text
    if isinstance(default, (int, float)) and not isinstance(default, bool) and (
            isinstance(value, bool) or not isinstance(value, (int, float))):
        raise NotebookParameterError(f"parameter {name!r}: {text!r} is not a number (the notebook's default is "
                                     f"{default_source})")
    if isinstance(default, list) and not isinstance(value, list):
        raise NotebookParameterError(f"parameter {name!r}: {text!r} is not a JSON list (the notebook's default is "
                                     f"{default_source}); write e.g. '[\"a\", \"b\"]'")
    return value


def parse_parameters(notebook: str | os.PathLike, pairs: list[tuple[str, str]] | list[list[str]]) -> dict[str, Any]:
    """``[(name, text), ...]`` from the command line -> checked, typed parameters (see :func:`_parse_value`)."""
    declared = declared_parameters(notebook)
    params = {name: _parse_value(value, declared.get(name), name) for name, value in pairs}
    check_parameters(notebook, params)
    return params


def main(argv: list[str] | None = None) -> int:
    """Command line; exit codes of :mod:`deg.cli`: 2 for a parameter the notebook does not declare or of
    the wrong kind (checked before anything runs), 1 when a cell fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("output")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--cwd", default=None)
    args = parser.parse_args(argv)
    try:
        if not Path(args.notebook).is_file():
            raise NotebookParameterError(f"{args.notebook}: notebook not found")
        params = parse_parameters(args.notebook, args.parameter)
    except NotebookParameterError as exc:
        print(f"deg.notebooks: error: {exc}", file=sys.stderr)
        return 2
    try:
        run_notebook(args.notebook, args.output, params, cwd=args.cwd)
    except NotebookExecutionError as exc:
        print(f"deg.notebooks: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
