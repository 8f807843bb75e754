"""The one training loop every stage uses: Adam, reduce-on-plateau, stopping rule, checkpoints.

Paper (Methods: Training protocol, Stopping criterion): Adam with an initial learning rate of
1e-4; "when validation performance saturated for 5000 training steps, we decreased the learning
rate by a factor of ... 0.1"; training stops when the learning rate falls below 5e-7 or at the
step limit; "we save both the final model weights and the best model weights; for inference, we
load the best weights". The numbers come from ``HPARAMS`` and the run profile.

Resumable: the first validation, then validations at least ``checkpoint_min_interval_s`` apart,
the last one, and any ``checkpoint_every_s`` seconds without a validation write ``last.pt`` with
the model, optimiser, scheduler state, every random generator the stage uses and the log so far,
atomically. (A 127M-parameter model with Adam's moments is a 1.5 GB file: writing it at every
validation of a short run would cost more than the training.) A run killed at any moment
(``kill -9`` included) restarts from the last checkpoint; with the random states restored, the
resumed run continues exactly as the uninterrupted one would have (on the CPU). ``best.pt`` holds
the weights with the best validation metric; they are kept in memory and written just before
``last.pt``, so ``best.pt`` is never older than the best that ``last.pt`` records. ``log.csv``
(step, lr, train_loss, val_metric, penalty, wall_s) and ``steps.csv`` (step, lr, train_loss of
every step) are rewritten from the checkpoint's rows, so they never hold a row the checkpoint
does not know.

The loop runs on Lightning Fabric (:mod:`deg.train.distributed`): in one process the same torch
calls as a plain loop (bit-identical, tested), under DDP one slice of each global batch per process.
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

LOG_COLUMNS = ["step", "lr", "train_loss", "val_metric", "penalty", "wall_s"]
STEP_COLUMNS = ["step", "lr", "train_loss"]


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
    checkpoint_min_interval_s: float = 60.0     # between validation checkpoints (not the first/last)
    checkpoint_every_s: float = 600.0           # longest stretch without one, validations or not

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


class WeightPenalty:
    """L2-SP (Li et al. 2018) or plain L2, applied through the optimiser instead of the loss.

    The gradient of ``alpha/2 ||w - w0||^2 + beta/2 ||w'||^2`` is ``alpha w - alpha w0`` for the
    weights with a reference w0 and ``beta w'`` for the new ones. Adam's (coupled) ``weight_decay``
    adds ``alpha w`` / ``beta w'`` to the gradient inside the fused optimiser kernel and
    :meth:`add_gradient` adds the constant ``-alpha w0`` after each backward pass: the very
    gradients of differentiating :class:`deg.losses.L2SP`, without building that penalty's
    autograd graph over every weight each step (measured 3 s a step for DEG_m's 49M weights on
    the CPU). Biases and normalisation parameters are not penalised (``deg.losses.decayed_parameters``).

    ``reference``: {name: w0} (e.g. the pretrained weights); names in ``new_names`` or missing
    from it decay towards zero with ``beta``.
    """

    def __init__(self, model: torch.nn.Module, alpha: float, beta: float,
                 reference: dict[str, torch.Tensor] | None = None, new_names=()):
        from deg.losses import decayed_parameters

        reference = reference or {}
        new_names = set(new_names)
        decayed = decayed_parameters(model)
        self.alpha, self.beta = float(alpha), float(beta)
        self.anchored, self.new, self.other = [], [], []
        self._refs: list[torch.Tensor] = []         # w0, one per anchored weight
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            ref = reference.get(name)
            if name not in decayed:
                self.other.append(p)
            elif name in new_names or ref is None or ref.shape != p.shape:
                self.new.append(p)
            else:
                self.anchored.append(p)
                ref = ref.detach().to(p.device, torch.float32)
                self._refs.append(ref)

    def param_groups(self) -> list[dict[str, Any]]:
        groups = [{"params": self.anchored, "weight_decay": self.alpha},
                  {"params": self.new, "weight_decay": self.beta},
                  {"params": self.other, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    @torch.no_grad()
    def add_gradient(self) -> None:
        if self.alpha:
            for p, ref in zip(self.anchored, self._refs):
                if p.grad is not None:
                    p.grad.add_(ref, alpha=-self.alpha)

    @torch.no_grad()
    def value(self) -> float:
        """The penalty ``alpha/2 ||w - w0||^2 + beta/2 ||w'||^2`` at the current weights."""
        sp = sum(float(torch.sum((p.float() - r) ** 2)) for p, r in zip(self.anchored, self._refs))
        l2 = sum(float(torch.sum(p.float() ** 2)) for p in self.new)
        return self.alpha / 2 * sp + self.beta / 2 * l2


def make_optimizer(model: torch.nn.Module, lr: float, regulariser: WeightPenalty | None = None):
    """Adam over ``model``'s trainable weights (with the regulariser's weight-decay groups)."""
    groups = (regulariser.param_groups() if regulariser is not None
              else [{"params": [p for p in model.parameters() if p.requires_grad]}])
    # fused: one kernel over all tensors; measured 4x faster than the default per-tensor loop for
    # the 49M weights of DEG_m's feature extractor on the CPU
    return torch.optim.Adam(groups, lr=lr, fused=True)


def optimisation_step(train_step: Callable[[int], torch.Tensor], step: int, optimizer, precision: Precision,
                      scaler=None, regulariser: WeightPenalty | None = None) -> float:
    """One training step as :func:`fit` takes it; returns the (data) loss. Benchmarks reuse it."""
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        loss = train_step(step)
    if not torch.isfinite(loss.detach()):
        raise FloatingPointError(f"non-finite training loss {loss.item()} at step {step}")
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)          # the penalty's gradient is added unscaled
        if regulariser is not None:
            regulariser.add_gradient()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if regulariser is not None:
            regulariser.add_gradient()
        optimizer.step()
    return float(loss.detach())


def fabric_step(fabric, train_step: Callable[[int], torch.Tensor], step: int, optimizer,
                regulariser: WeightPenalty | None = None) -> float:
    """:func:`optimisation_step` through Lightning Fabric; returns the loss averaged over processes.

    ``optimizer`` is Fabric's wrapper (``fabric.setup_optimizers``). In one process every call
    is the plain one (``loss.backward()``, ``optimizer.step()``): bit-identical to
    :func:`optimisation_step`. Under DDP the backward pass averages the gradients over
    processes before the penalty's constant gradient is added (the same on every process).
    """
    from deg.train.distributed import mean_over_processes

    optimizer.zero_grad(set_to_none=True)
    with fabric.autocast():
        loss = train_step(step)
    # the mean over processes: what the log shows, and a NaN on one process stops them all together
    reported = mean_over_processes(fabric, loss.detach())
    if not torch.isfinite(reported):
        raise FloatingPointError(f"non-finite training loss {reported.item()} at step {step}")
    fabric.backward(loss)
    if regulariser is not None:
        scaler = getattr(fabric.strategy.precision, "scaler", None)   # 16-mixed only
        if scaler is not None:
            scaler.unscale_(optimizer.optimizer)    # the penalty's gradient is added unscaled
        regulariser.add_gradient()
    optimizer.step()
    return float(reported)


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
        generators: dict[str, Any] | None = None, regulariser: "WeightPenalty | None" = None,
        precision: Precision | None = None, fabric=None, stage: str = "", desc: str = "train",
        progress: bool = True) -> FitResult:
    """Train ``model`` in ``stage_dir`` until the stopping rule; resume from ``last.pt`` if present.

    ``train_step(step)`` returns the scalar loss of one batch (it runs under autocast; the loop
    does backward and the optimiser step). ``validate()`` returns the validation metric (model in
    eval mode, no gradients). ``generators``: named ``np.random.Generator`` / ``torch.Generator``
    objects whose states are checkpointed with the global torch RNG. ``key`` (the stage's
    configuration key) is stored in checkpoints; a ``last.pt`` with another key is ignored.
    ``regulariser``: an L2 / L2-SP penalty applied through the optimiser (:class:`WeightPenalty`);
    ``train_loss`` in the log is the data loss, ``penalty`` the regulariser's value.

    ``fabric``: the Lightning Fabric to train on (:mod:`deg.train.distributed`; its precision
    plugin replaces ``precision``); None = one process on the model's device with ``precision``. Under DDP ``model`` must be the module
    ``fabric.setup_module`` returned (the one ``train_step`` calls, so gradients are averaged)
    and ``train_step`` trains on this process's slice of the global batch
    (:func:`deg.train.distributed.shard`); every process must call ``fit`` alike. After every
    validation the Fabric's callbacks get ``on_validation(stage=stage, step=, metric=)``.
    """
    from lightning_fabric.wrappers import is_wrapped
    from tqdm.auto import tqdm

    from deg.train import distributed

    stage_dir = Path(stage_dir)
    generators = generators or {}
    if fabric is None:
        device = next(model.parameters()).device
        precision = precision or Precision(device.type)
        fabric = distributed.make_fabric(device, precision)
    if not is_wrapped(model):
        if fabric.world_size > 1:
            raise ValueError(f"{desc}: under DDP, pass the module fabric.setup_module() returned (the one "
                             "train_step calls), or gradients are never averaged")
        model = fabric.setup_module(model)
    net, model = model, model.module        # the wrapper trains; the plain module holds the weights
    rank0 = fabric.is_global_zero
    if rank0:
        stage_dir.mkdir(parents=True, exist_ok=True)
    optimizer = fabric.setup_optimizers(make_optimizer(model, cfg.lr, regulariser))
    distributed.reseed_dropout(fabric)

    state = {"step": 0, "lr": cfg.lr, "best": None, "best_step": None, "last_improve": 0,
             "log": [], "steps": [], "wall_s": 0.0, "finished": None, "losses": []}
    resumed_from = None
    last_path, best_path = stage_dir / "last.pt", stage_dir / "best.pt"
    if last_path.exists():
        ckpt = load_checkpoint(last_path)
        if ckpt.get("key") == key:
            model.load_state_dict(ckpt["model"])
            state.update(ckpt["state"])
            if state["finished"] is None:
                optimizer.load_state_dict(ckpt["optimizer"])
                if ckpt.get("precision"):          # 16-mixed: the gradient scaler's state
                    fabric.strategy.precision.load_state_dict(ckpt["precision"])
                rng = ckpt["rng"] if isinstance(ckpt["rng"], list) else [ckpt["rng"]]
                if len(rng) != fabric.world_size:
                    log.warning("%s: %s was written by %d process(es), resumed by %d: dropout streams of "
                                "processes > 0 restart", desc, last_path, len(rng), fabric.world_size)
                _set_states(generators, rng[fabric.global_rank] if fabric.global_rank < len(rng) else rng[0])
                if fabric.global_rank >= len(rng):
                    distributed.reseed_dropout(fabric)
            resumed_from = state["step"]
            log.info("%s: resuming from step %d (%s)", desc, resumed_from, last_path)
            if progress and rank0:
                print(f"{desc}: resuming from step {resumed_from} of {cfg.max_steps} ({last_path})")
        else:
            log.info("%s: ignoring %s (configuration key %s != %s)", desc, last_path, ckpt.get("key"), key)
    for group in optimizer.param_groups:
        group["lr"] = state["lr"]

    pending_best: dict[str, Any] = {}      # best weights not yet on disk (CPU copies)

    def checkpoint() -> None:
        """Every process calls it (the random states are gathered); process 0 writes."""
        rng = distributed.gather(fabric, _get_states(generators)) if state["finished"] is None else None
        if not rank0:
            pending_best.clear()
            return
        if pending_best:                    # best.pt first: never older than what last.pt records
            save_checkpoint(best_path, dict(pending_best))
            pending_best.clear()
        payload = {"key": key, "model": model.state_dict(),
                   "state": dict(state, log=list(state["log"]), steps=list(state["steps"]),
                                 losses=list(state["losses"]))}
        if state["finished"] is None:
            # Only an unfinished stage needs what resuming takes; a finished last.pt keeps the
            # final weights alone (Adam's moments would triple its size).
            payload.update(optimizer=optimizer.state_dict(), rng=rng,
                           precision=fabric.strategy.precision.state_dict())
        save_checkpoint(last_path, payload)
        io.write_csv(stage_dir / "log.csv", pd.DataFrame(state["log"], columns=LOG_COLUMNS))
        io.write_csv(stage_dir / "steps.csv", pd.DataFrame(state["steps"], columns=STEP_COLUMNS))

    def keep_best() -> None:
        if rank0:
            pending_best.update(key=key, step=state["step"], metric=state["best"],
                                model={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})

    t_start = time.perf_counter()
    wall_before = state["wall_s"]
    last_save = time.perf_counter()
    saved = False                           # the first validation of this call always checkpoints
    losses: list[float] = state["losses"]     # training losses since the last validation
    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc=desc, disable=not (progress and rank0),
               leave=False, dynamic_ncols=True)
    net.train()
    while state["finished"] is None:
        if state["step"] >= cfg.max_steps:      # e.g. the step limit was lowered before a resume
            state["finished"] = "max_steps"
            checkpoint()
            break
        state["step"] += 1
        step = state["step"]
        try:
            loss = fabric_step(fabric, train_step, step, optimizer, regulariser)
        except FloatingPointError as exc:
            raise FloatingPointError(f"{desc}: {exc} (stage folder {stage_dir})") from None
        losses.append(loss)
        state["steps"].append([step, state["lr"], loss])
        bar.update(1)

        if step % cfg.val_every == 0 or step == cfg.max_steps:
            net.eval()
            with torch.no_grad(), fabric.autocast():
                metric = distributed.agree(fabric, float(validate()))
            net.train()
            fabric.call("on_validation", stage=stage, step=step, metric=metric)
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
                                 "val_metric": metric,
                                 "penalty": regulariser.value() if regulariser is not None else 0.0,
                                 "wall_s": round(state["wall_s"], 3)})
            losses.clear()
            bar.set_postfix(loss=f"{state['log'][-1]['train_loss']:.4g}", val=f"{metric:.4g}",
                            lr=f"{state['lr']:.1e}")
            if state["lr"] < cfg.lr_min:
                state["finished"] = "lr_min"
            elif step >= cfg.max_steps:
                state["finished"] = "max_steps"
            if improved:
                keep_best()
            if distributed.agree(fabric, state["finished"] is not None or not saved
                                 or time.perf_counter() - last_save >= cfg.checkpoint_min_interval_s):
                checkpoint()
                last_save, saved = time.perf_counter(), True
        elif distributed.agree(fabric, time.perf_counter() - last_save > cfg.checkpoint_every_s):
            state["wall_s"] = wall_before + time.perf_counter() - t_start
            checkpoint()
            last_save = time.perf_counter()
    bar.close()
    state["wall_s"] = wall_before + time.perf_counter() - t_start
    if distributed.agree(fabric, not best_path.exists()):
        # No finite validation metric ever (e.g. a behaviour-free validation set): best = last.
        keep_best()
        checkpoint()
    fabric.barrier()                        # best.pt is on disk before any process reads it
    return FitResult(steps=state["step"], best_metric=state["best"], best_step=state["best_step"],
                     stopped=state["finished"], resumed_from=resumed_from, wall_s=state["wall_s"],
                     log=list(state["log"]))
