"""Runs under faults: killed (SIGKILL) inside every stage, re-run, read-only; provenance kept.

A child process (``whole_run.py``: training run, evaluation, a figure) first runs out of room
during flow-generator training (its results folder on a 12 MB tmpfs when root, else a 4 MB
file-size limit): it must stop with a ``DiskFullError`` naming the file and ``ENOSPC``/``EFBIG``.
With the room back, it is killed at points chosen with a seeded generator inside the named
stages, then started again, until it finishes; its predictions, features, tables and figure data
must equal those of an undisturbed run in another folder.
Finally the finished results folder is made read-only (a read-only bind mount when root, else
``chmod``): the run must still load; a run or command that must write there stops with a
:class:`deg.io.ReadOnlyError` naming the folder (exit code 3), and no file there changes. ``run.json`` keeps
the start and wall time of the computation across resumed attempts; a no-op re-run adds ``checked_at``.

``make test`` fills the disk once and kills twice, during feature writing and as the figure's first
panel is written (a minute of CPU;
``tests/test_pipeline.py`` also kills one run inside feature-extractor training); ``make soak``
(``DEG_SOAK=<rounds>``) kills in all six stages, each at ``rounds`` random moments.

Dataset preparation (``python -m deg.data.prepare synthetic_tiny``) is killed too, fresh and while
rebuilding over a complete copy: ``make test`` when the build folder gets its first video file,
``make soak`` at ``rounds`` random moments; the next preparation must give the undisturbed dataset
byte for byte, with nothing left beside it (a kill inside the swap's renames is undone as well).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deg import paths

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
DATASET, PRESET, PROFILE, FIGURE = "synthetic_tiny", "DEG_f", "tiny", "faults"
SOAK = int(os.environ.get("DEG_SOAK", "0") or 0)


def _run_dir(results: Path) -> Path:
    return results / PROFILE / DATASET / PRESET / "split0"


# stage -> a file whose appearance means the stage is under way (relative to results, figures)
def _started(stage: str, results: Path, figures: Path) -> bool:
    run = _run_dir(results)
    if stage == "flow":
        return (run / "flow" / "config.json").exists()
    if stage == "feature_writing":
        return any((run / "features").glob("*.npz"))
    if stage in ("feature", "sequence"):
        return (run / stage / "config.json").exists()
    if stage == "evaluation":
        return (run / "predictions" / "DONE").exists()
    if stage == "figure_writing":
        return (figures / PROFILE / FIGURE).is_dir()
    if stage == "between_panels":       # the first panel's files are being written, the second's not yet
        return any((figures / PROFILE / FIGURE).glob("*f1_a*"))
    raise ValueError(stage)


STAGES = ("flow", "feature", "feature_writing", "sequence", "evaluation", "figure_writing")
# make test: during feature writing (a random moment up to 0.15 s in), and as the figure's first panel is written
ROUNDS = [["feature_writing", "between_panels"]] if not SOAK else [list(STAGES)] * SOAK


def _env(root: Path, results: Path, figures: Path) -> dict[str, str]:
    return {**os.environ, "DEG_DATA": str(root / "data"), "DEG_RESULTS": str(results), "DEG_FIGURES": str(figures),
            "PYTHONPATH": str(paths.REPO), "OMP_NUM_THREADS": "1"}


def _kill_during(stage: str, delay: float, env: dict[str, str], results: Path, figures: Path) -> str:
    """Start the whole run, SIGKILL it ``delay`` s after ``stage`` began; 'killed' or 'finished'."""
    proc = subprocess.Popen([sys.executable, str(HERE / "whole_run.py")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and not _started(stage, results, figures) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return "killed"
        output = proc.stdout.read().decode()
        assert proc.returncode == 0, output[-3000:]
        return "finished"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _outputs(results: Path, figures: Path) -> dict[str, object]:
    run = _run_dir(results)
    out: dict[str, object] = {}
    for npz in sorted((run / "predictions").glob("*.npz")) + sorted((run / "features").glob("*.npz")):
        with np.load(npz) as z:
            out.update({f"{npz.parent.name}/{npz.name}:{k}": z[k].copy() for k in z.files})
    out["thresholds"] = json.loads((run / "thresholds.json").read_text())
    for table in ("metrics", "bouts", "transitions", "train_frames"):
        out[table] = pd.read_csv(run / f"{table}.csv")
    fig = figures / PROFILE / FIGURE
    out["manifest"] = json.loads((fig / "manifest.json").read_text())
    out["panels"] = {p.name: pd.read_csv(p) for p in sorted(fig.glob("*.csv"))}
    assert not list(run.rglob(".tmp-*")) and not list(fig.glob(".tmp-*"))
    return out


def _same(a, b, where="") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, obj=where)
    else:
        assert a == b, where


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` read-only for this process too: a read-only bind mount as root, else chmod."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, mode in reversed(list(modes.items())):
                p.chmod(mode)


@pytest.fixture
def results_disk(tmp_path):
    """The results folder on its own tmpfs when this process may mount one (root), so that it can
    really fill up; elsewhere the child gets a file-size limit (``EFBIG``) instead."""
    folder = tmp_path / "results"
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", str(folder)], capture_output=True).returncode == 0
    yield folder, mounted
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _clear(folder: Path) -> None:
    if folder.exists():
        for child in folder.iterdir():
            subprocess.run(["rm", "-rf", str(child)], check=True)


def _run_out_of_room(env: dict[str, str], results: Path, mounted: bool) -> str:
    """Run until the disk is full during flow-generator training (two ~8 MB checkpoints): a 12 MB
    tmpfs, or a 4 MB file-size limit; then free the room again, as a user would."""
    if mounted:
        subprocess.run(["mount", "-o", "remount,size=12m", str(results)], check=True)
    else:
        env = {**env, "DEG_TEST_FILE_SIZE_LIMIT": str(4 * 2**20)}
    try:
        done = subprocess.run([sys.executable, str(HERE / "whole_run.py")], env=env, capture_output=True, text=True,
                              timeout=300)
    finally:
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=2g", str(results)], check=True)
    assert done.returncode != 0, "the run did not run out of room"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("deg.io.DiskFullError") and str(results) in last, last
    assert ("ENOSPC" if mounted else "EFBIG") in last, last
    return "disk full"


def test_full_disk_and_kills_then_rerun_gives_the_undisturbed_results(tmp_path, monkeypatch, results_disk):
    from deg.data import synthetic

    import torch

    from tests.reliability.whole_run import whole_run

    for var, name in (("DEG_DATA", "data"), ("DEG_RESULTS", "clean_results"), ("DEG_FIGURES", "clean_figures")):
        monkeypatch.setenv(var, str(tmp_path / name))
    synthetic.generate(DATASET, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                    # as the children (OMP_NUM_THREADS=1)
    try:
        whole_run()                             # the undisturbed run, in this process
    finally:
        torch.set_num_threads(threads)
    reference = _outputs(tmp_path / "clean_results", tmp_path / "clean_figures")

    (results, mounted), figures = results_disk, tmp_path / "figures"
    env = _env(tmp_path, results, figures)
    rng = np.random.default_rng(12)
    for points in ROUNDS:
        for path in (results, figures):
            _clear(path)
        outcomes = [("disk", _run_out_of_room(env, results, mounted))]
        outcomes += [(stage, _kill_during(stage, 0.0 if stage == "between_panels" else float(rng.uniform(0, 0.15)),
                                          env, results, figures))
                     for stage in points]
        if not SOAK:        # the point of `make test` is long enough to be hit every time
            assert all(outcome == "killed" for _, outcome in outcomes[1:]), outcomes
        print("kill points:", outcomes)
        done = subprocess.run([sys.executable, str(HERE / "whole_run.py")], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        _same(_outputs(results, figures), reference)

    record = json.loads((_run_dir(results) / "run.json").read_text())
    assert record["complete"] and record["resumed_at"]          # one computation, resumed after each fault
    assert record["started_at"] <= record["resumed_at"][0]
    assert record["wall_s"] > sum(r["wall_s"] for r in record["stages"].values() if not r["cached"])

    # a no-op re-run keeps the provenance of the computation and only adds checked_at
    from deg import pipeline

    monkeypatch.setenv("DEG_RESULTS", str(results))
    pipeline.run(DATASET, PRESET, 0, profile=PROFILE, progress=False)
    again = json.loads((_run_dir(results) / "run.json").read_text())
    assert again == {**record, "checked_at": again["checked_at"]}

    # a finished run on a read-only results folder loads; nothing in it changes
    # a run or a command that must write there stops with one line naming the folder (exit code 3
    # from a command line) and loses nothing
    from deg import cli, io

    split_json = _run_dir(results) / "split.json"         # as a run from before `left_out` was recorded
    split_json.write_text(json.dumps({k: v for k, v in json.loads(split_json.read_text()).items() if k != "left_out"}))
    before = _files(results)
    with read_only(results):
        assert pipeline.run(DATASET, PRESET, 0, profile=PROFILE, progress=False) == _run_dir(results)
        with pytest.raises(io.ReadOnlyError, match=f"^{re.escape(str(results))}.*: read-only"):
            pipeline.run(DATASET, PRESET, 0, profile=PROFILE, progress=False, sequence_steps=3)
        done = subprocess.run([sys.executable, "-m", "deg.evaluate", "humans", "--profile", PROFILE, DATASET],
                              env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == cli.EXIT_INPUT, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"deg.evaluate: error: {results}") and "read-only" in last, last
    assert _files(results) == before


# ----------------------------------------------------------------------------- dataset preparation
def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _kill_preparation(data: Path, env: dict[str, str], force: bool, delay: float | None) -> str:
    """Start ``python -m deg.data.prepare synthetic_tiny``; SIGKILL it when its build folder gets its
    first video file (``delay`` None, as ``make test`` does) or ``delay`` s after the start (soak)."""
    proc = subprocess.Popen([sys.executable, "-m", "deg.data.prepare", DATASET, *(["--force"] if force else [])],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + (delay if delay is not None else 120)
        while proc.poll() is None and time.monotonic() < deadline:
            if delay is None and any(data.glob(f".tmp-{DATASET}-*/videos/*")):
                break
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return "killed"
        assert proc.returncode == 0, proc.stdout.read().decode()[-3000:]
        return "finished"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_preparation_killed_then_rerun_gives_the_undisturbed_dataset(tmp_path, monkeypatch):
    """SIGKILL while ``deg.data.prepare`` writes synthetic_tiny (fresh, then rebuilding over a
    complete copy): no partial dataset is ever complete, a complete one stays as it was, and the
    next preparation gives the undisturbed dataset byte for byte, leaving nothing beside it."""
    from deg.data import prepare
    from deg.data.datasets import Dataset, DatasetError

    monkeypatch.setenv("DEG_DATA", str(tmp_path / "reference"))
    reference = _files(prepare.prepare(DATASET, progress=False).root)

    data = tmp_path / "data"
    env = {**_env(tmp_path, tmp_path / "results", tmp_path / "figures"), "DEG_DATA": str(data)}
    rng = np.random.default_rng(7)
    rounds = [None] if not SOAK else [float(d) for d in rng.uniform(0, 3, SOAK)]
    for delay in rounds:
        subprocess.run(["rm", "-rf", str(data)], check=True)
        for force in (False, True):         # fresh, then rebuilding over the complete dataset
            outcome = _kill_preparation(data, env, force=force, delay=delay)
            assert outcome == "killed" or SOAK, outcome
            for marker in data.rglob("COMPLETE"):       # a folder marked complete is never partial
                assert _files(marker.parent) == reference, marker
            if force and not SOAK:                      # killed mid-build: the old dataset is untouched
                assert _files(data / DATASET) == reference
            if not (data / DATASET / "COMPLETE").exists():
                with pytest.raises(DatasetError):
                    Dataset.load(data / DATASET)
            done = subprocess.run([sys.executable, "-m", "deg.data.prepare", DATASET], env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
            assert _files(data / DATASET) == reference
            assert sorted(p.name for p in data.iterdir()) == [".locks", DATASET]    # no build left beside it


def test_build_killed_between_the_renames_of_a_swap_is_undone(tmp_path):
    """The state a kill leaves inside :func:`deg.data.datasets.swap_in` (the old dataset renamed away,
    its ``raw/`` downloads moved into the new build, the new one not yet in place) is undone by the
    next preparation: the old dataset is back with its downloads, and nothing is left beside it."""
    import tempfile

    from deg.data.datasets import COMPLETE, Dataset, recover_interrupted_builds
    from deg.data.synthetic import generate

    final = tmp_path / DATASET
    generate(DATASET, root=final, progress=False)
    (final / "raw").mkdir()
    (final / "raw" / "download.zip").write_bytes(b"kept")
    before = _files(final)
    # swap_in's first steps, as a build killed after them leaves them
    built = Path(tempfile.mkdtemp(prefix=f".tmp-{DATASET}-", dir=tmp_path))
    (built / "dataset.json").write_text("{}")
    (built / COMPLETE).write_text("ok\n")
    (final / "raw").rename(built / "raw")
    old = Path(tempfile.mkdtemp(prefix=f".old-{DATASET}-", dir=tmp_path))
    final.rename(old / DATASET)

    done = recover_interrupted_builds(final)
    assert any("restored the previous dataset" in line for line in done), done
    assert _files(final) == before and Dataset.load(final).id == DATASET
    assert sorted(p.name for p in tmp_path.iterdir()) == [DATASET]
    assert recover_interrupted_builds(final) == []
