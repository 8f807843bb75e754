"""Build the course notebooks from their one source each, and execute them.

Source: ``notebooks/course/src/<lesson>.py`` in the "percent" cell format (the syntax jupytext
reads, parsed here without it)::

    # %% [markdown]
    # Text of a markdown cell (each line starts with "# ").
    # %% tags=["parameters"]
    size = "full"
    # %% tags=["solution"]
    n_bouts = len(starts)

From each source two notebooks are written (stripped of outputs, ``python3`` kernelspec, fixed
cell ids so that rebuilding an unchanged source changes no byte):

* ``notebooks/course/<lesson>.ipynb``, the student's: every cell tagged ``solution`` is replaced
  by a stub (:func:`stub`): a name the solution assigns becomes ``name = None``, a function it
  defines keeps its signature and docstring and raises ``NotImplementedError``;
* ``notebooks/course/solutions/<lesson>.ipynb``: the same notebook with the solution cells kept.

The generated notebooks are committed (students open them directly); ``--check`` fails when one
differs from what its source gives, so they cannot drift from the source.

Command line::

    python -m deg.course.build            # write the notebooks
    python -m deg.course.build --check    # exit 1 if a committed notebook is out of date
    python -m deg.course.build --execute results/course [-p size full]   # run every solutions notebook
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

from deg import io
from deg.paths import REPO

COURSE = REPO / "notebooks" / "course"
SOURCES = COURSE / "src"
SOLUTIONS = COURSE / "solutions"
STUB_MARK = "# YOUR CODE HERE"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
_HEADER = re.compile(r"^# %%(?P<rest>.*)$")


class CourseSourceError(ValueError):
    """A lesson source that cannot be turned into notebooks (the message names file and line)."""


def lessons(sources: Path = SOURCES) -> list[Path]:
    """The lesson sources in course order (their names start with the lesson number)."""
    return sorted(sources.glob("[0-9][0-9]_*.py"))


def parse_cells(path: Path) -> list[dict[str, Any]]:
    """Cells of a percent-format source: dicts with ``kind`` ("code"/"markdown"), ``tags``, ``source``."""
    cells: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        match = _HEADER.match(line)
        if match:
            rest = match.group("rest").strip()
            kind = "markdown" if rest.startswith("[markdown]") else "code"
            rest = rest.removeprefix("[markdown]").strip()
            tags: list[str] = []
            if rest:
                tag_match = re.fullmatch(r"tags=(\[.*\])", rest)
                if not tag_match:
                    raise CourseSourceError(f"{path}:{lineno}: cannot read cell header {line!r}")
                tags = json.loads(tag_match.group(1))
            current = {"kind": kind, "tags": tags, "lines": [], "line": lineno}
            cells.append(current)
        elif current is None:
            if line.strip():
                raise CourseSourceError(f"{path}:{lineno}: text before the first '# %%' cell header")
        else:
            current["lines"].append(line)
    for cell in cells:
        lines = cell.pop("lines")
        if cell["kind"] == "markdown":
            bad = [l for l in lines if l.strip() and not (l.startswith("# ") or l == "#")]
            if bad:
                raise CourseSourceError(f"{path}:{cell['line']}: markdown lines must start with '# ': {bad[0]!r}")
            lines = [l[2:] if l.startswith("# ") else "" for l in lines]
        cell["source"] = "\n".join(lines).strip("\n")
    return cells


def stub(source: str, where: str = "") -> str:
    """The student's stand-in for a solution cell: names set to None, functions that raise."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise CourseSourceError(f"{where}: solution cell does not parse: {exc}") from exc
    out: list[str] = []
    assigned: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            header = source.splitlines()[node.lineno - 1]
            doc = ast.get_docstring(node)
            body = [f'    """{doc}"""'] if doc else []
            out.append("\n".join([header, *body, f"    {STUB_MARK}", "    raise NotImplementedError"]))
        else:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name) and name.id not in assigned:
                        assigned.append(name.id)
    if assigned:
        out.append("\n".join(f"{name} = None" for name in assigned))
    if not out:
        raise CourseSourceError(f"{where}: a solution cell must assign a name or define a function")
    return f"{STUB_MARK}\n" + "\n\n".join(out)


def build_notebook(path: Path, solutions: bool) -> nbformat.NotebookNode:
    """The student (``solutions=False``) or solutions notebook of one lesson source."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    n_params = 0
    for i, cell in enumerate(parse_cells(path)):
        tags = list(cell["tags"])
        source = cell["source"]
        if cell["kind"] == "markdown":
            new = nbformat.v4.new_markdown_cell(source)
        else:
            if "solution" in tags and not solutions:
                source = stub(source, f"{path}:{cell['line']}")
            new = nbformat.v4.new_code_cell(source)
        n_params += "parameters" in tags
        if tags:
            new.metadata["tags"] = tags
        new.id = f"{path.stem[:2]}-{i:03d}"
        nb.cells.append(new)
    if n_params != 1:
        raise CourseSourceError(f"{path}: needs exactly one cell tagged 'parameters', found {n_params}")
    return nb


def outputs(path: Path, course: Path = COURSE) -> dict[str, Path]:
    return {"student": course / f"{path.stem}.ipynb", "solutions": course / "solutions" / f"{path.stem}.ipynb"}


def _text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def build(sources: Path = SOURCES, course: Path = COURSE, check: bool = False) -> list[Path]:
    """Write (or with ``check``, compare) every lesson's two notebooks; returns the stale ones."""
    stale = []
    for path in lessons(sources):
        for variant, dest in outputs(path, course).items():
            text = _text(build_notebook(path, solutions=variant == "solutions"))
            if dest.exists() and dest.read_text() == text:
                continue
            stale.append(dest)
            if not check:
                io.write_text(dest, text)
    return stale


def execute(out_dir: Path, parameters: dict[str, Any], variant: str = "solutions",
            course: Path = COURSE) -> list[tuple[Path, float]]:
    """Run every lesson's notebook of ``variant`` with papermill (strict runner) into ``out_dir``.

    Solutions run with ``strict_checks=True``: an exercise whose check fails fails the lesson.
    Returns (executed copy, seconds) per lesson.
    """
    from deg.notebooks import run_notebook

    folder = course / "solutions" if variant == "solutions" else course
    params = {"strict_checks": variant == "solutions", **parameters}
    done = []
    for nb in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        t0 = time.perf_counter()
        out = run_notebook(nb, Path(out_dir) / variant / nb.name, params, cwd=folder)
        done.append((out, time.perf_counter() - t0))
        print(f"{nb.name}: {done[-1][1]:.0f} s -> {out}", flush=True)
    return done


def _value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    from deg.notebooks import NotebookExecutionError, NotebookParameterError

    parser = argparse.ArgumentParser(description="Build (or check, or execute) the course notebooks.")
    parser.add_argument("--check", action="store_true", help="fail if a committed notebook is out of date")
    parser.add_argument("--execute", metavar="OUT_DIR", help="execute every lesson into OUT_DIR")
    parser.add_argument("--variant", choices=("solutions", "student"), default="solutions")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)
    stale = build(check=args.check)
    if args.check and stale:
        print("out of date (run python -m deg.course.build):\n  " + "\n  ".join(map(str, stale)), file=sys.stderr)
        return 1
    if args.execute:
        params = {name: _value(value) for name, value in args.parameter}
        try:
            done = execute(Path(args.execute), params, args.variant)
        except (NotebookParameterError, NotebookExecutionError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{len(done)} lessons in {sum(s for _, s in done) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
