"""Predict behaviours on new videos with a trained run folder (``make predict VIDEOS=... RUN=...``).

Paper (Methods: Inference time): "a custom inference video pipeline that uses only sequential
video reading, batched model predictions, and multiprocessed data loading". Here, per video:

1. A background thread decodes the video sequentially (:func:`deg.data.video.iter_frames`, at the
   run's image size, exactly as training decoded it) into a bounded queue, so decoding overlaps
   with the models' compute and at most ``QUEUE_CHUNKS`` chunks wait in memory.
2. The main thread keeps a sliding buffer of the frames the next batch of clips needs (a clip of
   ``n_flow_frames`` frames around each frame, the first/last frame repeated at the edges, as in
   :func:`deg.train.clips.clip_indices`), standardises each frame once with the run's training
   mean/std, copies it into the clips that hold it (:meth:`deg.augment.Standardizer.clips_from_uint8`) and
   runs the frozen flow generator and the feature extractor (the training code's own forward pass)
   on ``batch`` clips at a time -- in PyTorch, or exported to ONNX Runtime float32 / int8
   (``--backend``, :mod:`deg.backends`; resolved on the first batch of the first video, whose
   clips calibrate int8 and check agreement with PyTorch). Every frame gets a prediction, even
   in a video shorter than the clip.
3. The per-frame features (T, 1024) are *not* all kept: the sequence model (TGM) runs on
   overlapping windows of ``SEQ_CHUNK`` frames with :data:`deg.train.sequence.MARGIN` frames of
   context on each side (far more than the TGM's receptive field, so window borders change no
   output) as soon as a window's features are complete. Memory is therefore bounded by the model,
   one decoding queue, one frame buffer and one feature window, whatever the video's length; only
   the probabilities (T, K) grow with it.
4. The run's validation thresholds and minimum bout lengths (``thresholds.json``) turn the
   probabilities into an ethogram (:func:`deg.postprocess.postprocess`: background = no other
   behaviour), written as a DeepEthogram CSV (``<stem>_predictions.csv``, background first, one
   0/1 column per behaviour) beside ``<stem>_probabilities.npz`` (probs (T, K), thresholds,
   min_bout, behaviours, and the video and run paths). Both writes are atomic, and nothing is
   written for a video that fails.

The run folder must be finished: every stage has its ``DONE`` marker and each stage was computed
from the stage it reads (configuration keys chained in ``config.json``); otherwise
:class:`RunFolderError` names the stage. Bad videos raise :class:`deg.data.video.VideoError`
naming the file; the command line carries on with the other videos and exits with status 1.
"""
from __future__ import annotations

import argparse
import fcntl
import queue
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from deg import cli, io

STAGES_NEEDED = ("flow", "feature", "features", "sequence", "predictions")
# Which stage each stage's configuration names as its input (deg.pipeline.stage_configs).
UPSTREAM = {"feature": "flow", "features": "feature", "sequence": "features", "predictions": "sequence"}
SEQ_CHUNK = 4096          # frames of features per sequence-model window (plus MARGIN each side)
QUEUE_CHUNKS = 4          # decoded chunks waiting for the models, at most
PRED_SUFFIX, PROB_SUFFIX = "_predictions.csv", "_probabilities.npz"


class InferenceError(ValueError):
    """Inference cannot run on this input; the message names the file and the problem."""


class RunFolderError(InferenceError):
    """The run folder is missing, unfinished or inconsistent."""


class BehaviourMismatchError(InferenceError):
    """The run was trained on other behaviours than the ones asked for or already on disk."""


# --------------------------------------------------------------------------------------
# The run folder
# --------------------------------------------------------------------------------------
def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise RunFolderError(f"{path.parent}: {what} {path.name} is missing")
    try:
        return io.read_json(path)
    except ValueError as exc:
        raise RunFolderError(str(exc)) from exc


def check_run(run_dir: str | Path) -> dict[str, Any]:
    """Validate a finished run folder; return {"run", "thresholds", "norm"} (its JSON files).

    Raises :class:`RunFolderError` naming the first stage without ``DONE``, a stage computed
    from an older version of its input stage, or a run that is being trained right now.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    if not (run_dir / "run.json").is_file():
        raise RunFolderError(f"{run_dir}: not a run folder (no run.json); expected "
                             "results/<profile>/<dataset>/<preset>/<split>/ written by deg.pipeline.run")
    _check_not_training(run_dir)
    done: dict[str, str] = {}
    for stage in STAGES_NEEDED:
        marker = run_dir / stage / "DONE"
        if not marker.is_file():
            raise RunFolderError(f"{run_dir}: the run is unfinished: stage {stage!r} has no DONE marker "
                                 f"({marker}); finish training (deg.pipeline.run or make figures) first")
        done[stage] = _read_json(marker, f"stage {stage!r} marker").get("key")
        config = _read_json(run_dir / stage / "config.json", f"stage {stage!r} configuration")
        if config.get("key") != done[stage]:
            raise RunFolderError(f"{run_dir}: stage {stage!r}: DONE (key {done[stage]}) does not match its "
                                 f"config.json (key {config.get('key')}); re-run the pipeline")
        up = UPSTREAM.get(stage)
        if up is not None and config.get("config", {}).get(up) != done[up]:
            raise RunFolderError(f"{run_dir}: stage {stage!r} was computed from another version of stage "
                                 f"{up!r} (the run was changed and not finished); re-run the pipeline")
    run = _read_json(run_dir / "run.json", "run record")
    thresholds = _read_json(run_dir / "thresholds.json", "thresholds file (predictions stage)")
    norm = _read_json(run_dir / "flow" / "norm.json", "normalisation file (flow stage)")
    for key in ("preset_config", "hparams", "profile", "image_size"):
        if key not in run:
            raise RunFolderError(f"{run_dir / 'run.json'}: lacks {key!r}")
    for key in ("behaviours", "sequence", "min_bout"):
        if key not in thresholds:
            raise RunFolderError(f"{run_dir / 'thresholds.json'}: lacks {key!r}")
    return {"run": run, "thresholds": thresholds, "norm": norm}


def _check_not_training(run_dir: Path) -> None:
    """RunFolderError when deg.pipeline holds the run's lock (its stages may be half-replaced)."""
    lock = run_dir / ".lock"
    if not lock.exists():
        return
    try:
        fh = open(lock, "r")
    except OSError:
        return                               # unreadable lock file: cannot tell, go on
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(f"{run_dir}: another process is training this run right now; "
                                 "predict when it has finished") from None
        fcntl.flock(fh, fcntl.LOCK_UN)


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    """JSON turned tuples into lists; dataclass fields that hold tuples get them back."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def run_context(preset, hparams: dict[str, Any], profile, behaviours: Sequence[str], image_size,
                norm: dict[str, list[float]] | None, device: str | torch.device | None = None):
    """A :class:`deg.train.common.RunContext` for inference (no dataset, split or labels needed).

    The model builders of :mod:`deg.train` read the preset, hparams, number of behaviours and
    device from it; ``ctx.standardizer`` reads ``norm``. Training-only fields stay empty.
    """
    from deg.data.splits import Split
    from deg.train import common

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dataset = types.SimpleNamespace(id="inference", behaviours=list(behaviours), flips={})
    return common.RunContext(dataset=dataset, preset=preset, profile=profile, hparams=dict(hparams),
                             split=Split(train=[], val=[]), labels={}, videos=[],
                             image_size=(int(image_size[0]), int(image_size[1])), device=dev,
                             precision=common.choose_precision(dev, profile.bf16), seed=0, progress=False,
                             norm=norm)


def check_behaviours(run_behaviours: Sequence[str], behaviours: Sequence[str], source: str,
                     run_dir: str | Path | None = None) -> None:
    """BehaviourMismatchError unless ``behaviours`` are the run's (order and background free)."""
    from deg.data.labels import BACKGROUND

    want = [b for b in behaviours if b != BACKGROUND]
    have = [b for b in run_behaviours if b != BACKGROUND]
    if sorted(want) != sorted(have):
        problems = []
        if set(want) - set(have):
            problems.append(f"not in the run: {sorted(set(want) - set(have))}")
        if set(have) - set(want):
            problems.append(f"only in the run: {sorted(set(have) - set(want))}")
        where = f" (run {run_dir})" if run_dir else ""
        raise BehaviourMismatchError(f"{source}: behaviours {want} differ from the run's {have}{where}: "
                                     + "; ".join(problems or ["duplicated names"]))


# --------------------------------------------------------------------------------------
# Decoding in the background
# --------------------------------------------------------------------------------------
class _BackgroundFrames:
    """Iterate over the chunks of :func:`deg.data.video.iter_frames`, decoded by a thread.

    The queue holds at most ``QUEUE_CHUNKS`` chunks; an exception in the thread (VideoError) is
    re-raised in the consumer. ``close()`` stops the thread early (e.g. when the consumer fails).
    """

    _END = object()

    def __init__(self, path: Path, size: tuple[int, int], chunk: int):
        from deg.data.video import iter_frames

        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._stop = threading.Event()
        self.n_chunks = 0
        self.max_chunk = 0

        def work() -> None:
            try:
                for frames in iter_frames(path, size=size, chunk=chunk):
                    if not self._put(frames):
                        return
                self._put(self._END)
            except BaseException as exc:    # handed to the consumer, which raises it
                self._put(exc)

        self._thread = threading.Thread(target=work, name=f"decode {Path(path).name}", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            self.n_chunks += 1
            self.max_chunk = max(self.max_chunk, len(item))
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------------------
# The sequence model on overlapping windows
# --------------------------------------------------------------------------------------
class _StreamingSequence:
    """Feed features (t, D) in frame order; get sigmoid probabilities (T, K) of the whole video.

    Window w covers output frames [w*chunk, (w+1)*chunk) and reads ``margin`` more frames on each
    side; it runs as soon as those features have arrived, and features no later window needs are
    dropped. A video of at most ``chunk`` frames is one window: exactly the pipeline's
    :func:`deg.train.sequence.predict` call.
    """

    def __init__(self, model, ctx, n_frames: int, n_classes: int, chunk: int, margin: int):
        self.model, self.ctx, self.T = model, ctx, n_frames
        self.chunk, self.margin = chunk, margin
        self.probs = np.empty((n_frames, n_classes), dtype=np.float32)
        self._parts: list[np.ndarray] = []
        self._start = 0            # frame index of the first kept feature row
        self._received = 0
        self._emitted = 0
        self.max_kept = 0          # most feature rows held at once (tests: bounded memory)

    def push(self, x: np.ndarray) -> None:
        self._parts.append(x)
        self._received += len(x)
        self.max_kept = max(self.max_kept, self._received - self._start)
        while self._emitted < self.T and self._received >= min(self.T, self._emitted + self.chunk + self.margin):
            self._emit()

    def _emit(self) -> None:
        from deg.train.sequence import predict

        kept = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        e = self._emitted
        lo, hi = max(0, e - self.margin), min(self.T, e + self.chunk + self.margin)
        n = min(self.chunk, self.T - e)
        p = predict(self.model, kept[lo - self._start:hi - self._start], self.ctx.device, self.ctx.precision)
        self.probs[e:e + n] = p[e - lo:e - lo + n]
        self._emitted = e + n
        drop = max(0, self._emitted - self.margin) - self._start
        self._parts = [kept[drop:]]
        self._start += drop

    def finish(self) -> np.ndarray:
        if self._emitted != self.T:
            raise RuntimeError(f"sequence model: {self._emitted} of {self.T} frames predicted")
        return self.probs


# --------------------------------------------------------------------------------------
# The predictor
# --------------------------------------------------------------------------------------
@dataclass
class Predictor:
    """Models and settings of one run; :meth:`probabilities` and :meth:`predict` per video.

    Build it with :meth:`from_run` (a finished run folder) or directly from models (benchmarks).
    ``flow_model`` and ``feature_model`` are in eval mode on ``ctx.device``; ``sequence_model``
    maps (N, D, T) features to (N, K, T) logits.
    """

    ctx: Any                               # deg.train.common.RunContext (see run_context)
    flow_model: torch.nn.Module
    feature_model: torch.nn.Module
    sequence_model: torch.nn.Module
    behaviours: list[str]
    thresholds: np.ndarray | None = None   # (K,) sequence-model thresholds; None: probabilities only
    min_bout: np.ndarray | None = None     # (K,) minimum bout lengths
    batch: int = 64                        # clips per forward pass
    seq_chunk: int = SEQ_CHUNK             # frames per sequence-model window
    seq_margin: int | None = None          # context frames each side (None: deg.train.sequence.MARGIN)
    run_dir: Path | None = None
    last_stats: dict[str, int] | None = None
    backend: str = "eager"                 # deg.backends.CHOICES; resolved on the first clips seen
    cache_dir: Path | None = None          # exported/quantised models (None: <run_dir>/backends)
    backend_report: list[dict[str, Any]] | None = None   # deg.backends.select's rows (auto)
    _backend: Any = None                   # the resolved deg.backends.Backend
    _clips: torch.Tensor | None = None     # clip buffer (B, 3, n, H, W) of the largest batch yet: a fresh one
                                           # costs page faults on every batch (clips_from_uint8)

    @property
    def backend_name(self) -> str | None:
        """The backend that computes the features (None until the first clips were seen)."""
        return None if self._backend is None else self._backend.name

    def _resolve_backend(self, clips: torch.Tensor) -> None:
        """Build ``self.backend`` (the first clips of the video calibrate int8 and check agreement).

        A backend that cannot be built falls back to eager with a one-line logged reason.
        """
        from deg import backends, paths
        from deg.train.sequence import predict

        ctx = self.ctx
        cache = Path(self.cache_dir) if self.cache_dir is not None else (
            self.run_dir / "backends" if self.run_dir is not None else paths.results_dir() / "_cache" / "backends")
        precision = ctx.precision if ctx.precision.dtype is not None else None
        if self.backend not in backends.CHOICES:
            raise InferenceError(f"unknown backend {self.backend!r}; choose from {', '.join(backends.CHOICES)}")
        if self.backend != "eager" and ctx.device.type != "cpu":
            # the CPU runtimes are for CPUs; on a GPU, eager (CUDA) is the fast path
            (backends.log.info if self.backend == "auto" else backends.log.warning)(
                "backend %s is for CPUs; using eager on %s", self.backend, ctx.device)
            self._backend = backends.eager(self.flow_model, self.feature_model, precision)
            return
        check = clips[:backends.CALIBRATION_CLIPS].contiguous()
        if self.backend == "auto":
            def probs(x: np.ndarray) -> np.ndarray:
                return predict(self.sequence_model, x, ctx.device, ctx.precision)

            self._backend, self.backend_report = backends.select(
                self.flow_model, self.feature_model, check.shape[1:], cache, check, probs, precision)
            backends.log.info("backend auto: %s", self._backend.name)
            return
        try:
            self._backend = backends.build(self.backend, self.flow_model, self.feature_model, check.shape[1:],
                                           cache, precision, calibration=check.numpy())
        except backends.BackendError as exc:
            backends.log.warning("backend %s unavailable, using eager: %s", self.backend, str(exc).splitlines()[0])
            self._backend = backends.eager(self.flow_model, self.feature_model, precision)

    def __post_init__(self) -> None:
        # Build the standardiser now, outside inference mode: its buffers must stay ordinary
        # tensors for a context that is also used for training (deg.bench).
        _ = self.ctx.standardizer

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | torch.device | None = None,
                 batch: int | None = None, backend: str = "eager") -> "Predictor":
        """Load the best weights of every stage of a finished run (see :func:`check_run`)."""
        from deg import presets
        from deg.train import feature, flow, sequence

        run_dir = Path(run_dir)
        info = check_run(run_dir)
        run, thr = info["run"], info["thresholds"]
        try:
            preset = presets.Preset(**_tuples(run["preset_config"]))
            profile = presets.Profile(**_tuples(run["profile"]))
        except TypeError as exc:           # a run.json of another version of the package
            raise RunFolderError(f"{run_dir / 'run.json'}: unreadable preset or profile ({exc})") from exc
        behaviours = list(thr["behaviours"])
        ctx = run_context(preset, run["hparams"], profile, behaviours, run["image_size"], info["norm"], device)
        flow_model = flow.load(ctx, run_dir / "flow")
        feature_model = feature.load(ctx, run_dir / "feature")
        seq_model = sequence.load(ctx, run_dir / "sequence", 2 * preset.feature_dim)
        thresholds, min_bout = np.asarray(thr["sequence"], dtype=np.float64), np.asarray(thr["min_bout"])
        K = len(behaviours)
        if thresholds.shape != (K,) or min_bout.shape != (K,):
            raise RunFolderError(f"{run_dir / 'thresholds.json'}: {len(thresholds)} thresholds and "
                                 f"{len(min_bout)} bout lengths for {K} behaviours")
        return cls(ctx=ctx, flow_model=flow_model, feature_model=feature_model, sequence_model=seq_model,
                   behaviours=behaviours, thresholds=thresholds, min_bout=min_bout,
                   batch=int(batch or profile.infer_batch), run_dir=run_dir, backend=backend)

    # ------------------------------------------------------------------ behaviours
    def check_behaviours(self, behaviours: Sequence[str], source: str) -> None:
        """BehaviourMismatchError unless ``behaviours`` are this run's (see :func:`check_behaviours`)."""
        check_behaviours(self.behaviours, behaviours, source, self.run_dir)

    def output_paths(self, video_path: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
        video_path = Path(video_path)
        out = Path(out_dir) if out_dir is not None else video_path.parent
        return out / f"{video_path.stem}{PRED_SUFFIX}", out / f"{video_path.stem}{PROB_SUFFIX}"

    def _check_existing_csv(self, csv: Path) -> None:
        """An output CSV already there must have this run's columns (it is then overwritten)."""
        if not csv.exists():
            return
        with open(csv, encoding="utf-8-sig", errors="replace") as fh:
            header = [h.strip().strip('"') for h in fh.readline().rstrip("\r\n").split(",")]
        if header and (header[0] == "" or header[0].startswith("Unnamed")):
            header = header[1:]
        if header != self.behaviours:
            raise BehaviourMismatchError(
                f"{csv}: already exists with columns {header}, but this run predicts {self.behaviours}; "
                "it is left untouched (move it away or choose another --out folder)")

    # ------------------------------------------------------------------ compute
    @torch.inference_mode()
    def probabilities(self, video_path: str | Path, progress: bool = False) -> np.ndarray:
        """Sigmoid probabilities (T, K) float32 of every frame of ``video_path`` (streamed).

        ``self.last_stats`` then holds the decoded chunks, the largest frame buffer and the
        largest feature window (frames), for checking that memory does not grow with T.
        """
        from tqdm.auto import tqdm

        from deg.data.video import VideoError, video_info
        from deg.train.clips import clip_indices, to_device
        from deg.train.sequence import MARGIN

        path = Path(video_path)
        T = video_info(path).n_frames          # VideoError for missing, unreadable, truncated files
        ctx = self.ctx
        n = ctx.preset.n_flow_frames
        half, after = n // 2, n - 1 - n // 2
        batch = max(1, int(self.batch))
        margin = MARGIN if self.seq_margin is None else int(self.seq_margin)
        seq = _StreamingSequence(self.sequence_model, ctx, T, len(self.behaviours), int(self.seq_chunk), margin)
        standardize = ctx.standardizer
        H, W = ctx.image_size
        buf = np.empty((0, H, W, 3), dtype=np.uint8)
        buf_start = 0                          # frame index of buf[0]
        next_center = 0
        max_buf = 0
        frames = _BackgroundFrames(path, ctx.image_size, chunk=batch)
        try:
            with tqdm(total=T, desc=path.name, disable=not progress, leave=False, dynamic_ncols=True,
                      unit="frame") as bar:
                for chunk in frames:
                    buf = np.concatenate([buf, chunk]) if len(buf) else chunk
                    have = buf_start + len(buf)          # frames decoded so far
                    max_buf = max(max_buf, len(buf))
                    while next_center < T:
                        stop = min(next_center + batch, T)
                        if min(stop - 1 + after, T - 1) >= have:
                            break                       # the last clip's frames are not all here yet
                        centers = np.arange(next_center, stop)
                        index = clip_indices(centers, n, T) - buf_start             # (B, n) into buf
                        lo, hi = int(index.min()), int(index.max()) + 1
                        clip = standardize.clips_from_uint8(to_device(buf[lo:hi], ctx.device),  # (B, 3, n, H, W)
                                                            torch.from_numpy(index - lo), out=self._clips)
                        if self._clips is None or len(clip) > len(self._clips):
                            self._clips = clip          # kept for later batches and videos
                        if self._backend is None:
                            self._resolve_backend(clip)
                        seq.push(self._backend.features(clip))
                        bar.update(len(centers))
                        next_center = stop
                        drop = max(0, next_center - half) - buf_start   # frames no later clip reads
                        buf, buf_start = buf[drop:], buf_start + drop
        finally:
            frames.close()
        if next_center != T:
            raise VideoError(f"{path}: decoded {buf_start + len(buf)} frames, the container holds {T}")
        self.last_stats = {"n_frames": T, "n_chunks": frames.n_chunks, "max_chunk": frames.max_chunk,
                           "max_buffered_frames": max_buf, "max_feature_rows": seq.max_kept}
        return seq.finish()

    def predict(self, video_path: str | Path, out_dir: str | Path | None = None,
                progress: bool = True) -> dict[str, Any]:
        """Write ``<stem>_predictions.csv`` and ``<stem>_probabilities.npz``; see :func:`predict_video`."""
        from deg.data.labels import write_deg_labels
        from deg.postprocess import postprocess

        if self.thresholds is None or self.min_bout is None:
            raise InferenceError("this predictor has no thresholds: use probabilities() or Predictor.from_run")
        t0 = time.perf_counter()
        csv, npz = self.output_paths(video_path, out_dir)
        self._check_existing_csv(csv)
        probs = self.probabilities(video_path, progress=progress)
        preds = postprocess(probs, self.thresholds, self.min_bout)
        io.write_npz(npz, probs=probs, thresholds=self.thresholds, min_bout=self.min_bout,
                     behaviours=np.asarray(self.behaviours), video=np.asarray(str(video_path)),
                     run=np.asarray(str(self.run_dir) if self.run_dir else ""))
        write_deg_labels(csv, preds, self.behaviours)
        seconds = time.perf_counter() - t0
        return {"paths": {"predictions": csv, "probabilities": npz}, "n_frames": int(len(probs)),
                "seconds": seconds, "frames_per_s": len(probs) / seconds if seconds > 0 else float("inf")}


def predict_video(run_dir: str | Path, video_path: str | Path, out_dir: str | Path | None = None,
                  batch: int | None = None, device: str | None = None, progress: bool = True,
                  backend: str = "eager") -> dict[str, Any]:
    """Predict one video with a finished run; returns dict(paths, n_frames, seconds, frames_per_s).

    ``paths``: {"predictions": <out_dir>/<stem>_predictions.csv (DeepEthogram layout, background
    first, one 0/1 column per behaviour), "probabilities": <out_dir>/<stem>_probabilities.npz
    (probs (T, K) float32, thresholds (K,), min_bout (K,), behaviours (K,), video, run)}. ``out_dir``
    defaults to the video's folder; ``batch`` to the run profile's ``infer_batch``; ``device``
    to CUDA when available; ``backend`` to eager PyTorch (see :mod:`deg.backends`). ``seconds``
    covers decoding, the models and writing.
    """
    predictor = Predictor.from_run(run_dir, device=device, batch=batch, backend=backend)
    return predictor.predict(video_path, out_dir=out_dir, progress=progress)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def _expand(videos: Sequence[str]) -> list[Path]:
    """Video files; a folder stands for the video files directly in it (sorted)."""
    from deg.data.labels import VIDEO_SUFFIXES

    out: list[Path] = []
    for v in videos:
        p = Path(v)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise InferenceError(f"{p}: folder holds no video files ({', '.join(VIDEO_SUFFIXES)})")
            out.extend(found)
        else:
            out.append(p)
    return out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m deg.infer", description=__doc__.split("\n\n")[0])
    ap.add_argument("videos", nargs="+", help="video files (or folders of video files)")
    ap.add_argument("--run", required=True, help="finished run folder results/<profile>/<dataset>/<preset>/<split>")
    ap.add_argument("--out", default=None, help="output folder (default: beside each video)")
    ap.add_argument("--batch", type=int, default=None, help="clips per forward pass (default: the run's infer_batch)")
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    ap.add_argument("--behaviours", default=None,
                    help="comma-separated behaviours you expect the run to predict (checked before anything runs)")
    ap.add_argument("--labels", default=None, help="a DeepEthogram label CSV whose behaviours the run must have")
    ap.add_argument("--backend", default="auto", choices=("eager", "onnxruntime", "onnxruntime-int8", "auto"),
                    help="feature-path backend (deg.backends): auto (default: the fastest installed one whose "
                         "probabilities agree with eager on the video's first clips; eager on a GPU), eager "
                         "PyTorch (the reference), ONNX Runtime float32 or int8")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 0 when every video was predicted, 1 when some failed, 2 on a usage error
    (e.g. an unknown ``--device``), 3 when the run folder or a label file is refused (:mod:`deg.cli`)."""
    args = _parser().parse_args(argv)
    try:
        cli.check_device(args.device)
    except cli.UsageError as exc:
        print(f"deg.infer: error: {exc}", file=sys.stderr)
        return cli.EXIT_USAGE
    try:
        videos = _expand(args.videos)
        # Everything that can be checked without the models is checked before loading them.
        run_behaviours = check_run(args.run)["thresholds"]["behaviours"]
        if args.behaviours is not None:
            check_behaviours(run_behaviours, [b.strip() for b in args.behaviours.split(",") if b.strip()],
                             "--behaviours", args.run)
        if args.labels is not None:
            from deg.data.labels import read_deg_labels

            check_behaviours(run_behaviours, read_deg_labels(args.labels)[1], str(args.labels), args.run)
        outputs = [Path(args.out) / f"{v.stem}{PRED_SUFFIX}" if args.out else v.parent / f"{v.stem}{PRED_SUFFIX}"
                   for v in videos]
        dupes = sorted({str(o) for o in outputs if outputs.count(o) > 1})
        if dupes:
            raise InferenceError(f"several videos would write the same output file(s) {dupes}; "
                                 "give them distinct names or separate --out folders")
        predictor = Predictor.from_run(args.run, device=args.device, batch=args.batch, backend=args.backend)
    except (ValueError, OSError) as exc:
        print(f"deg.infer: error: {exc}", file=sys.stderr)
        return cli.exit_code(exc) or cli.EXIT_INPUT
    failures: list[tuple[Path, str]] = []
    for video in videos:
        try:
            res = predictor.predict(video, out_dir=args.out, progress=not args.quiet)
        except (ValueError, OSError) as exc:   # VideoError, BehaviourMismatchError, unwritable folder
            why = str(exc) if str(video) in str(exc) else f"{video}: {exc}"
            failures.append((video, f"{type(exc).__name__}: {why}"))
            print(f"deg.infer: FAILED: {why}", file=sys.stderr)
            continue
        print(f"{video}: {res['n_frames']} frames in {res['seconds']:.1f} s ({res['frames_per_s']:.1f} frames/s, "
              f"backend {predictor.backend_name}) -> {res['paths']['predictions']}")
    if failures:
        print(f"deg.infer: {len(failures)} of {len(videos)} video(s) failed:", file=sys.stderr)
        for _, why in failures:
            print(f"  {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
