"""deg.bench_published: the ratio table, and a worker that runs without deg (make bench-published itself
installs the published package into its own venv, so it is not part of make test)."""
from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
from pathlib import Path

from deg import bench_published


def test_markdown_gives_medians_ratios_and_per_round_ratios():
    result = {"created": "2026-12-01T12:00:00+00:00", "cpu": "AMD EPYC", "cpu_flags": ["avx2", "fma"], "threads": 1,
              "n_frames": 32, "repeats": 2, "backends": ["eager", "onnxruntime"],
              "rows": [{"preset": "DEG_f", "size": 128, "load": [7.2, 6.6],
                        "runs": {"published": [2.0, 3.0], "eager": [2.2, 2.4], "onnxruntime": [3.4, 4.2]},
                        "median_fps": {"published": 2.5, "eager": 2.3, "onnxruntime": 3.8},
                        "ratio": {"eager": 2.3 / 2.5, "onnxruntime": 3.8 / 2.5}}]}
    text = bench_published.markdown(result)
    assert "deepethogram==0.5.0" in text and "AMD EPYC" in text and "avx2 fma" in text
    assert "| DEG_f | 128 | 2.50 | 2.30 | 0.92x (1.10, 0.80) | 3.80 | 1.52x (1.70, 1.40) | 7.2, 6.6 |" in text


def test_worker_imports_only_numpy_torch_and_the_published_package():
    tree = ast.parse(bench_published.WORKER.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"__future__", "json", "sys", "time", "numpy", "torch", "deepethogram"}
    assert "deepethogram" in names and "deg" not in names


def test_a_ready_bench_venv_follows_this_checkouts_packages(tmp_path):
    """A bench venv made from another checkout (its .pth naming a venv since deleted) is pointed
    at this one's site-packages again, and imports this project's numpy through it."""
    venv = tmp_path / "published-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   text=True).strip()
    (Path(site) / "deg-project-site.pth").write_text(str(tmp_path / "gone" / "site-packages") + "\n")
    (venv / ".deg-ready").write_text(bench_published.PUBLISHED + "\n")
    assert subprocess.run([str(python), "-c", "import numpy"], capture_output=True).returncode != 0
    assert bench_published.make_venv(venv) == python
    assert (Path(site) / "deg-project-site.pth").read_text() == sysconfig.get_paths()["purelib"] + "\n"
    subprocess.run([str(python), "-c", "import numpy"], check=True)
