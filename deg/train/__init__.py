"""Training of the three DeepEthogram stages (flow generator, feature extractor, sequence model).

* :mod:`deg.train.loop`: the resumable loop (Adam, reduce-on-plateau, stopping rule, best/last weights).
* :mod:`deg.train.distributed`: Lightning Fabric under the loop (one process, or DDP over GPUs/nodes).
* :mod:`deg.train.clips`: frames in memory, clips with edge padding, samplers.
* :mod:`deg.train.common`: the run context, seeds, precision, the validation F1.
* :mod:`deg.train.flow`, :mod:`deg.train.feature`, :mod:`deg.train.sequence`: one module per stage.
* :mod:`deg.train.keys`: what each stage's outputs depend on (its configuration key).

:mod:`deg.pipeline` strings them together, with caching and provenance. The loop's names are
loaded on first use, so that importing :mod:`deg.train.keys` (the workflow does, to decide what to
recompute) does not import torch.
"""
from typing import Any

__all__ = ["FitResult", "LoopConfig", "Precision", "fit"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from deg.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'deg.train' has no attribute {name!r}")
