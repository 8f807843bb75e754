"""One whole tiny run as ``make figures`` runs it: training run, its evaluation, a figure.

Executed as a child process by ``test_faults.py``, which kills it (SIGKILL) at chosen points and
runs it again; ``DEG_DATA`` / ``DEG_RESULTS`` / ``DEG_FIGURES`` say where everything goes.
"""
from __future__ import annotations

import sys

DATASET, PRESET, PROFILE, FIGURE = "synthetic_tiny", "DEG_f", "tiny", "faults"


def whole_run() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deg import evaluate, pipeline, plots
    from deg.data.datasets import open_dataset

    run_dir = pipeline.run(DATASET, PRESET, 0, profile=PROFILE, progress=False)
    dataset = open_dataset(DATASET)
    tables = evaluate.evaluate_run(run_dir, dataset, PROFILE, PRESET, "split0", None, 0)
    plots.start_figure(PROFILE, FIGURE)
    f1 = tables["metrics"].query("metric == 'f1' and video == 'all'")[["source", "behaviour", "value"]]
    for panel in ("f1_a", "f1_b"):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.bar(range(len(f1)), f1["value"].fillna(0))
        plots.save_panel(fig, f1.reset_index(drop=True), PROFILE, FIGURE, panel, caption="fault-injection test")
    plots.finish_figure(PROFILE, FIGURE)
    print("whole run finished", flush=True)


if __name__ == "__main__":
    import os
    import resource

    limit = int(os.environ.get("DEG_TEST_FILE_SIZE_LIMIT", "0") or 0)
    if limit:               # a file-size limit: writes past it fail with EFBIG, as a full disk fails with ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    whole_run()
    sys.exit(0)
