"""Speed of DEG_f / DEG_m / DEG_s: inference frames/s and training steps/s (``make bench``).

Paper (Results: "DeepEthogram allows rapid inference time", Table 1): inference frames/s of the
three presets at each dataset's resolution, from the video file to the probabilities. Here, per
preset, image size and device:

* ``inference``: a synthetic mp4 (a moving blob on a textured background, written with
  :func:`deg.data.video.write_video`) through :class:`deg.infer.Predictor.probabilities`: the
  background decoder, the flow generator, both feature-extractor streams and the TGM, exactly as
  ``deg.infer`` predicts a new video. Models are randomly initialised (speed does not depend on
  the weights).
* ``train_flow`` / ``train_feature`` / ``train_sequence``: steps/s of each stage's own training
  step (:func:`deg.train.flow.train` etc., with augmentation, losses and regularisers) on
  synthetic frames, labels and features, with the profile's batch sizes. The stage's ``fit`` is
  swapped for a timer that runs the same optimiser step as :func:`deg.train.loop.fit` (zero_grad,
  autocast, backward, Adam step) without validation or checkpoints; the first step (one-time
  set-up) is timed apart and left out of the rate.

Time budget. On a 2-core CPU one DEG_s training step at 256 x 256 with a batch of 16 takes
minutes, so each measurement gets ``--budget`` seconds: the number of frames (inference) and of
steps (training) is what fits in it (at least ``MIN_FRAMES`` frames and one timed step), and a
training batch whose estimated step time alone exceeds the budget is made smaller (the row's
``batch`` says which; the printout says so). On a GPU the budget rarely cuts anything; a batch
that runs out of GPU memory is halved (also said). ``--quick`` (tests): tiny sizes and batches, a
few frames and steps.

Shared machines: OpenMP threads that share cores with other busy processes wait on each other at
every op. Measured here with another process busy on one of 2 cores, DEG_f inference at 128 x 128
ran at 1.3 frames/s with 2 threads and 5 frames/s with ``--threads 1``; the device string
records the thread count.

Backends (issue 14): on the CPU, ``--backends`` (default: every installed one of
:data:`deg.backends.NAMES`; none with ``--quick``) also times the same video with each
feature-path backend (ONNX Runtime float32, int8) against eager in alternating rounds
(``--repeats``), with each round's 1-minute load average, and the agreement of their
probabilities with eager (:func:`deg.backends.agreement`); see :func:`backend_rows`. The header
names the CPU, its SIMD / int8 / bf16 flags, torch's dispatch capability and the thread count.
``--inference-only`` skips the training stages.

Output: a table printed as it goes and ``results/bench.json`` (or ``--out``), written atomically::

    {"device": "cpu: <model>, <n> threads" | "cuda: <gpu name>", "cpu": str, "torch": str,
     "created": iso time, "rows": [{"preset", "height", "width", "device", "precision",
     "stage", "frames_per_s" | "steps_per_s", "n_frames" | "n_steps", "batch"}, ...],
     # with backends only:
     "cpu_features": {"model", "flags", "capability", "native_bf16", "threads"},
     "backends": [{"preset", "height", "width", "backend", "used", "frames_per_s", "runs", "load",
                   "max_abs_diff", "flip_fraction", "setup_s", "n_frames", ...}, ...]}
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from deg import backends, cli, io, paths, presets, provenance

STAGES = ("inference", "train_flow", "train_feature", "train_sequence")
BEHAVIOURS = ["background", "b1", "b2", "b3", "b4", "b5"]   # K = 6, like the synthetic datasets
NORM = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
MIN_FRAMES = 4            # inference frames measured at the least
MIN_TRAIN_BATCH = 2      # the smallest training batch batch norm accepts
TRAIN_COST = 3.0          # a training step ~ 3x the forward pass of its batch (forward + backward)


@dataclasses.dataclass(frozen=True)
class Settings:
    presets: tuple[str, ...]
    sizes: tuple[int, ...]
    max_frames: int           # inference frames at most
    max_steps: int            # timed training steps at most
    budget_s: float           # seconds per measurement (see module docstring)
    profile: str | None       # batch sizes; None: "paper" on CUDA, "demo" on the CPU
    backends: tuple[str, ...] = ()   # CPU feature-path backends compared with eager (deg.backends)
    repeats: int = 2          # alternating timed runs per backend (the median is reported)
    inference_only: bool = False   # skip the training stages


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_features() -> dict[str, Any]:
    """The CPU's model, the SIMD / int8 / bf16 flags of :data:`CPU_FLAGS` it has (from
    /proc/cpuinfo), torch's dispatch capability and whether oneDNN has native bf16."""
    from deg.train.common import cpu_supports_bf16

    flags = provenance.cpu_flags()
    return {"model": provenance.cpu_name(), "flags": [f for f in CPU_FLAGS if f in flags],
            "capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_supports_bf16(),
            "threads": torch.get_num_threads()}


def device_name(device: torch.device) -> str:
    """"cpu: <model name>, <n> threads" or "cuda: <gpu name>"."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {provenance.cpu_name()}, {torch.get_num_threads()} threads"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------
# Synthetic inputs
# --------------------------------------------------------------------------------------
def synthetic_frames(n: int, height: int, width: int, chunk: int = 32, seed: int = 0) -> Iterator[np.ndarray]:
    """Chunks (t, H, W, 3) uint8 of a bright blob moving over a fixed texture (compresses like video)."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(40, 110, size=(height, width, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    sigma2 = 2.0 * (max(height, width) / 10.0) ** 2
    for start in range(0, n, chunk):
        t = np.arange(start, min(start + chunk, n), dtype=np.float32)
        cy = height / 2 + height / 4 * np.sin(2 * np.pi * t / 50)
        cx = width / 2 + width / 4 * np.cos(2 * np.pi * t / 70)
        d2 = (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2
        blob = 140.0 * np.exp(-d2 / sigma2)[..., None]                          # (t, H, W, 1)
        yield np.clip(texture[None] + blob, 0, 255).astype(np.uint8)


def _alternating_labels(n: int, k: int) -> np.ndarray:
    """(n, k) int8 labels, every behaviour both present and absent (n >= 2), background consistent."""
    from deg.data.labels import background_from

    behaviours = ((np.arange(n)[:, None] + np.arange(k - 1)[None, :]) % 2).astype(np.int8)
    return background_from(behaviours)


# --------------------------------------------------------------------------------------
# Training steps, timed
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _timed_fit(module, device: torch.device, budget_s: float, max_steps: int,
               record: dict[str, Any]) -> Iterator[None]:
    """Within the block, ``module.fit`` (the stage's training loop) times its training step instead.

    Each step is :func:`deg.train.loop.optimisation_step`, the very step :func:`deg.train.loop.fit`
    takes (zero_grad, ``train_step`` under autocast, backward, the weight penalty, the Adam step).
    One untimed warm-up step, then as many steps as fit in ``budget_s`` (1 to ``max_steps``).
    """
    from deg.train.loop import FitResult, Precision, make_optimizer, optimisation_step

    def fit(stage_dir, model, train_step: Callable[[int], torch.Tensor], validate, cfg, *, regulariser=None,
            precision: Precision | None = None, **_ignored) -> FitResult:
        precision = precision or Precision()
        optimizer = make_optimizer(model, cfg.lr, regulariser)
        scaler = precision.make_scaler()
        model.train()

        def step(i: int) -> None:
            optimisation_step(train_step, i, optimizer, precision, scaler, regulariser)

        t0 = time.perf_counter()
        step(1)
        _sync(device)
        warmup = time.perf_counter() - t0
        n = int(max(1, min(max_steps, budget_s // max(warmup, 1e-9))))
        t0 = time.perf_counter()
        for i in range(n):
            step(i + 2)
        _sync(device)
        record.update(n_steps=n, seconds=time.perf_counter() - t0, warmup_s=warmup)
        return FitResult(steps=n + 1, best_metric=None, best_step=None, stopped="max_steps")

    saved = module.fit
    module.fit = fit
    try:
        yield
    finally:
        module.fit = saved


@contextlib.contextmanager
def _quiet_pretrained() -> Iterator[None]:
    """Silence "no pretrained weights" warnings: the benchmark's models are random on purpose."""
    logger = logging.getLogger("deg.models.pretrained")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _train_context(ctx, frames: np.ndarray, profile) -> Any:
    """The inference context plus what training reads: two "videos" of ``frames``, labels, a split."""
    from deg.data.splits import Split

    labels = _alternating_labels(len(frames), len(BEHAVIOURS))
    return dataclasses.replace(ctx, profile=profile, split=Split(train=["bench_a"], val=["bench_b"]),
                               labels={"bench_a": labels, "bench_b": labels}, videos=["bench_a", "bench_b"],
                               _frames={"bench_a": frames, "bench_b": frames})


def train_rate(stage: str, ctx, frames: np.ndarray, flow_model, settings: Settings,
               budget_s: float) -> dict[str, Any]:
    """{"steps_per_s", "n_steps", "warmup_s"} of one stage's training step on ``ctx``'s device."""
    from deg.train import feature, flow, sequence

    record: dict[str, Any] = {}
    module = {"flow": flow, "feature": feature, "sequence": sequence}[stage]
    with tempfile.TemporaryDirectory(prefix="deg-bench-") as tmp, _quiet_pretrained(), \
            _timed_fit(module, ctx.device, budget_s, settings.max_steps, record):
        if stage == "flow":
            flow.train(ctx, Path(tmp), key="bench")
        elif stage == "feature":
            feature.train(ctx, Path(tmp), "bench", flow_model)
        else:
            T = 4 * ctx.profile.sequence_length
            d = 2 * ctx.preset.feature_dim
            rng = np.random.default_rng(0)
            feats = {v: {"x": rng.standard_normal((T, d)).astype(np.float32)} for v in ("bench_a", "bench_b")}
            labels = _alternating_labels(T, len(BEHAVIOURS))
            seq_ctx = dataclasses.replace(ctx, labels={"bench_a": labels, "bench_b": labels}, _frames=None)
            sequence.train(seq_ctx, Path(tmp), "bench", feats)
    return {"steps_per_s": record["n_steps"] / record["seconds"], "n_steps": record["n_steps"],
            "warmup_s": record["warmup_s"]}


# --------------------------------------------------------------------------------------
# One preset on one device
# --------------------------------------------------------------------------------------
def _profile(settings: Settings, device: torch.device) -> presets.Profile:
    name = settings.profile or ("paper" if device.type == "cuda" else "demo")
    return presets.get_profile(name)


def _build_models(ctx) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """Randomly initialised flow generator (frozen), feature extractor and TGM, in eval mode."""
    from deg.train import feature, flow, sequence

    torch.manual_seed(0)
    flow_model = flow.build(ctx).eval()
    for p in flow_model.parameters():
        p.requires_grad_(False)
    feature_model = feature.build(ctx).eval()
    seq_model = sequence.build(ctx, 2 * ctx.preset.feature_dim).eval()
    return flow_model, feature_model, seq_model


@torch.inference_mode()
def _clip_fps(predictor, n_clips: int) -> float:
    """Frames/s of the flow generator + feature extractor on random clips, after one warm-up call.

    The first call of a shape pays one-time costs (allocations, kernel selection) that would
    make the estimate several times too low.
    """
    from deg.train.feature import _forward

    ctx = predictor.ctx
    H, W = ctx.image_size
    clip = ctx.standardizer(torch.rand(n_clips, 3, ctx.preset.n_flow_frames, H, W, device=ctx.device))
    for _ in range(2):
        t0 = time.perf_counter()
        with ctx.precision.autocast():
            _forward(ctx, predictor.flow_model, predictor.feature_model, clip)
        _sync(ctx.device)
    return n_clips / (time.perf_counter() - t0)


def backend_rows(predictor, video: Path, names: Sequence[str], repeats: int, cache_dir: Path,
                 base: dict[str, Any]) -> list[dict[str, Any]]:
    """Inference frames/s of ``video`` with each feature-path backend, alternating, and agreement.

    Each backend first predicts the video once (building, exporting or quantising its model --
    calibrated on this video's first clips -- and warming up; ``setup_s``); then ``repeats``
    rounds time every backend in turn (eager first), so that load on a shared machine hits
    all of them alike. Rows: base + {"backend", "frames_per_s" (median), "runs" (frames/s of
    each round), "load" (1-min load average at each round), "max_abs_diff", "flip_fraction"
    (probabilities vs eager, thresholds 0.5), "setup_s", "used" (the backend that ran: a
    failed one falls back to eager)}.
    """
    import os

    from deg import backends, infer

    preds, rows = {}, {}
    for name in ("eager",) + tuple(n for n in names if n != "eager"):
        p = infer.Predictor(ctx=predictor.ctx, flow_model=predictor.flow_model,
                            feature_model=predictor.feature_model, sequence_model=predictor.sequence_model,
                            behaviours=predictor.behaviours, batch=predictor.batch, backend=name,
                            cache_dir=cache_dir)
        t0 = time.perf_counter()
        probs = p.probabilities(video)
        preds[name] = p
        rows[name] = dict(base, stage="inference", backend=name, used=p.backend_name, runs=[], load=[],
                          setup_s=time.perf_counter() - t0, n_frames=len(probs), batch=p.batch,
                          **backends.agreement(rows["eager"]["_probs"] if rows else probs, probs))
        rows[name]["_probs"] = probs
    for _ in range(max(1, repeats)):
        for name, p in preds.items():
            rows[name]["load"].append(round(os.getloadavg()[0], 2))
            t0 = time.perf_counter()
            n = len(p.probabilities(video))
            rows[name]["runs"].append(n / (time.perf_counter() - t0))
    out = []
    for row in rows.values():
        row.pop("_probs")
        row["frames_per_s"] = float(np.median(row["runs"]))
        out.append(row)
    return out


def bench_preset(preset_name: str, device: torch.device, settings: Settings, workdir: Path,
                 emit: Callable[[dict[str, Any], str], None],
                 emit_backend: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Measure every stage of one preset at every size on ``device``; ``emit(row, note)`` each row."""
    from deg import infer
    from deg.data.video import read_video, write_video

    preset = presets.get_preset(preset_name)
    profile = _profile(settings, device)
    models = None
    for size in settings.sizes:
        ctx = infer.run_context(preset, presets.HPARAMS, profile, BEHAVIOURS, (size, size), NORM, device)
        if models is None:                        # the models do not depend on the image size
            models = _build_models(ctx)
        flow_model, feature_model, seq_model = models
        predictor = infer.Predictor(ctx=ctx, flow_model=flow_model, feature_model=feature_model,
                                    sequence_model=seq_model, behaviours=BEHAVIOURS, batch=profile.infer_batch)
        base = {"preset": preset_name, "height": size, "width": size, "device": device_name(device),
                "precision": ctx.precision.name}

        # --- inference: as many frames as fit in the budget, from an mp4 on disk
        est = _clip_fps(predictor, 1)
        n_frames = int(min(settings.max_frames, max(MIN_FRAMES, est * settings.budget_s)))
        predictor.batch = min(profile.infer_batch, n_frames)
        video = workdir / f"bench_{size}x{size}_{n_frames}.mp4"
        if not video.exists():
            write_video(video, synthetic_frames(n_frames, size, size), fps=30)
        t0 = time.perf_counter()
        probs = predictor.probabilities(video)
        seconds = time.perf_counter() - t0
        if probs.shape != (n_frames, len(BEHAVIOURS)) or not np.isfinite(probs).all():
            raise RuntimeError(f"bench: {preset_name} {size}x{size}: bad probabilities {probs.shape}")
        fps = n_frames / seconds
        note = f"{n_frames} frames (budget {settings.budget_s:g} s)" if n_frames < settings.max_frames else ""
        emit(dict(base, stage="inference", frames_per_s=fps, n_frames=n_frames, batch=predictor.batch), note)
        if settings.backends and device.type == "cpu" and emit_backend is not None:
            for row in backend_rows(predictor, video, settings.backends, settings.repeats, workdir / "cache", base):
                emit_backend(row)

        if settings.inference_only:
            continue
        # --- training steps of each stage
        frames = read_video(video)
        for stage, field in (("flow", "flow_batch"), ("feature", "feature_batch"), ("sequence", "sequence_batch")):
            batch = getattr(profile, field)
            note = ""
            if stage != "sequence" and TRAIN_COST * batch / fps > settings.budget_s:
                # at least 2: batch norm in training mode needs two samples per channel
                smaller = max(MIN_TRAIN_BATCH, int(settings.budget_s * fps / TRAIN_COST))
                note = f"batch {batch} -> {smaller} to fit the {settings.budget_s:g} s budget"
                batch = smaller
            res = None
            while res is None:
                train_ctx = _train_context(ctx, frames, dataclasses.replace(profile, **{field: batch}))
                try:
                    res = train_rate(stage, train_ctx, frames, flow_model, settings, settings.budget_s)
                except torch.OutOfMemoryError:
                    if batch // 2 < MIN_TRAIN_BATCH:
                        raise
                    note = f"batch {batch} -> {batch // 2} (out of memory)"
                    batch //= 2
                if res is None:                  # outside the handler: its traceback holds the tensors
                    gc.collect()
                    torch.cuda.empty_cache()
            if res["n_steps"] < settings.max_steps and not note:
                note = f"{res['n_steps']} timed step(s) (budget {settings.budget_s:g} s)"
            emit(dict(base, stage=f"train_{stage}", steps_per_s=res["steps_per_s"], n_steps=res["n_steps"],
                      batch=batch), note)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def _format(row: dict[str, Any], note: str) -> str:
    rate = (f"{row['frames_per_s']:9.2f} frames/s" if "frames_per_s" in row
            else f"{row['steps_per_s']:9.3f} steps/s ")
    n = f"n={row.get('n_frames', row.get('n_steps'))}"
    return (f"{row['preset']:6} {row['height']:>4}x{row['width']:<4} {row['device'].split(':')[0]:4} "
            f"{row['precision']:4} {row['stage']:15} {rate} {n:>7} batch={row['batch']:<3} {note}").rstrip()


def run(settings: Settings, devices: Sequence[str], out: Path, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure, print each row as it comes, write ``out`` atomically; return the JSON object."""
    devs = [torch.device(d) for d in devices]
    rows: list[dict[str, Any]] = []
    backend_table: list[dict[str, Any]] = []

    def emit(row: dict[str, Any], note: str) -> None:
        rows.append(row)
        echo(_format(row, note))

    def emit_backend(row: dict[str, Any]) -> None:
        backend_table.append(row)
        used = "" if row["used"] == row["backend"] else f" (fell back to {row['used']})"
        echo(f"{row['preset']:6} {row['height']:>4}x{row['width']:<4} backend {row['backend']:17} "
             f"{row['frames_per_s']:7.2f} frames/s (runs {', '.join(f'{r:.2f}' for r in row['runs'])}; load "
             f"{', '.join(f'{x:.1f}' for x in row['load'])})  max|dp| {row['max_abs_diff']:.2g}  "
             f"flips {row['flip_fraction']:.3f}  setup {row['setup_s']:.0f} s{used}")

    primary = next((d for d in devs if d.type == "cuda"), devs[0])
    cpu = cpu_features()
    echo(f"deg bench: CPU {cpu['model']}, flags {' '.join(cpu['flags']) or 'none of ' + '/'.join(CPU_FLAGS)}, "
         f"torch capability {cpu['capability']}, native bf16 {cpu['native_bf16']}, {cpu['threads']} threads")
    echo(f"deg bench: {', '.join(device_name(d) for d in devs)}; torch {torch.__version__}; "
         f"{settings.budget_s:g} s per measurement, at most {settings.max_frames} frames / {settings.max_steps} steps")
    echo(f"{'preset':6} {'size':9} {'dev':4} {'prec':4} {'stage':15} {'rate':>18} {'n':>7} batch")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deg-bench-") as tmp:
        for dev in devs:
            for preset_name in settings.presets:
                bench_preset(preset_name, dev, settings, Path(tmp), emit, emit_backend)
    result = {"device": device_name(primary), "cpu": provenance.cpu_name(), "torch": torch.__version__,
              "created": provenance.now_iso(), "rows": rows}
    if settings.backends:
        result["cpu_features"] = cpu
        result["backends"] = backend_table
    io.write_json(out, result)
    echo(f"deg bench: {len(rows)} rows in {time.perf_counter() - t0:.0f} s -> {out}")
    return result


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m deg.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=None, help="default: DEG_f DEG_m DEG_s")
    ap.add_argument("--sizes", nargs="+", type=int, default=None, help="square image sizes (default: 128 256)")
    ap.add_argument("--frames", type=int, default=None, help="inference frames at most (default 256)")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps at most (default 10)")
    ap.add_argument("--budget", type=float, default=None, help="seconds per measurement (default 8)")
    ap.add_argument("--profile", default=None, help="batch sizes of this profile (default: paper on CUDA, demo on CPU)")
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the CPU, and the GPU when present)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    ap.add_argument("--backends", nargs="*", default=None,
                    help="CPU feature-path backends timed against eager (deg.backends; default: every "
                         "installed one, none with --quick); give none to skip")
    ap.add_argument("--repeats", type=int, default=2, help="alternating timed runs per backend (default 2)")
    ap.add_argument("--inference-only", action="store_true", help="measure inference only (no training stages)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, batches and counts (tests)")
    ap.add_argument("--out", default=None, help="output JSON (default: results/bench.json)")
    return ap


@cli.entry_point("deg.bench")
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for name in args.presets or ():
        cli.check_preset(name)
    if args.profile is not None:
        cli.check_profile(args.profile)
    cli.check_device(args.device)
    quick = args.quick
    settings = Settings(
        presets=tuple(args.presets or (("DEG_f",) if quick else tuple(presets.PRESETS))),
        sizes=tuple(args.sizes or ((64,) if quick else (128, 256))),
        max_frames=int(args.frames or (16 if quick else 256)),
        max_steps=int(args.steps or (2 if quick else 10)),
        budget_s=float(args.budget if args.budget is not None else (1.0 if quick else 8.0)),
        profile=args.profile or ("tiny" if quick else None),
        backends=tuple(args.backends if args.backends is not None else
                       (() if quick else [b for b in backends.NAMES if b != "eager" and backends.available(b)])),
        repeats=int(args.repeats),
        inference_only=bool(args.inference_only),
    )
    for name in settings.backends:
        backends.available(name)               # ValueError naming the known backends
    if args.threads:
        torch.set_num_threads(int(args.threads))
    for name in settings.presets:
        presets.get_preset(name)                 # KeyError naming the known presets
    bad = [s for s in settings.sizes if s < 16 or s % 8]
    if bad:
        raise cli.UsageError(f"--sizes must be >= 16 and divisible by 8 (flow generator), got {bad}")
    if args.device:
        devices = [args.device]
    else:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = Path(args.out) if args.out else paths.results_dir() / "bench.json"
    run(settings, devices, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
