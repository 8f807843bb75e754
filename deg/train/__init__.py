"""Training of the three DeepEthogram stages (flow generator, feature extractor, sequence model).

* :mod:`deg.train.loop`: the resumable loop (Adam, reduce-on-plateau, stopping rule, best/last weights).
* :mod:`deg.train.distributed`: Lightning Fabric under the loop (one process, or DDP over GPUs/nodes).
* :mod:`deg.train.clips`: frames in memory, clips with edge padding, samplers.
* :mod:`deg.train.common`: the run context, seeds, precision, the validation F1.
* :mod:`deg.train.flow`, :mod:`deg.train.feature`, :mod:`deg.train.sequence`: one module per stage.

:mod:`deg.pipeline` strings them together, with caching and provenance.
"""
from deg.train.loop import FitResult, LoopConfig, Precision, fit

__all__ = ["FitResult", "LoopConfig", "Precision", "fit"]
