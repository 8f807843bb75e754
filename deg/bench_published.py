"""Side by side with the published DeepEthogram 0.5.0 on this CPU (``make bench-published``).

Not part of ``make test``: it creates a separate virtual environment
(``results/_bench/published-venv``) and installs ``deepethogram==0.5.0`` there with ``--no-deps``
(its pins -- torch 2.4.1, pytorch_lightning 1.6.5, pandas < 2.1 -- conflict with ours). torch
and torchvision are this project's own install: a ``.pth`` file puts this venv's site-packages
on the published venv's path, so both sides run the very same torch build; only what the
published model code imports on top (OpenCV, omegaconf) is installed into that venv, also
with ``--no-deps`` so nothing in this project's venv is touched.

For each preset (DEG_f, DEG_m) and size, with random weights, on frames of the same synthetic
video (:func:`deg.bench.synthetic_frames`), in alternating rounds (published, then ours, each
in a fresh process with the same thread count):

* published: :mod:`deg.bench_published_worker` (its ``predict_single_video`` model path: flow
  generator + both streams, without its decoding or sequence model);
* ours: :class:`deg.infer.Predictor` from the mp4 file to probabilities (decoding, flow
  generator, both streams and the TGM: more work than the published side's), with each
  backend asked for.

Writes ``results/_bench/published.json`` and ``published.md`` (atomically): frames/s of each
side per round (with the 1-minute load average), medians and the ratio ours / published.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from deg import io, paths

PUBLISHED = "deepethogram==0.5.0"
# What the published model code imports beyond torch/numpy/h5py/yaml (deepethogram/utils.py:
# cv2, omegaconf); exact versions, installed with --no-deps into the bench venv only.
EXTRA = ("omegaconf==2.3.0", "antlr4-python3-runtime==4.9.3", "opencv-python-headless==4.12.0.88")
WORKER = Path(__file__).with_name("bench_published_worker.py")


def make_venv(venv: Path) -> Path:
    """The published package's interpreter (creating the venv the first time)."""
    python = venv / "bin" / "python"
    ready = python.exists() and (venv / ".deg-ready").exists()
    if not ready:
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    # this project's torch / torchvision / numpy / h5py / yaml, after the venv's own packages;
    # written every time, so a bench venv made from another checkout's venv follows this one
    pth, project_site = site / "deg-project-site.pth", sysconfig.get_paths()["purelib"] + "\n"
    if not pth.is_file() or pth.read_text() != project_site:
        io.write_text(pth, project_site)
    if ready:
        return python
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", PUBLISHED, *EXTRA], check=True)
    io.write_text(venv / ".deg-ready", PUBLISHED + "\n")
    return python


def _ours(preset: str, size: int, video: Path, backend: str, threads: int, out: Path) -> None:
    code = (
        "import json, sys, time, torch\n"
        f"torch.set_num_threads({threads})\n"
        "from deg import bench, infer, presets\n"
        f"ctx = infer.run_context(presets.get_preset({preset!r}), presets.HPARAMS, presets.get_profile('demo'),"
        f" bench.BEHAVIOURS, ({size}, {size}), bench.NORM, 'cpu')\n"
        "fm, fe, sm = bench._build_models(ctx)\n"
        f"p = infer.Predictor(ctx=ctx, flow_model=fm, feature_model=fe, sequence_model=sm,"
        f" behaviours=bench.BEHAVIOURS, batch=64, backend={backend!r}, cache_dir={str(out.parent / 'cache')!r})\n"
        f"p.probabilities({str(video)!r})\n"
        "t0 = time.perf_counter()\n"
        f"n = len(p.probabilities({str(video)!r}))\n"
        f"json.dump({{'frames_per_s': n / (time.perf_counter() - t0), 'n_frames': n, 'used': p.backend_name}},"
        f" open({str(out)!r}, 'w'))\n")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def measure(presets_: Sequence[str], sizes: Sequence[int], backends_: Sequence[str], n_frames: int,
            threads: int, repeats: int, workdir: Path, python: Path,
            on_row: Callable[[list[dict[str, Any]]], None] = lambda rows: None) -> dict[str, Any]:
    """Rows {"preset", "size", "runs", "load", "median_fps", "ratio"}; ``on_row(rows so far)`` after each."""
    from deg import bench
    from deg.data.video import write_video

    rows = []
    for size in sizes:
        video = workdir / f"bench_{size}.mp4"
        frames = np.concatenate(list(bench.synthetic_frames(n_frames, size, size)))
        write_video(video, iter([frames]), fps=30)
        np.save(workdir / f"frames_{size}.npy", frames)
        for preset in presets_:
            runs: dict[str, list[float]] = {"published": [], **{b: [] for b in backends_}}
            load: list[float] = []
            for _ in range(repeats):
                load.append(round(os.getloadavg()[0], 2))
                out = workdir / "published.json"
                subprocess.run([str(python), str(WORKER), preset, str(workdir / f"frames_{size}.npy"), str(n_frames),
                                str(threads), str(out)], check=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
                runs["published"].append(json.loads(out.read_text())["frames_per_s"])
                for b in backends_:
                    out = workdir / f"ours_{b}.json"
                    _ours(preset, size, video, b, threads, out)
                    res = json.loads(out.read_text())
                    if res["used"] != b:
                        raise RuntimeError(f"backend {b} fell back to {res['used']}")
                    runs[b].append(res["frames_per_s"])
                print(f"{preset} {size}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in runs.items())
                      + f" frames/s (load {load[-1]})", flush=True)
            med = {k: float(np.median(v)) for k, v in runs.items()}
            rows.append({"preset": preset, "size": size, "runs": runs, "load": load, "median_fps": med,
                         "ratio": {b: med[b] / med["published"] for b in backends_}})
            on_row(rows)
    return {"rows": rows}


def markdown(result: dict[str, Any]) -> str:
    b = result["backends"]
    lines = [f"Side by side with {PUBLISHED} ({result['created']}; {result['cpu']}, flags "
             f"{' '.join(result['cpu_flags'])}; {result['threads']} thread(s); {result['n_frames']} frames, random "
             f"weights; medians of {result['repeats']} alternating rounds; 1-min load average per round)", "",
             "| preset | size | published fps | " + " | ".join(f"deg {x} fps | ratio {x} (per round)" for x in b)
             + " | load |", "|---" * (3 + 2 * len(b) + 1) + "|"]
    for r in result["rows"]:
        m, runs = r["median_fps"], r["runs"]
        per_round = {x: ", ".join(f"{o / p:.2f}" for o, p in zip(runs[x], runs["published"])) for x in b}
        lines.append(f"| {r['preset']} | {r['size']} | {m['published']:.2f} | "
                     + " | ".join(f"{m[x]:.2f} | {r['ratio'][x]:.2f}x ({per_round[x]})" for x in b)
                     + f" | {', '.join(str(x) for x in r['load'])} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from deg import bench, provenance

    ap = argparse.ArgumentParser(prog="python -m deg.bench_published", description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["DEG_f", "DEG_m"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[128, 224])
    ap.add_argument("--backends", nargs="+", default=["eager", "onnxruntime"])
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="output folder (default results/_bench)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else paths.results_dir() / "_bench"
    python = make_venv(out / "published-venv")
    cpu = bench.cpu_features()
    res: dict[str, Any] = dict(cpu=cpu["model"], cpu_flags=cpu["flags"], threads=args.threads, n_frames=args.frames,
                               repeats=args.repeats, backends=list(args.backends), published=PUBLISHED)

    def write(rows: list[dict[str, Any]]) -> None:           # after every row: an interrupted run keeps its rows
        res.update(rows=rows, created=provenance.now_iso())
        io.write_json(out / "published.json", res)
        io.write_text(out / "published.md", markdown(res))

    with tempfile.TemporaryDirectory(prefix="deg-bench-published-") as tmp:
        measure(args.presets, args.sizes, args.backends, args.frames, args.threads, args.repeats, Path(tmp),
                python, on_row=write)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
