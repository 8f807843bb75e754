"""The one training loop every stage uses: Adam, reduce-on-plateau, stopping rule, checkpoints.

Paper (Methods: Training protocol, Stopping criterion): Adam with an initial learning rate of
1e-4; "when validation performance saturated for 5000 training steps, we decreased the learning
rate by a factor of ... 0.1"; training stops when the learning rate falls below 5e-7 or at the
step limit; "we save both the final model weights and the best model weights; for inference, we
load the best weights". The numbers come from ``HPARAMS`` and the run profile.

Resumable: every validation (and at least every ``checkpoint_every_s`` seconds) writes
``last.pt`` with the model, optimiser, scheduler state, every random generator the stage uses and
the log so far, atomically. A run killed at any moment (``kill -9`` included) restarts from the
last checkpoint; with the random states restored, the resumed run continues exactly as the
uninterrupted one would have (on the CPU). ``best.pt`` holds the weights with the best validation
metric so far. ``log.csv`` (step, lr, train_loss, val_metric) is rewritten from the checkpoint's
rows, so it never holds a row the checkpoint does not know.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from deg import io

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "lr", "train_loss", "val_metric", "wall_s"]


@dataclass(frozen=True)
class LoopConfig:
    """How long and how a stage trains. ``mode``: "min" (a loss) or "max" (an F1) for the metric."""

    max_steps: int
    val_every: int
    patience_steps: int
    lr: float
    lr_factor: float
    lr_min: float
    mode: str = "max"
    checkpoint_every_s: float = 600.0

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"LoopConfig.mode must be 'min' or 'max', got {self.mode!r}")
        if self.max_steps < 1 or self.val_every < 1:
            raise ValueError(f"max_steps and val_every must be >= 1, got {self.max_steps}, {self.val_every}")


@dataclass
class Precision:
    """Autocast settings: ``dtype`` None = float32; fp16 on CUDA also uses a gradient scaler."""

    device_type: str = "cpu"
    dtype: torch.dtype | None = None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def make_scaler(self):
        if self.device_type == "cuda" and self.dtype == torch.float16:
            return torch.amp.GradScaler("cuda")
        return None


@dataclass
class FitResult:
    steps: int
    best_metric: float | None
    best_step: int | None
    stopped: str                       # "lr_min" or "max_steps"
    resumed_from: int | None = None    # step of the checkpoint this call started from
    wall_s: float = 0.0                # training time over all (resumed) attempts
    log: list[dict[str, float]] = field(default_factory=list)


def _better(metric: float, best: float | None, mode: str) -> bool:
    if metric is None or not math.isfinite(metric):
        return False
    if best is None:
        return True
    return metric < best if mode == "min" else metric > best


def _get_states(generators: dict[str, Any]) -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    for name, gen in generators.items():
        states[name] = gen.bit_generator.state if isinstance(gen, np.random.Generator) else gen.get_state()
    return states


def _set_states(generators: dict[str, Any], states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    for name, gen in generators.items():
        if name not in states:
            continue
        if isinstance(gen, np.random.Generator):
            gen.bit_generator.state = states[name]
        else:
            gen.set_state(states[name])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with io.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a corrupt file is an error worth naming, not a silent restart
        raise ValueError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc


def load_best_weights(stage_dir: Path, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """The model ``build()`` makes, with the weights of ``stage_dir/best.pt``, in eval mode.

    The model is built on the meta device (no random initialisation of weights that are about
    to be replaced: seconds for the 3D ResNets) and takes the checkpoint's tensors as its own.
    """
    ckpt = load_checkpoint(Path(stage_dir) / "best.pt")
    with torch.device("meta"):
        model = build()
    model.load_state_dict(ckpt["model"], assign=True)
    return model.eval()


def fit(stage_dir: Path, model: torch.nn.Module, train_step: Callable[[int], torch.Tensor],
        validate: Callable[[], float], cfg: LoopConfig, *, key: str = "",
        generators: dict[str, Any] | None = None, parameters=None, precision: Precision | None = None,
        desc: str = "train", progress: bool = True) -> FitResult:
    """Train ``model`` in ``stage_dir`` until the stopping rule; resume from ``last.pt`` if present.

    ``train_step(step)`` returns the scalar loss of one batch (it runs under autocast; the loop
    does backward and the optimiser step). ``validate()`` returns the validation metric (model in
    eval mode, no gradients). ``generators``: named ``np.random.Generator`` / ``torch.Generator``
    objects whose states are checkpointed with the global torch RNG. ``key`` (the stage's
    configuration key) is stored in checkpoints; a ``last.pt`` with another key is ignored.
    """
    from tqdm.auto import tqdm

    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    generators = generators or {}
    precision = precision or Precision()
    params = [p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scaler = precision.make_scaler()

    state = {"step": 0, "lr": cfg.lr, "best": None, "best_step": None, "last_improve": 0,
             "log": [], "wall_s": 0.0, "finished": None}
    resumed_from = None
    last_path, best_path = stage_dir / "last.pt", stage_dir / "best.pt"
    if last_path.exists():
        ckpt = load_checkpoint(last_path)
        if ckpt.get("key") == key:
            model.load_state_dict(ckpt["model"])
            state.update(ckpt["state"])
            if state["finished"] is None:
                optimizer.load_state_dict(ckpt["optimizer"])
                if scaler is not None and ckpt.get("scaler"):
                    scaler.load_state_dict(ckpt["scaler"])
                _set_states(generators, ckpt["rng"])
            resumed_from = state["step"]
            log.info("%s: resuming from step %d (%s)", desc, resumed_from, last_path)
            if progress:
                print(f"{desc}: resuming from step {resumed_from} of {cfg.max_steps} ({last_path})")
        else:
            log.info("%s: ignoring %s (configuration key %s != %s)", desc, last_path, ckpt.get("key"), key)
    for group in optimizer.param_groups:
        group["lr"] = state["lr"]

    def checkpoint() -> None:
        payload = {"key": key, "model": model.state_dict(), "state": dict(state, log=list(state["log"]))}
        if state["finished"] is None:
            # Only an unfinished stage needs what resuming takes; a finished last.pt keeps the
            # final weights alone (Adam's moments would triple its size).
            payload.update(optimizer=optimizer.state_dict(), rng=_get_states(generators),
                           scaler=scaler.state_dict() if scaler is not None else None)
        save_checkpoint(last_path, payload)
        io.write_csv(stage_dir / "log.csv", pd.DataFrame(state["log"], columns=LOG_COLUMNS))

    def save_best() -> None:
        save_checkpoint(best_path, {"key": key, "model": model.state_dict(), "step": state["step"],
                                    "metric": state["best"]})

    if resumed_from is not None and state["best_step"] == state["step"] and state["step"] > 0:
        best_step = load_checkpoint(best_path).get("step") if best_path.exists() else None
        if best_step != state["best_step"]:
            save_best()     # killed between writing last.pt and best.pt

    t_start = time.perf_counter()
    wall_before = state["wall_s"]
    last_save = time.perf_counter()
    losses: list[float] = []
    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc=desc, disable=not progress, leave=False,
               dynamic_ncols=True)
    model.train()
    while state["finished"] is None:
        if state["step"] >= cfg.max_steps:      # e.g. the step limit was lowered before a resume
            state["finished"] = "max_steps"
            checkpoint()
            break
        state["step"] += 1
        step = state["step"]
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            loss = train_step(step)
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(f"{desc}: non-finite training loss {loss.item()} at step {step} "
                                     f"(stage folder {stage_dir})")
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        losses.append(float(loss.detach()))
        bar.update(1)

        if step % cfg.val_every == 0 or step == cfg.max_steps:
            model.eval()
            with torch.no_grad(), precision.autocast():
                metric = float(validate())
            model.train()
            improved = _better(metric, state["best"], cfg.mode)
            if improved:
                state["best"], state["best_step"], state["last_improve"] = metric, step, step
            elif step - state["last_improve"] >= cfg.patience_steps:
                # Saturated for patience_steps: reduce the learning rate and restart the count.
                state["lr"] *= cfg.lr_factor
                state["last_improve"] = step
                for group in optimizer.param_groups:
                    group["lr"] = state["lr"]
            state["wall_s"] = wall_before + time.perf_counter() - t_start
            state["log"].append({"step": step, "lr": state["lr"],
                                 "train_loss": float(np.mean(losses)) if losses else float("nan"),
                                 "val_metric": metric, "wall_s": round(state["wall_s"], 3)})
            losses = []
            bar.set_postfix(loss=f"{state['log'][-1]['train_loss']:.4g}", val=f"{metric:.4g}",
                            lr=f"{state['lr']:.1e}")
            if state["lr"] < cfg.lr_min:
                state["finished"] = "lr_min"
            elif step >= cfg.max_steps:
                state["finished"] = "max_steps"
            # last.pt first, then best.pt: a kill between the two leaves a last.pt whose weights
            # are the best ones (best_step == step), from which best.pt is rewritten on resume.
            checkpoint()
            if improved:
                save_best()
            last_save = time.perf_counter()
        elif time.perf_counter() - last_save > cfg.checkpoint_every_s:
            state["wall_s"] = wall_before + time.perf_counter() - t_start
            checkpoint()
            last_save = time.perf_counter()
    bar.close()
    state["wall_s"] = wall_before + time.perf_counter() - t_start
    if not best_path.exists():
        # No finite validation metric ever (e.g. a behaviour-free validation set): best = last.
        save_best()
    return FitResult(steps=state["step"], best_metric=state["best"], best_step=state["best_step"],
                     stopped=state["finished"], resumed_from=resumed_from, wall_s=state["wall_s"],
                     log=list(state["log"]))
