"""Lightning Fabric under the training loop: one process, or DDP over GPUs and nodes.

Every stage trains through :func:`deg.train.loop.fit`, which runs on a ``lightning_fabric.Fabric``
(the pinned ``lightning-fabric`` distribution: Lightning's Fabric alone, without the Trainer and
torchmetrics, whose import cost every training process 4-5 s of CPU):

* one process (the default, CPU or one GPU): a single-device strategy. The forward pass, the
  backward pass and the optimiser step are the same torch calls as a plain loop, so results are
  bit-identical to it (``tests/train/test_distributed.py`` checks weights and losses against a
  plain torch reference);
* ``devices=N`` (and ``num_nodes=M``): DDP, one process per device, gradients averaged after
  every backward pass (NCCL on GPUs, gloo on CPUs). Processes come from Fabric's launcher (it
  re-runs the command once per extra local device), from ``torchrun``, or from ``srun`` under
  SLURM (Fabric reads the task's rank from SLURM's variables);
* precision through Lightning's plugins: ``bf16-mixed`` on CUDA with bf16, ``16-mixed`` (with
  its gradient scaler) on older GPUs, ``32-true`` on CPUs without native bf16 kernels (the
  rule of :func:`deg.train.common.choose_precision`, which also says why CPU bf16 stays off).

How a global batch is split (the same global batch as one process, whatever N is): every
process draws the *whole* batch (samples and augmentation parameters) from the stage's seeded
generators, identical on all processes, and trains on its contiguous slice (:func:`shard`). Only
torch's global RNG (dropout) differs per process: process r > 0 reseeds it from the stage seed and
r, so no two processes share dropout masks. Checkpoints hold every process's random states
(:func:`gather`) and a DDP run resumed with as many processes restores them all (the exact
resume is tested for one process; under DDP it is not). Validation
runs on every process and the metric of process 0 is broadcast, so every process takes the same
learning-rate and stopping decisions; checkpoints and logs are written by process 0 alone.
Batch norms are synchronised across GPUs (:func:`setup_module`); on CPUs each process normalises
its own slice, so a CPU DDP run with batch norms is not the one-process run.
"""
from __future__ import annotations

import argparse
from typing import Any, Sequence

import torch

# deg.train.loop.Precision.dtype -> Lightning's precision plugin
LIGHTNING_PRECISION = {None: "32-true", torch.bfloat16: "bf16-mixed", torch.float16: "16-mixed"}


def make_fabric(device: torch.device | str, precision=None, devices: int = 1, num_nodes: int = 1,
                callbacks=None):
    """A Fabric on ``device``'s kind with ``precision`` (a :class:`deg.train.loop.Precision`).

    ``callbacks``: objects whose ``on_validation(stage=, step=, metric=)`` the loop calls after
    every validation (``fabric.call``; e.g. :mod:`deg.tune`'s pruning).

    ``devices`` > 1 or ``num_nodes`` > 1: DDP; call :func:`launch` (``fabric.launch()``) before
    training. One device: the given device itself (``cuda:1`` stays ``cuda:1``).
    """
    from lightning_fabric import Fabric

    device = torch.device(device)
    name = LIGHTNING_PRECISION[getattr(precision, "dtype", None)]
    if devices * num_nodes > 1:
        return Fabric(accelerator=device.type, devices=devices, num_nodes=num_nodes, strategy="ddp",
                      precision=name, callbacks=callbacks)
    where: Any = [device.index] if device.type == "cuda" and device.index is not None else 1
    return Fabric(accelerator=device.type, devices=where, precision=name, callbacks=callbacks)


def setup_module(fabric, model: torch.nn.Module):
    """``fabric.setup_module(model)``; under DDP on GPUs, batch norms first become ``SyncBatchNorm``.

    Synchronised batch norms see the whole global batch, as one process would (the paper's batch
    of 32 rather than 32 / N per GPU). torch has no CPU SyncBatchNorm: DDP on CPUs normalises
    each process's slice of the batch. The layer keeps its parameter and buffer names, so
    checkpoints load either way.
    """
    if fabric.world_size > 1 and fabric.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return fabric.setup_module(model)


def shard(fabric, global_batch: int) -> slice:
    """The rows of a global batch that this process trains on (contiguous, equal sizes)."""
    world = 1 if fabric is None else fabric.world_size
    if global_batch % world:
        raise ValueError(f"a global batch of {global_batch} does not split evenly over {world} processes; "
                         "choose a batch size (profile flow/feature/sequence_batch) divisible by devices x nodes")
    size = global_batch // world
    rank = 0 if fabric is None else fabric.global_rank
    return slice(rank * size, (rank + 1) * size)


def take(rows: slice, *batches: Any) -> tuple[Any, ...]:
    """Each of ``batches`` (arrays, or dicts of per-sample arrays/tensors) restricted to ``rows``."""
    return tuple({k: v[rows] for k, v in b.items()} if isinstance(b, dict) else b[rows] for b in batches)


def agree(fabric, value):
    """Process 0's ``value`` on every process (decisions that depend on clocks or file checks)."""
    if fabric is None or fabric.world_size == 1:
        return value
    return fabric.broadcast(value, src=0)


def gather(fabric, obj) -> list:
    """``[obj of process 0, obj of process 1, ...]`` (any picklable object)."""
    if fabric is None or fabric.world_size == 1:
        return [obj]
    out: list = [None] * fabric.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def reseed_dropout(fabric) -> None:
    """Give process r > 0 its own stream of torch's global RNG (dropout); process 0 keeps the stage's."""
    if fabric is not None and fabric.global_rank > 0:
        torch.manual_seed((torch.initial_seed() + 1_000_003 * fabric.global_rank) % (2**63))


def mean_over_processes(fabric, value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar tensor over processes (itself in one process)."""
    if fabric is None or fabric.world_size == 1:
        return value
    return fabric.all_reduce(value, reduce_op="mean")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m deg.train.distributed DATASET PRESET SPLIT --devices N --nodes M``: one run, DDP.

    Under ``srun`` (the SLURM profile) every task runs this command and Fabric reads its rank from
    SLURM; started by hand, Fabric launches the other local processes itself.
    """
    parser = argparse.ArgumentParser(prog="python -m deg.train.distributed", description=main.__doc__)
    parser.add_argument("dataset")
    parser.add_argument("preset")
    parser.add_argument("split")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--accelerator", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--hparams", default=None, help="JSON file of HPARAMS overrides (e.g. make tune's best.json)")
    parser.add_argument("--overrides", default="", help="JSON object of Profile fields / HPARAMS entries "
                                                         "(make figures OVERRIDES=, deg.presets.parse_overrides)")
    args = parser.parse_args(argv)
    from deg import pipeline
    from deg.presets import get_profile
    from deg.train.common import choose_precision
    from deg.tune import read_overrides

    from deg.presets import parse_overrides

    overrides = {**(read_overrides(args.hparams) if args.hparams else {}), **parse_overrides(args.overrides)}
    device = torch.device(args.accelerator)
    # the precision rule of a one-process run (so the stage keys, which record it, are the same)
    precision = choose_precision(device, get_profile(args.profile).for_preset(args.preset).bf16)
    fabric = make_fabric(device, precision, devices=args.devices, num_nodes=args.nodes)
    fabric.launch()
    split = int(args.split) if args.split.isdigit() else args.split
    pipeline.run(args.dataset, args.preset, split, profile=args.profile, seed=args.seed, fabric=fabric,
                 progress=True, **overrides)

if __name__ == "__main__":
    main()
