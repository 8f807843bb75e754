"""Describe a dataset (paper Figure 2): time spent per behaviour and annotator, example frames.

Writes ``results/<profile>/<dataset>/describe/``:

* ``time_spent.csv``: dataset, annotator, video, behaviour, frames, labelled_frames, percent
  (background included; per video and a pooled row with ``video == "all"``);
* ``examples.npz`` (when the dataset has videos): for each behaviour one frame (uint8 H x W x 3)
  where the training annotator labels it, chosen in the middle of its longest bout, plus the
  video name and frame index; behaviours without any labelled frame are absent.

Figure notebooks read these files only (figures never read ``data/`` directly).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from deg import cli, io, paths
from deg.data.datasets import Dataset, open_dataset


def time_spent(dataset: Dataset) -> pd.DataFrame:
    """Frames and percent of labelled frames per (annotator, video, behaviour), plus pooled rows."""
    rows = []
    for annotator in dataset.annotators:
        totals = np.zeros(dataset.n_behaviours, dtype=np.int64)
        total_labelled = 0
        for video in dataset.videos:
            if not dataset.has_labels(video, annotator):
                continue
            labels = dataset.labels(video, annotator)
            labelled = labels[:, 0] >= 0
            counts = (labels[labelled] == 1).sum(axis=0)
            totals += counts
            total_labelled += int(labelled.sum())
            for behaviour, count in zip(dataset.behaviours, counts):
                rows.append((annotator, video, behaviour, int(count), int(labelled.sum())))
        for behaviour, count in zip(dataset.behaviours, totals):
            rows.append((annotator, "all", behaviour, int(count), total_labelled))
    table = pd.DataFrame(rows, columns=["annotator", "video", "behaviour", "frames", "labelled_frames"])
    table.insert(0, "dataset", dataset.id)
    table["percent"] = 100.0 * table["frames"] / table["labelled_frames"].clip(lower=1)
    return table


def example_frames(dataset: Dataset) -> dict[str, np.ndarray]:
    """One frame per behaviour from the middle of its longest bout (training annotator's labels)."""
    from deg.data.video import read_video

    best: dict[str, tuple[int, str, int]] = {}   # behaviour -> (bout length, video, centre frame)
    for video in dataset.videos:
        if dataset.video_path(video) is None:
            continue
        labels = dataset.labels(video)
        for k, behaviour in enumerate(dataset.behaviours):
            column = np.concatenate([[0], (labels[:, k] == 1).astype(np.int8), [0]])
            edges = np.flatnonzero(np.diff(column))
            if edges.size == 0:
                continue
            starts, stops = edges[::2], edges[1::2]
            longest = int(np.argmax(stops - starts))
            length = int(stops[longest] - starts[longest])
            if length > best.get(behaviour, (0, "", 0))[0]:
                best[behaviour] = (length, video, int((starts[longest] + stops[longest]) // 2))
    arrays: dict[str, np.ndarray] = {}
    for behaviour, (_, video, frame) in best.items():
        arrays[f"frame/{behaviour}"] = read_video(dataset.video_path(video), start=frame, stop=frame + 1)[0]
        arrays[f"source/{behaviour}"] = np.array([video, str(frame)])
    return arrays


def describe(dataset_id: str, profile: str) -> Path:
    dataset = open_dataset(dataset_id)
    out = paths.results_dir() / profile / dataset.id / "describe"
    if dataset.has_videos:
        io.write_npz(out / "examples.npz", **example_frames(dataset))
    io.write_json(out / "dataset.json", {"id": dataset.id, "synthetic": dataset.synthetic, "fps": dataset.fps,
                                         "behaviours": dataset.behaviours, "annotators": dataset.annotators,
                                         "train_annotator": dataset.train_annotator, "n_videos": len(dataset.videos),
                                         "has_videos": dataset.has_videos, "description": dataset.description,
                                         "left_out": dataset.left_out()})
    io.write_csv(out / "time_spent.csv", time_spent(dataset))
    return out


@cli.entry_point("deg.describe")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Describe datasets for Figure 2")
    parser.add_argument("--profile", required=True)
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    cli.check_profile(args.profile)
    cli.check_datasets(args.ids)
    for dataset_id in args.ids:
        print(f"{dataset_id}: {describe(dataset_id, args.profile)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
