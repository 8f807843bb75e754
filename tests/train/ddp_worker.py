"""``python ddp_worker.py OUT_DIR DEVICES``: the toy problem trained by DDP on CPU processes (gloo).

Fabric's launcher starts the processes after the first (it re-runs this command); each writes its
final weights to ``OUT_DIR/rank<r>.pt`` and process 0 also the stage folder ``OUT_DIR/stage``.
"""
import sys
from pathlib import Path

import torch

from deg.train.distributed import make_fabric
from deg.train.loop import fit
from tests.train.toy import CFG, problem

if __name__ == "__main__":
    out, devices = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    fabric = make_fabric("cpu", None, devices=devices)
    fabric.launch()
    net, train_step, validate, gens, reg = problem(fabric)
    result = fit(out / "stage", net, train_step, validate, CFG, key="toy", generators=gens, regulariser=reg,
                 fabric=fabric, progress=False)
    torch.save({"model": net.module.state_dict(), "log": result.log, "world": fabric.world_size},
               out / f"rank{fabric.global_rank}.pt")
