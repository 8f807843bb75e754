"""Bring a dataset into the standard layout (``deg.data.datasets``), once.

* synthetic ids: rendered by :mod:`deg.data.synthetic` (offline, seconds);
* ``sturman_oft`` / ``sturman_epm``: the interval label files are downloaded (origin or
  ``DEG_DATA_MIRROR``), parsed with :func:`deg.data.labels.read_sturman` and written as per-frame
  label CSVs, one folder per annotator. The Sturman videos (Zenodo 3608658) cannot be reached
  offline; when a mirror provides them they go to ``videos/`` (not implemented offline: the
  dataset is then label-only and feeds the human-vs-human and bout panels);
* every other id: downloaded with :func:`deg.data.download.fetch` into ``data/<id>/raw``.

Command line: ``python -m deg.data.prepare <id> [<id> ...]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deg import paths
from deg.data import prepare_pose
from deg.data.datasets import COMPLETE, Dataset, open_dataset

STURMAN_LABEL_FILES = {
    "sturman_oft": "AllLabDataOFT_final.csv",
    "sturman_epm": "AllEPMLables.csv",
}
SYNTHETIC_PREFIX = "synthetic_"


def is_prepared(dataset_id: str) -> bool:
    return (paths.dataset_dir(dataset_id) / COMPLETE).exists()


def prepare(dataset_id: str, force: bool = False, progress: bool = True) -> Dataset | Path:
    """Prepare ``dataset_id``; returns the Dataset (or the raw folder for download-only ids)."""
    if dataset_id.startswith(SYNTHETIC_PREFIX):
        from deg.data import synthetic

        return synthetic.generate(dataset_id, force=force, progress=progress)
    if dataset_id in prepare_pose.PREPARERS:                  # pose datasets: deg.data.prepare_pose
        return prepare_pose.prepare(dataset_id, force=force, progress=progress)
    if dataset_id in STURMAN_LABEL_FILES:
        return _prepare_sturman(dataset_id, force=force, progress=progress)
    from deg.data import download

    files = download.fetch(dataset_id, progress=progress)
    return Path(next(iter(files.values()))).parent if files else paths.dataset_dir(dataset_id) / "raw"


def _prepare_sturman(dataset_id: str, force: bool, progress: bool) -> Dataset:
    from deg.data import download, registry
    from deg.data.labels import read_sturman, select_behaviours, write_deg_labels

    root = paths.dataset_dir(dataset_id)
    if is_prepared(dataset_id) and not force:
        return open_dataset(dataset_id)
    record = registry.get(dataset_id)
    name = STURMAN_LABEL_FILES[dataset_id]
    files = download.fetch(dataset_id, files=[name], progress=progress)
    # The record's behaviours, not every type in the file: Sturman-OFT's rare "Jumping" occurs in
    # only 2 of Jin's 20 videos, too few for a train/validation/test split (see the record's notes).
    # Dropped types' frames count as background unless another behaviour is on.
    parsed = read_sturman(files[name], fps=record.fps)
    keep = list(record.behaviours[1:])
    (root / COMPLETE).unlink(missing_ok=True)
    videos = sorted({video for video, _ in parsed.matrices})
    annotators = sorted({annotator for _, annotator in parsed.matrices})
    for (video, annotator), matrix in parsed.matrices.items():
        kept, behaviours = select_behaviours(matrix, parsed.behaviours, keep)
        write_deg_labels(root / "labels" / annotator / f"{video}.csv", kept, behaviours)
    train = record.train_annotator if record.train_annotator in annotators else annotators[0]
    dataset = Dataset(
        id=dataset_id, fps=float(record.fps), behaviours=behaviours, annotators=annotators,
        train_annotator=train, videos=videos, synthetic=False,
        flips={"horizontal": bool(record.flips[0]), "vertical": bool(record.flips[1])},
        image_size=tuple(record.resize) if record.resize else None,
        description=f"{record.title}: labels only (videos not available offline)",
        extra={"source_file": name, "label_only": True,
               "dropped_behaviours": sorted(set(parsed.behaviours) - set(behaviours))}, root=root)
    dataset.save()
    return dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prepare datasets in data/<id>/")
    parser.add_argument("ids", nargs="+")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    for dataset_id in args.ids:
        result = prepare(dataset_id, force=args.force)
        print(f"{dataset_id}: ready in {getattr(result, 'root', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
